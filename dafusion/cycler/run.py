"""``cycler run``: the assimilation cycle.

Analyses at ``start, start + 12 h, …, start + days``. Each analysis samples the
prior with Algorithm 1, guided by every enabled source (eq. 14):

* ``stations``: the observation table's rows within ±window of the analysis
  time (synthesised from the truth with the ``obs`` section when
  ``run.observations`` is empty);
* ``gridded``: the truth coarsened (the paper's LR), in the OSSE;
* ``emulator`` (modes ``forecast`` and ``reinit``): an emulator state valid at
  the analysis time, as a coarse pseudo-observation on the emulator grid.

Modes:

* ``plain``: observations only; every cycle is independent.
* ``forecast``: the emulator is initialised once from the truth at ``start``
  (regridded to its grid) and run across the window; the state valid at each
  analysis is its pseudo-observation (the paper's IGRA+LUCIE).
* ``reinit``: every analysis is regridded to the emulator grid and starts a
  12-hour forecast, the pseudo-observation of the next analysis (the paper's
  IGRA+LUCIE Reinitialized). ``run.reinit = mean`` (default) starts one forecast
  from the ensemble mean, as the paper's schematic (Figure 17b) does, and every
  member is guided by it; ``members`` starts one forecast per member and guides
  each member by its own.

In both emulator modes the first analysis (at ``start``) sees the initial
state itself, i.e. the truth regridded to the emulator grid, as its emulator
term: the forecast at lead 0.

Reproducibility and resume: member noise comes from generators seeded by
``(seed, cycle, member)`` and the gridded observation noise by
``(seed, cycle)``, so no random state has to be carried between cycles; what
is carried (emulator forecast, next pseudo-observation, background, metrics
rows) is saved with the cycle index in ``state.pt`` after every cycle's
files, atomically. A run killed at any moment restarts from the last
completed cycle and ends with the same ``metrics.csv`` as an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import platform
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import xarray as xr

from dafusion.config import Config, dump_config
from dafusion.cycler.metrics import ensemble_scores
from dafusion.data import GriddedSource, demo_truth_path
from dafusion.grids import grid_from_name
from dafusion.io import sha256, state_dataset, write_netcdf
from dafusion.obs.forecast import ForecastObs
from dafusion.obs.gridded import Coarsening, GriddedObs
from dafusion.obs.stations import StationObs
from dafusion.obs.table import ObservationTable, read_table
from dafusion.progress import null_progress
from dafusion.regrid import make_regridder
from dafusion.variables import parse_channel

STATE = "state.pt"
STATE_VERSION = 1


class RunError(ValueError):
    """A run that cannot start or continue; the message says why and what to change."""


@dataclasses.dataclass
class Experiment:
    """Everything a run needs, loaded and checked before any compute."""

    cfg: Config
    truth: GriddedSource
    denoiser: torch.nn.Module
    normaliser: Any
    prior_path: Path
    emulator: Any  # SFNOEmulator or None
    emulator_path: Path | None
    emulator_truth: GriddedSource | None
    table: ObservationTable | None
    times: np.ndarray
    device: torch.device

    @property
    def channels(self) -> list[str]:
        return list(self.cfg.data.channels)

    @property
    def grid(self):  # noqa: ANN201
        return self.truth.grid


def analysis_times(cfg: Config) -> np.ndarray:
    start = np.datetime64(dt.datetime.fromisoformat(cfg.run.start), "ns")
    n = int(round(cfg.run.days * 24 / cfg.run.cycle_hours))
    return start + np.arange(n + 1) * np.timedelta64(cfg.run.cycle_hours, "h")


def _paths(cfg: Config) -> tuple[Path, Path, Path]:
    from dafusion.emulator.checkpoint import demo_emulator_path
    from dafusion.prior import demo_prior_path

    return (Path(cfg.run.truth or demo_truth_path()),
            Path(cfg.prior.checkpoint or demo_prior_path()),
            Path(cfg.emulator.checkpoint or demo_emulator_path()))


def prepare(cfg: Config, device: str = "cpu") -> Experiment:
    """Open and check truth, prior, emulator and observations; raise RunError early."""
    from dafusion.emulator.checkpoint import load_emulator
    from dafusion.obs.synth import land_network, station_list_network, synthesise
    from dafusion.prior.checkpoint import load_prior

    run = cfg.run
    truth_path, prior_path, emulator_path = _paths(cfg)
    truth = GriddedSource.open(truth_path, cfg.data.channels)
    times = analysis_times(cfg)
    have = set(truth.times)
    missing = [str(t)[:16] for t in times if t not in have]
    if missing:
        raise RunError(f"run window {str(times[0])[:16]} .. {str(times[-1])[:16]}: the truth "
                       f"{truth_path.name} has no state at {missing[:4]}"
                       f"{' …' if len(missing) > 4 else ''} (it covers "
                       f"{str(truth.times[0])[:16]} .. {str(truth.times[-1])[:16]})")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RunError("--device cuda: no CUDA device is available")
    denoiser, normaliser, _ = load_prior(prior_path, grid=truth.grid, channels=cfg.data.channels,
                                         device=dev)
    emulator = emulator_truth = None
    if run.mode != "plain":
        emulator = load_emulator(emulator_path, device=dev)
        shared = [c for c in emulator.output_channels if c in cfg.data.channels]
        if not shared:
            raise RunError(f"emulator {emulator_path.name} forecasts {emulator.output_channels}, "
                           f"none of which is an analysis channel {cfg.data.channels}")
        emulator_truth = GriddedSource.open(truth_path, emulator.channels)
    table = None
    if run.sources.stations.enabled:
        if run.observations:
            table = read_table(run.observations)
        else:
            network = (station_list_network(cfg.obs.station_list, cfg.obs.n_stations,
                                            cfg.obs.seed) if cfg.obs.station_list
                       else land_network(cfg.obs.n_stations, cfg.obs.northern_fraction,
                                         cfg.obs.seed))
            window = np.timedelta64(int(run.sources.stations.window_hours * 3600), "s")
            table = synthesise(truth, network, cfg.obs, str(times[0] - window),
                               str(times[-1] + window))
        half = np.timedelta64(int(run.sources.stations.window_hours * 3600), "s")
        empty = [str(t)[:16] for t in times if len(table.window(t, half)) == 0]
        if empty:
            raise RunError(f"no station observations within ±{run.sources.stations.window_hours}"
                           f" h of the analyses at {empty[:4]}{' …' if len(empty) > 4 else ''}"
                           f" ({run.observations or 'synthesised'}); disable the source "
                           "(run.sources.stations.enabled=false) or change the window")
    has_source = (run.sources.stations.enabled or run.sources.gridded.enabled
                  or run.mode != "plain")
    if not has_source and not run.unconditional:
        raise RunError("no observation source is enabled: the analyses would be unconditional "
                       "samples. Enable a source, or set run.unconditional=true for the "
                       "unconditional reference")
    if has_source and run.unconditional:
        raise RunError("run.unconditional=true but observation sources are enabled; disable "
                       "them (stations, gridded) and use mode plain")
    return Experiment(cfg, truth, denoiser, normaliser, prior_path,
                      emulator, emulator_path if emulator is not None else None, emulator_truth,
                      table, times, dev)


# --------------------------------------------------------------------------- run directory


def default_name(cfg: Config) -> str:
    start = dt.datetime.fromisoformat(cfg.run.start).strftime("%Y%m%dT%H")
    created = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{cfg.run.mode}_{start}_{created}"


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("dafusion", "torch", "torch-harmonics", "numpy", "xarray", "netCDF4", "scipy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _write_text(path: Path, text: str) -> None:
    """Atomic: a reader sees the old file or the new one, never a partial one."""
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(text)
    os.replace(tmp, path)


def create_run_dir(exp: Experiment, run_dir: Path) -> None:
    """Write what the run is before it computes anything."""
    if run_dir.exists():
        raise RunError(f"{run_dir}: already exists; runs are never overwritten (use --resume "
                       f"{run_dir} to continue it, or another --name)")
    run_dir.mkdir(parents=True)
    cfg = exp.cfg
    _write_text(run_dir / "config.yaml", dump_config(cfg))
    _write_text(run_dir / "versions.json", json.dumps(_versions(), indent=1))
    inputs: dict[str, Any] = {
        "truth": {"file": Path(exp.truth.path).name, "bytes": _size(Path(exp.truth.path))},
        "prior": {"checkpoint": exp.prior_path.name,
                  "weights_sha256": sha256(exp.prior_path / "weights.pt")}}
    if exp.emulator_path is not None:
        inputs["emulator"] = {"checkpoint": exp.emulator_path.name,
                              "weights_sha256": sha256(exp.emulator_path / "weights.pt")}
    if cfg.run.observations:
        inputs["observations"] = {"file": Path(cfg.run.observations).name,
                                  "sha256": sha256(Path(cfg.run.observations))}
    elif exp.table is not None:
        inputs["observations"] = {"synthesised": True, "rows": len(exp.table),
                                  "obs_seed": cfg.obs.seed}
    if exp.table is not None:  # the rows the run can use, for the report's maps and scatter
        from dafusion.obs.table import write_table

        half = np.timedelta64(int(cfg.run.sources.stations.window_hours * 3600), "s")
        keep = (exp.table.time >= exp.times[0] - half) & (exp.table.time <= exp.times[-1] + half)
        write_table(exp.table.subset(keep), run_dir / "observations.nc")
    _write_text(run_dir / "inputs.json", json.dumps(inputs, indent=1))
    _write_text(run_dir / "seeds.json", json.dumps({
        "seed": cfg.run.seed,
        "members": "torch generator per member seeded by SeedSequence([seed * 100003 + cycle, "
                   "member])",
        "gridded_noise": "torch generator seeded by seed * 100003 + cycle + 7919"}, indent=1))
    (run_dir / "log.txt").write_text(f"{_now()} created; mode {cfg.run.mode}, "
                                     f"{len(exp.times)} analyses from {str(exp.times[0])[:16]}\n")


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _now() -> str:
    return dt.datetime.now().isoformat(timespec="seconds")


def _log(run_dir: Path, line: str) -> None:
    with open(run_dir / "log.txt", "a") as f:
        f.write(f"{_now()} {line}\n")


def save_state(run_dir: Path, state: dict[str, Any]) -> None:
    tmp = run_dir / (STATE + ".partial")
    torch.save(state, tmp)
    os.replace(tmp, run_dir / STATE)


def load_state(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / STATE
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001
        raise RunError(f"{path}: unreadable ({err})") from None
    if state.get("version") != STATE_VERSION:
        raise RunError(f"{path}: written by another version of the cycle driver")
    return state


# --------------------------------------------------------------------------- tables


METRIC_COLUMNS = ["cycle", "valid_time", "lead_hours", "channel", "variable", "level", "rmse",
                  "bias", "spread", "crps"]
OBS_COLUMNS = ["cycle", "valid_time", "source", "used", "rejected", "omb_mean", "omb_rms",
               "oma_mean", "oma_rms"]
TIMING_COLUMNS = ["cycle", "valid_time", "observations_s", "analysis_s", "forecast_s",
                  "write_s", "total_s"]


def _csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return "" if np.isnan(v) else f"{v:.6g}"
        return str(v)

    lines = [",".join(columns)] + [",".join(cell(r[c]) for c in columns) for r in rows]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- the cycle


def _emulator_initial(exp: Experiment) -> xr.DataArray:
    from dafusion.emulator.skill import initial_state

    return initial_state(exp.emulator_truth, exp.times[0], exp.emulator,
                         exp.cfg.emulator.regrid)


def _analysis_dataset(ens: np.ndarray, exp: Experiment, t: np.datetime64, cycle: int
                      ) -> xr.Dataset:
    mean = state_dataset(ens.mean(0)[None], exp.channels, exp.grid, time=t).isel(member=0)
    std = state_dataset(ens.std(0, ddof=1)[None] if ens.shape[0] > 1
                        else np.zeros_like(ens[:1]), exp.channels, exp.grid, time=t
                        ).isel(member=0)
    ds = mean.drop_vars("member")
    for name, var in std.drop_vars("member").data_vars.items():
        ds[f"{name}_std"] = var.assign_attrs(long_name=f"ensemble standard deviation of "
                                                       f"{var.attrs['long_name']}")
    for name in mean.data_vars:
        ds[name].attrs["long_name"] = f"ensemble mean of {ds[name].attrs['long_name']}"
    ds.attrs.update({"title": "dafusion analysis", "cycle": cycle,
                     "members": int(ens.shape[0]), "mode": exp.cfg.run.mode})
    return ds


def _obs_row(cycle: int, t: np.datetime64, term: Any, background: torch.Tensor | None,
             analysis_mean: torch.Tensor) -> dict[str, Any]:
    """O-B and O-A of one source (normalised units; B = the background state)."""
    diag = term.diagnostics()
    y = term.y if term.y.dim() == 1 else term.y.mean(0)
    with torch.no_grad():
        oma = (y - term.operator(analysis_mean[None])[0]).double()
        omb = (y - term.operator(background[None])[0]).double() if background is not None \
            else None
    return {"cycle": cycle, "valid_time": str(t)[:16], "source": diag["source"],
            "used": diag["used"], "rejected": sum(diag["rejected"].values()),
            "omb_mean": float(omb.mean()) if omb is not None else float("nan"),
            "omb_rms": float(omb.pow(2).mean().sqrt()) if omb is not None else float("nan"),
            "oma_mean": float(oma.mean()), "oma_rms": float(oma.pow(2).mean().sqrt())}


def run_cycles(exp: Experiment, run_dir: Path, *,
               progress: Callable[..., Any] | None = None) -> dict[str, Any]:
    """Run (or continue) the cycles of ``exp`` in ``run_dir``; returns the final state."""
    from dafusion.prior.sampler import PosteriorSampler, member_generators

    cfg, run = exp.cfg, exp.cfg.run
    state = load_state(run_dir) or {"version": STATE_VERSION, "cycle": 0, "metrics": [],
                                    "obs": [], "timing": [], "emulator_forecast": None,
                                    "pseudo_obs": None, "pseudo_obs_channels": None,
                                    "background": None}
    if state["cycle"] > 0:
        _log(run_dir, f"resumed at cycle {state['cycle']}")
    members, channels, grid = run.members, exp.channels, exp.grid
    shape = (len(channels), *grid.shape)
    steps = cfg.prior.sampler.steps
    bar = progress or null_progress
    to_emulator = from_emulator = None
    if exp.emulator is not None:
        to_emulator = make_regridder(grid, exp.emulator.grid, cfg.emulator.regrid)
        from_emulator = make_regridder(exp.emulator.grid, grid, cfg.emulator.regrid)
        if state["cycle"] == 0:
            init = _emulator_initial(exp)
            state["pseudo_obs"] = init.values  # lead 0: (1, C, h, w), prognostic channels
            state["pseudo_obs_channels"] = list(exp.emulator.channels)
            if run.mode == "forecast":
                n = int(round((exp.times[-1] - exp.times[0]) / exp.emulator.time_step))
                fc = exp.emulator.forecast(init, n)
                state["emulator_forecast"] = fc.values[:, 0]  # (lead, C_out, h, w)
    sampler = PosteriorSampler(cfg.prior.sampler, callback=lambda i, x: pbar.update(1))
    try:
        with bar(len(exp.times) * steps, "cycles × sampler steps") as pbar:
            pbar.update(state["cycle"] * steps)
            for cycle in range(state["cycle"], len(exp.times)):
                t = exp.times[cycle]
                tic = time.perf_counter()
                truth = exp.truth.at(t).values.astype(np.float64)  # (C, H, W) physical
                truth_n = torch.as_tensor(exp.normaliser.normalise(truth), dtype=torch.float32)
                state_channels = state["pseudo_obs_channels"]
                terms, fc_used = _terms(exp, cycle, t, truth_n, state)
                background = None
                if state["background"] is not None:
                    background = torch.as_tensor(exp.normaliser.normalise(state["background"]),
                                                 dtype=torch.float32)
                t_obs = time.perf_counter()
                gens = member_generators(run.seed * 100003 + cycle, range(members), exp.device)
                x = sampler(exp.denoiser, shape, gens, terms, device=exp.device).detach().cpu()
                _check_divergence(x, cycle, t, channels, cfg)
                ens = exp.normaliser.denormalise(x.double().numpy())  # (M, C, H, W) physical
                t_ana = time.perf_counter()
                # the next cycle's pseudo-observation and background
                if exp.emulator is not None and cycle + 1 < len(exp.times):
                    out_channels = exp.emulator.output_channels
                    if run.mode == "forecast":
                        nxt = state["emulator_forecast"][_lead_index(exp, cycle + 1)][None]
                    else:
                        init = _reinit_state(exp, ens, state, to_emulator, t)
                        steps_12h = int(np.timedelta64(run.cycle_hours, "h")
                                        / exp.emulator.time_step)
                        nxt = exp.emulator.forecast(init, steps_12h).values[-1]
                    state["pseudo_obs"], state["pseudo_obs_channels"] = nxt, out_channels
                    shared = [c for c in out_channels if c in channels]
                    bg = ens.mean(0).copy()  # channels the emulator lacks: this analysis
                    fc_mean = torch.as_tensor(nxt.mean(0)[[out_channels.index(c) for c in shared]])
                    bg[[channels.index(c) for c in shared]] = from_emulator(fc_mean).numpy()
                    state["background"] = bg
                elif exp.emulator is None:
                    state["background"] = ens.mean(0)  # plain: persistence of the analysis
                t_fc = time.perf_counter()
                # outputs of this cycle, then the state that says it is complete
                cdir = run_dir / f"cycle_{cycle:03d}"
                cdir.mkdir(exist_ok=True)
                write_netcdf(_analysis_dataset(ens, exp, t, cycle), cdir / "analysis.nc", force=True)
                if run.save_members:
                    write_netcdf(state_dataset(ens, channels, grid, time=t), cdir / "members.nc",
                                 force=True)
                if fc_used is not None:
                    write_netcdf(state_dataset(fc_used, state_channels, exp.emulator.grid,
                                               time=t, attrs={"title": "emulator state used as "
                                                              "pseudo-observation"}),
                                 cdir / "forecast.nc", force=True)
                scores = ensemble_scores(ens, truth, grid)
                lead = int((t - exp.times[0]) / np.timedelta64(1, "h"))
                for i, name in enumerate(channels):
                    ch = parse_channel(name)
                    state["metrics"].append({
                        "cycle": cycle, "valid_time": str(t)[:16], "lead_hours": lead,
                        "channel": name, "variable": ch.variable.name, "level": ch.level if ch.level else "",
                        **{k: float(v[i]) for k, v in scores.items()}})
                mean_n = torch.as_tensor(exp.normaliser.normalise(ens.mean(0)), dtype=torch.float32)
                for term in terms:
                    state["obs"].append(_obs_row(cycle, t, term, background, mean_n))
                toc = time.perf_counter()
                state["timing"].append({"cycle": cycle, "valid_time": str(t)[:16],
                                        "observations_s": t_obs - tic, "analysis_s": t_ana - t_obs,
                                        "forecast_s": t_fc - t_ana, "write_s": toc - t_fc,
                                        "total_s": toc - tic})
                _write_text(run_dir / "metrics.csv", _csv(state["metrics"], METRIC_COLUMNS))
                _write_text(run_dir / "obs_diagnostics.csv", _csv(state["obs"], OBS_COLUMNS))
                _write_text(run_dir / "timing.csv", _csv(state["timing"], TIMING_COLUMNS))
                state["cycle"] = cycle + 1
                save_state(run_dir, state)
                rm = {n: f"{scores['rmse'][i]:.3g}" for i, n in enumerate(channels)}
                _log(run_dir, f"cycle {cycle} {str(t)[:16]}: {toc - tic:.1f} s (analysis "
                              f"{t_ana - t_obs:.1f} s); terms {[tm.name for tm in terms]}; "
                              f"rmse {rm}")
    except BaseException as err:
        _log(run_dir, f"stopped at cycle {state['cycle']}: {type(err).__name__}: {err}")
        raise
    _write_text(run_dir / "COMPLETE", f"{_now()} {len(exp.times)} cycles\n")
    return state


def _check_divergence(x: torch.Tensor, cycle: int, t: np.datetime64, channels: list[str],
                      cfg: Config) -> None:
    """Stop, before anything of the cycle is written, when the sampler blew up without
    producing NaN (guidance too stiff for the step size): |x| far beyond the prior."""
    peak = x.abs().amax(dim=(0, 2, 3))
    bad = [f"{c} ({v:.3g})" for c, v in zip(channels, peak.tolist())
           if v > cfg.run.max_normalised]
    if bad:
        raise RunError(
            f"cycle {cycle} ({str(t)[:16]}): the analysis diverged, reaching more than "
            f"run.max_normalised={cfg.run.max_normalised:g} standard deviations in {bad}. "
            f"The guidance is too strong for {cfg.prior.sampler.steps} sampler steps: lower a "
            "source's weight or raise its sigma_y/gamma, cap the guidance with "
            "prior.sampler.guidance_clip (e.g. 1), or use more steps")


def _reinit_state(exp: Experiment, ens: np.ndarray, state: dict[str, Any],
                  to_emulator: torch.nn.Module, t: np.datetime64) -> xr.DataArray:
    """The emulator's next initial state: the analysis (ensemble mean or every member)
    regridded to its grid; prognostic channels the analysis lacks keep the emulator's own
    state valid now (its forecast, or at the first cycle the truth)."""
    run, emu = exp.cfg.run, exp.emulator
    start = ens.mean(0, keepdims=True) if run.reinit == "mean" else ens
    coarse = to_emulator(torch.as_tensor(start)).numpy()  # (B, C, h, w)
    prev, prev_channels = np.asarray(state["pseudo_obs"]), state["pseudo_obs_channels"]
    if prev.shape[0] != coarse.shape[0]:
        prev = np.broadcast_to(prev.mean(0, keepdims=True), (coarse.shape[0],) + prev.shape[1:])
    init = np.empty((coarse.shape[0], len(emu.channels)) + emu.grid.shape)
    for k, name in enumerate(emu.channels):
        if name in exp.channels:
            init[:, k] = coarse[:, exp.channels.index(name)]
        else:
            init[:, k] = prev[:, prev_channels.index(name)]
    return xr.DataArray(init, dims=("member", "channel", "lat", "lon"),
                        coords={"channel": emu.channels, "lat": emu.grid.lat,
                                "lon": emu.grid.lon, "time": t})


def _lead_index(exp: Experiment, cycle: int) -> int:
    """Index into the precomputed forecast (lead 1 = index 0) of analysis ``cycle``."""
    return int((exp.times[cycle] - exp.times[0]) / exp.emulator.time_step) - 1


def _terms(exp: Experiment, cycle: int, t: np.datetime64, truth_n: torch.Tensor,
           state: dict[str, Any]) -> tuple[list[Any], np.ndarray | None]:
    cfg, src = exp.cfg, exp.cfg.run.sources
    terms: list[Any] = []
    if src.stations.enabled:
        st = src.stations
        terms.append(StationObs.from_table(
            exp.table, channels=exp.channels, normaliser=exp.normaliser, grid=exp.grid, time=t,
            window_hours=st.window_hours, method=st.method, sigma_y=st.sigma_y,
            gamma=st.gamma, weight=st.weight, name="stations"))
    if src.gridded.enabled:
        g = src.gridded
        coarse = grid_from_name(g.grid)
        gen = torch.Generator().manual_seed(cfg.run.seed * 100003 + cycle + 7919)
        terms.append(GriddedObs.from_truth(truth_n, Coarsening(exp.grid, coarse, g.method),
                                           noise_std=g.noise_std, generator=gen,
                                           sigma_y=g.sigma_y, gamma=g.gamma, weight=g.weight,
                                           name="gridded"))
    fc_used = None
    if exp.emulator is not None:
        fc_used = np.asarray(state["pseudo_obs"])  # (1 or M, C_f, h, w)
        e = src.emulator
        per_member = fc_used.shape[0] > 1
        terms.append(ForecastObs.from_forecast(
            fc_used if per_member else fc_used[0], forecast_grid=exp.emulator.grid,
            forecast_channels=state["pseudo_obs_channels"], channels=exp.channels,
            normaliser=exp.normaliser, grid=exp.grid, regrid=cfg.emulator.regrid,
            sigma_y=e.sigma_y, gamma=e.gamma, weight=e.weight, name="emulator"))
    return terms, fc_used


def start_run(cfg: Config, run_dir: Path, *, device: str = "cpu",
              progress: Callable[..., Any] | None = None) -> dict[str, Any]:
    exp = prepare(cfg, device)
    create_run_dir(exp, run_dir)
    return run_cycles(exp, run_dir, progress=progress)


def resume_run(run_dir: Path, *, device: str = "cpu",
               progress: Callable[..., Any] | None = None) -> dict[str, Any]:
    from dafusion.config import load_config

    if not (run_dir / "config.yaml").exists():
        raise RunError(f"{run_dir}: not a run directory (no config.yaml)")
    if (run_dir / "COMPLETE").exists():
        raise RunError(f"{run_dir}: already complete")
    cfg = load_config(run_dir / "config.yaml")
    exp = prepare(cfg, device)
    return run_cycles(exp, run_dir, progress=progress)


