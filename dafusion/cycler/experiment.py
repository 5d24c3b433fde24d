"""An experiment: every part a run needs, checked before any compute.

Build it from a configuration (:func:`build_experiment` opens the truth, the
checkpoints and the observation table named there) or directly from in-memory
parts, e.g. in tests::

    Experiment(cfg, truth=GriddedSource(...), denoiser=net, normaliser=norm,
               emulator=PersistenceEmulator(...), table=table)

Either way :meth:`Experiment.check` runs at construction and raises
:class:`RunError` when the window is outside the truth, a cycle has no station
observation, the emulator shares no channel with the analysis, no source is
enabled without ``run.unconditional``, or a classical method (``run.method``) has
no observations to assimilate or no B for a channel.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import platform
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from dafusion.config import Config, ConfigError, dump_config
from dafusion.cycler import seeding
from dafusion.cycler.modes import ForecastMode, Mode, PlainMode, ReinitMode
from dafusion.cycler.ranks import SINGLE, Ranks
from dafusion.cycler.ranks import check as check_ranks
from dafusion.cycler.rundir import Header, RunError
from dafusion.data import GriddedSource, demo_truth_path, is_url
from dafusion.emulator.base import ForecastModel
from dafusion.grids import AnyGrid
from dafusion.io import sha256
from dafusion.normalise import Normaliser
from dafusion.obs.table import ObservationTable, read_table, screen, write_table
from dafusion.prior.base import Denoiser
from dafusion.variables import parse_channels


def analysis_times(cfg: Config) -> np.ndarray:
    """``start, start + cycle_hours, …, start + days`` as datetime64[ns]."""
    start = np.datetime64(dt.datetime.fromisoformat(cfg.run.start), "ns")
    n = int(round(cfg.run.days * 24 / cfg.run.cycle_hours))
    return start + np.arange(n + 1) * np.timedelta64(cfg.run.cycle_hours, "h")


@dataclasses.dataclass
class Experiment:
    """The parts of a run. ``inputs`` records where they came from (``inputs.json``)."""

    cfg: Config
    truth: GriddedSource  # the nature run: verification, synthetic and gridded observations
    denoiser: Denoiser  # D_θ(x; σ), normalised units
    normaliser: Normaliser
    emulator: ForecastModel | None = None  # None in plain mode
    table: ObservationTable | None = None  # None without station observations
    emulator_errors: xr.Dataset | None = None  # its error statistics (emulator.errors)
    device: torch.device = dataclasses.field(default_factory=lambda: torch.device("cpu"))
    inputs: dict[str, Any] = dataclasses.field(default_factory=dict)
    ranks: Ranks = SINGLE  # the processes the members are split over (torchrun)

    def __post_init__(self) -> None:
        self.times = analysis_times(self.cfg)
        self.inputs = self.inputs or {"truth": {"file": Path(self.truth.path).name}}
        self.check()

    @property
    def channels(self) -> list[str]:
        return list(self.cfg.data.channels)

    @property
    def fingerprint(self) -> str:
        """sha256 of what the run is computed from (``inputs``: the configuration's
        sha256, the truth, checkpoints, observations); ``state.npz`` carries it."""
        text = json.dumps(self.inputs, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def grid(self) -> AnyGrid:
        return self.truth.grid

    def normalised(self, field: np.ndarray) -> torch.Tensor:
        """A physical ``(..., C, H, W)`` field as the sources and diagnostics see it:
        normalised, float32."""
        return torch.as_tensor(self.normaliser.normalise(field), dtype=torch.float32)

    def check(self) -> None:
        """Everything that can be known before the first analysis; raise RunError."""
        run = self.cfg.run
        _check_window(self.truth, self.times)
        if (self.emulator is None) != (run.mode == "plain"):
            raise RunError(f"mode {run.mode} {'needs' if run.mode != 'plain' else 'takes no'} "
                           "emulator")
        if self.emulator is not None and not set(self.emulator.output_channels) & set(
                self.channels):
            raise RunError(f"the emulator forecasts {self.emulator.output_channels}, none of "
                           f"which is an analysis channel {self.channels}")
        if self.emulator is not None:
            self.truth.select(self.emulator.channels)  # its initial state comes from the truth
            if run.sources.emulator.error_model == "statistics":
                self._check_errors()
        if run.sources.stations.enabled:
            _check_observations(self.table, self.times, run.sources.stations.window_hours,
                                run.observations or "synthesised")
        has_source = (run.sources.stations.enabled or run.sources.gridded.enabled
                      or self.emulator is not None)
        if not has_source and not run.unconditional:
            raise RunError("no observation source is enabled: the analyses would be "
                           "unconditional samples. Enable a source, or set "
                           "run.unconditional=true for the unconditional reference")
        if has_source and run.unconditional:
            raise RunError("run.unconditional=true but observation sources are enabled; "
                           "disable them (stations, gridded) and use mode plain")
        if run.method != "diffusion":
            self._check_classical()
        elif self.cfg.prior.sampler.start == "background" and self.emulator is None:
            raise RunError("prior.sampler.start=background starts each analysis from the "
                           "emulator's forecast; mode plain has none (use forecast or "
                           "reinit, or prior.sampler.start=noise)")
        check_ranks(self.ranks, run.method, run.members)

    def _check_classical(self) -> None:
        """OI and LETKF: observations to assimilate, and B for every analysis channel."""
        run = self.cfg.run
        if not (run.sources.stations.enabled or run.sources.gridded.enabled):
            raise RunError(f"run.method {run.method} assimilates the stations and gridded "
                           "sources (the emulator is its background): enable one")
        try:
            for c in parse_channels(self.channels):
                run.oi.of("variance", c.variable.name)
                run.oi.of("length_scale_km", c.variable.name)
        except ConfigError as err:
            raise RunError(str(err)) from None

    def _check_errors(self) -> None:
        stats, emu = self.emulator_errors, self.emulator
        if stats is None:
            raise RunError("run.sources.emulator.error_model=statistics but the experiment has "
                           "no emulator error statistics (cycler emulator errors)")
        channels = list(stats["channel"].values)
        missing = [c for c in emu.output_channels if c not in channels]
        if missing or stats.attrs.get("grid") != emu.grid.name:
            raise RunError(f"the emulator error statistics ({stats.attrs.get('grid')}, "
                           f"{channels}) do not cover the emulator ({emu.grid.name}, "
                           f"{list(emu.output_channels)})")
        longest = float(stats["lead_hours"].values[-1])
        if self.cfg.run.mode == "forecast" and longest < self.cfg.run.days * 24:
            raise RunError(f"the emulator error statistics reach {longest:.0f} h, the "
                           f"forecast-mode window is {self.cfg.run.days * 24:.0f} h")

    def mode(self) -> Mode:
        """The configured mode, at the first cycle."""
        run = self.cfg.run
        if self.emulator is None:
            return PlainMode()
        from dafusion.emulator.states import initial_state

        initial = initial_state(self.truth.select(self.emulator.channels), self.times[0],
                                self.emulator, self.cfg.emulator.regrid)
        args = (self.emulator, initial, self.times, self.channels, self.grid,
                self.cfg.emulator.regrid)
        if run.mode == "forecast":
            return ForecastMode(*args)
        return ReinitMode(*args, members=run.reinit == "members", inflation=run.inflation)

    def header(self) -> Header:
        """What ``RunDir.create`` writes before any compute."""
        cfg, table = self.cfg, self.table
        write_obs = None
        if table is not None:  # the rows the run can use, for the report's maps and scatter
            half = _hours(cfg.run.sources.stations.window_hours)
            keep = (table.time >= self.times[0] - half) & (table.time <= self.times[-1] + half)
            # force: a run killed after this file and before inputs.json rewrites it on resume
            write_obs = lambda path: write_table(table.subset(keep), path, force=True)  # noqa: E731
        spread = {"ranks": str(self.ranks.size)} if self.ranks.size > 1 else {}
        return Header(cfg, {**versions(), **spread}, self.inputs,
                      seeding.record(cfg.run.seed, self.times, cfg.run.members), write_obs)


def build_experiment(cfg: Config, device: str = "cpu", ranks: Ranks = SINGLE) -> Experiment:
    """Open the truth, checkpoints and observations named by ``cfg`` and check them
    (``ranks``: this process's place when the members are split across processes)."""
    from dafusion.emulator.checkpoint import demo_emulator_path, load_emulator
    from dafusion.prior import demo_prior_path
    from dafusion.prior.checkpoint import load_prior
    from dafusion.prior.execution import configure as configure_execution

    truth_ref = cfg.run.truth or demo_truth_path()  # a path, or an fsspec URL of a zarr store
    truth = GriddedSource.open(truth_ref, cfg.data.channels, member=cfg.data.member)
    _check_window(truth, analysis_times(cfg))  # before loading anything else
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RunError("--device cuda: no CUDA device is available")
    prior_path = Path(cfg.prior.checkpoint or demo_prior_path())
    denoiser, normaliser, _ = load_prior(prior_path, grid=truth.grid,
                                         channels=cfg.data.channels, device=dev)
    configure_execution(denoiser, cfg.prior.sampler)
    inputs: dict[str, Any] = {
        "config_sha256": hashlib.sha256(dump_config(cfg).encode()).hexdigest(),
        "truth": _truth_record(truth_ref, cfg.data.member),
        "prior": {"checkpoint": prior_path.name,
                  "weights_sha256": sha256(prior_path / "weights.pt")}}
    emulator, errors = None, None
    if cfg.run.mode != "plain":
        emulator_path = Path(cfg.emulator.checkpoint or demo_emulator_path())
        emulator = load_emulator(emulator_path, device=dev)
        inputs["emulator"] = {"checkpoint": emulator_path.name,
                              "weights_sha256": sha256(emulator_path / "weights.pt")}
        errors = _emulator_errors(cfg, emulator_path, emulator, inputs)
    table = observation_table(cfg, truth, inputs)
    removed = inputs.get("observations", {}).get("removed")
    if removed and ranks.main:  # also in log.txt
        warnings.warn(f"{cfg.run.observations}: rows removed before use: " + ", ".join(
            f"{n} {reason}" for reason, n in removed.items()), stacklevel=2)
    return Experiment(cfg, truth, denoiser, normaliser, emulator, table, errors, dev, inputs,
                      ranks)


def _emulator_errors(cfg: Config, checkpoint: Path, emulator: ForecastModel,
                     inputs: dict[str, Any]) -> xr.Dataset | None:
    """The emulator's error statistics named by ``run.sources.emulator``, or None."""
    from dafusion.emulator.errors import FILE, load_statistics

    e = cfg.run.sources.emulator
    if e.error_model != "statistics":
        return None
    path = Path(e.statistics or checkpoint / FILE)
    stats = load_statistics(path, list(emulator.output_channels), emulator.grid.name)
    inputs["emulator_errors"] = {"file": path.name, "sha256": sha256(path),
                                 "made_from": stats.attrs.get("truth", "?"),
                                 "inits": stats.attrs.get("inits", "?")}
    return stats


def observation_table(cfg: Config, truth: GriddedSource,
                      inputs: dict[str, Any]) -> ObservationTable | None:
    """The table of ``run.observations``, or one synthesised from the truth (``obs``)."""
    from dafusion.obs.synth import land_network, station_list_network, synthesise

    run = cfg.run
    if not run.sources.stations.enabled:
        return None
    if run.observations:
        table, removed = screen(read_table(run.observations))
        inputs["observations"] = {"file": Path(run.observations).name,
                                  "sha256": sha256(Path(run.observations)),
                                  "rows": len(table), "removed": removed}
        return table
    o = cfg.obs
    network = (station_list_network(o.station_list, o.n_stations, o.seed) if o.station_list
               else land_network(o.n_stations, o.northern_fraction, o.seed))
    times, half = analysis_times(cfg), _hours(run.sources.stations.window_hours)
    table = synthesise(truth, network, o, str(times[0] - half), str(times[-1] + half))
    inputs["observations"] = {"synthesised": True, "rows": len(table), "obs_seed": o.seed}
    return table


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "platform": platform.platform(),
           "torch_threads": str(torch.get_num_threads()),
           "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(default)")}
    for pkg in ("dafusion", "torch", "torch-harmonics", "numpy", "xarray", "netCDF4", "scipy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _check_window(truth: GriddedSource, times: np.ndarray) -> None:
    have = set(truth.times)
    missing = [str(t)[:16] for t in times if t not in have]
    if missing:
        raise RunError(f"run window {str(times[0])[:16]} .. {str(times[-1])[:16]}: the truth "
                       f"{Path(truth.path).name} has no state at {missing[:4]}"
                       f"{' …' if len(missing) > 4 else ''} (it covers "
                       f"{str(truth.times[0])[:16]} .. {str(truth.times[-1])[:16]})")


def _check_observations(table: ObservationTable | None, times: np.ndarray, window_hours: float,
                        where: str) -> None:
    if table is None:
        raise RunError("run.sources.stations is enabled but the experiment has no "
                       "observation table")
    empty = [str(t)[:16] for t in times if len(table.window(t, _hours(window_hours))) == 0]
    if empty:
        raise RunError(f"no station observations within ±{window_hours} h of the analyses at "
                       f"{empty[:4]}{' …' if len(empty) > 4 else ''} ({where}); disable the "
                       "source (run.sources.stations.enabled=false) or change the window")


def _hours(hours: float) -> np.timedelta64:
    return np.timedelta64(int(hours * 3600), "s")


def _truth_record(ref: str, member: int | None) -> dict[str, Any]:
    """What the run records of its truth: the file's name, size and digest (a URL: itself;
    a zarr store: a digest of its metadata and of every chunk's name and size)."""
    record: dict[str, Any] = ({"url": ref} if is_url(ref) else
                              {"file": Path(ref).name, "bytes": _size(Path(ref)),
                               "sha256": _digest(Path(ref))})
    if member is not None:
        record["member"] = member
    return record


def _digest(path: Path) -> str:
    if path.is_file():
        return sha256(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = f.relative_to(path).as_posix()
        small = f.name in (".zarray", ".zattrs", ".zgroup", ".zmetadata", "zarr.json")
        h.update(f"{rel}\0{f.stat().st_size}\0".encode() + (f.read_bytes() if small else b""))
    return h.hexdigest()


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
