"""The emulator's skill report.

Skill is the latitude-weighted RMSE (WeatherBench convention: weights
proportional to the cell area, i.e. the Gauss weights on the emulator grid)
of each channel against the truth regridded to the emulator grid, averaged
(as mean squared error, then the root) over initial times, per lead time. The
references are persistence (the initial state) and climatology (the
per-gridpoint mean of the training period). A free run checks the long-term
behaviour: it must stay finite, and its time-mean global mean and spatial
standard deviation per channel are compared with the truth's.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dafusion.data import GriddedSource
from dafusion.emulator.base import ForecastModel
from dafusion.emulator.states import initial_state, on_grid
from dafusion.grids import AnyGrid, weighted_mean
from dafusion.io import write_text
from dafusion.progress import null_progress
from dafusion.variables import parse_channel


def skill_report(model: ForecastModel, source: GriddedSource, *, start: str, inits: int,
                 every_days: float, days: float, free_days: float, regrid: str,
                 train_period: tuple[str, str], progress: Callable[..., Any] | None = None,
                 warn: Callable[[str], None] = warnings.warn) -> dict[str, Any]:
    """Skill of ``inits`` forecasts of ``days`` every ``every_days`` from ``start`` against
    persistence and climatology (the training period's states, or in-sample, said so, when
    the truth has none), and the climate of a ``free_days`` free run from ``start``.
    ``warn`` receives what the reader must know (initial times inside the training period,
    an in-sample climatology). ValueError when the truth is too short."""
    t0 = np.datetime64(start, "ns")
    init_times = t0 + (np.arange(inits) * every_days * 24).astype("timedelta64[h]")
    last = init_times[-1] + np.timedelta64(int(days * 24), "h")
    if init_times[0] < source.times[0] or last > source.times[-1]:
        raise ValueError(f"{source.path}: {inits} initial times every {every_days} days from "
                         f"{start} with {days}-day forecasts need the truth until "
                         f"{str(last)[:16]}; it covers {str(source.times[0])[:16]} .. "
                         f"{str(source.times[-1])[:16]} (change --start/--inits/--every-days)")
    clim_times, clim_label = _climatology_times(source, init_times, train_period, warn)
    clim = on_grid(source, clim_times, model.grid, model.channels, regrid)
    steps = int(days * 24 // model.meta.time_step_hours)
    result = {"grid": model.grid.name, "train_period": list(train_period),
              "climatology": clim_label,
              "units": [parse_channel(c).units for c in model.channels],
              "skill": skill(model, source, init_times, steps, clim.values.mean(0), regrid,
                             progress)}
    ref_times = source.times[(source.times >= t0)
                             & (source.times <= t0 + np.timedelta64(int(free_days * 24), "h"))]
    result["free_run_init"] = str(t0)[:16]
    result["reference"] = (f"truth {str(ref_times[0])[:10]} .. {str(ref_times[-1])[:10]}, "
                           f"{ref_times.size} states")
    result["free_run"] = free_run(model, source, t0, free_days, on_grid(
        source, ref_times, model.grid, model.channels, regrid).values)
    return result


def _climatology_times(source: GriddedSource, init_times: np.ndarray,
                       train_period: tuple[str, str], warn: Callable[[str], None]
                       ) -> tuple[np.ndarray, str]:
    """At most ~400 states of the training period, or every 10th state of the truth
    (in-sample) when it has no training period; and how the report names them."""
    times = source.times
    train = times[(times >= np.datetime64(train_period[0]))
                  & (times <= np.datetime64(train_period[1]))]
    if train.size and init_times[0] <= train[-1]:
        warn(f"initial times from {str(init_times[0])[:16]} overlap the training period "
             f"(ends {str(train[-1])[:16]})")
    if train.size:
        return train[:: max(1, train.size // 400)], "training period"
    label = (f"IN-SAMPLE: {str(times[0])[:10]} .. {str(times[-1])[:10]} of the verification "
             "truth (it has no training period), which flatters the climatology reference")
    warn(f"climatology reference is {label}")
    return times[::10], label


def lat_weighted_rmse(err: np.ndarray, grid: AnyGrid) -> np.ndarray:
    """sqrt of the area-weighted mean of ``err**2`` over the last two axes."""
    return np.sqrt(weighted_mean(err ** 2, grid))


def skill(model: ForecastModel, source: GriddedSource, inits: np.ndarray, n_steps: int,
          climatology: np.ndarray, method: str = "spectral",
          progress: Callable[..., Any] | None = None) -> dict[str, Any]:
    """RMSE per (lead, channel) of the model, persistence and climatology, over the
    leads the truth has (NaN for leads it lacks, e.g. 6-hour leads in 12-hourly data)."""
    step = model.time_step
    bar = progress or null_progress
    sq = {k: np.zeros((n_steps, len(model.channels))) for k in
          ("emulator", "persistence", "climatology")}
    have = set(source.times)
    count = np.zeros(n_steps)
    with bar(len(inits), "emulator skill") as pbar:
        for t0 in inits:
            t0 = np.datetime64(t0, "ns")
            valid = t0 + np.arange(1, n_steps + 1) * step
            avail = np.array([v in have for v in valid])  # a 12-hourly truth skips 6-h leads
            init = on_grid(source, np.array([t0]), model.grid, model.channels, method)
            init = init.rename(time="member").assign_coords(time=t0)
            truth = on_grid(source, valid[avail], model.grid, model.channels, method).values
            fc = model.forecast(init, n_steps).sel(channel=model.channels).values[avail, 0]
            for name, pred in (("emulator", fc), ("persistence", init.values),
                               ("climatology", climatology[None])):
                sq[name][avail] += lat_weighted_rmse(pred - truth, model.grid) ** 2
            count += avail
            pbar.update(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        sq = {k: v / np.where(count > 0, count, np.nan)[:, None] for k, v in sq.items()}
    lead_hours = (np.arange(1, n_steps + 1) * step / np.timedelta64(1, "h")).astype(int)
    return {"lead_hours": lead_hours.tolist(), "channels": list(model.channels),
            "inits": [str(np.datetime64(t, "m")) for t in inits],
            "rmse": {k: np.sqrt(v).tolist() for k, v in sq.items()}}


def free_run(model: ForecastModel, source: GriddedSource, init: np.datetime64, days: float,
             reference: np.ndarray) -> dict[str, Any]:
    """A ``days``-long forecast: finite? and its last third's climate vs ``reference``
    (truth states ``(time, channel, lat, lon)`` on the model grid)."""
    n = int(round(days * 24 / (model.time_step / np.timedelta64(1, "h"))))
    state = initial_state(source, init, model)
    fc = model.forecast(state, n).sel(channel=model.channels).values[:, 0]  # raises if not finite
    tail = fc[-max(1, n // 3):]
    def climate(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean = weighted_mean(x, model.grid)
        std = np.sqrt(weighted_mean((x - mean[..., None, None]) ** 2, model.grid))
        return mean.mean(0), std.mean(0)

    fm, fs = climate(tail)
    tm, ts = climate(reference)
    return {"days": days, "steps": n, "finite": bool(np.isfinite(fc).all()),
            "channels": list(model.channels), "global_mean": fm.tolist(),
            "truth_global_mean": tm.tolist(), "spatial_std": fs.tolist(),
            "truth_spatial_std": ts.tolist(),
            "std_ratio": (fs / ts).tolist()}


def write_report(result: dict[str, Any], out: Path) -> list[Path]:
    """skill.json, skill.md (tables) and skill.png (RMSE vs lead per channel)."""
    from dafusion.figures import pyplot, save_figure

    plt = pyplot()

    out.mkdir(parents=True, exist_ok=True)
    sk, fr = result["skill"], result["free_run"]
    write_text(out / "skill.json", json.dumps(result, indent=1))
    leads = np.array(sk["lead_hours"])
    chans = sk["channels"]
    rm = {k: np.array(v) for k, v in sk["rmse"].items()}
    lines = [f"# Emulator skill: {result['checkpoint']}", "",
             f"Latitude-weighted RMSE against the truth on {result['grid']}, "
             f"{len(sk['inits'])} initial times {sk['inits'][0]} .. {sk['inits'][-1]} "
             f"(outside the training period {result['train_period'][0]} .. "
             f"{result['train_period'][1]}). Command: `{result['command']}`.", "",
             "| lead | " + " | ".join(chans) + " |", "|---" * (len(chans) + 1) + "|"]
    for hours in (12, 24, 72, 120, 168):
        if hours not in leads:
            continue
        i = int(np.flatnonzero(leads == hours)[0])
        cells = [f"{rm['emulator'][i, c]:.3g} ({rm['persistence'][i, c]:.3g} / "
                 f"{rm['climatology'][i, c]:.3g})" for c in range(len(chans))]
        lines.append(f"| {hours} h | " + " | ".join(cells) + " |")
    lines += ["", "Cells: emulator (persistence / climatology). Climatology: mean of the "
              f"{result.get('climatology', 'training period')}.", "",
              f"## Free run: {fr['days']} days from {result['free_run_init']}", "",
              f"Finite throughout: {fr['finite']}. Last third vs truth climate "
              f"({result['reference']}):", "",
              "| channel | global mean | truth | spatial std | truth | ratio |",
              "|---|---|---|---|---|---|"]
    for c, name in enumerate(fr["channels"]):
        lines.append(f"| {name} | {fr['global_mean'][c]:.5g} | {fr['truth_global_mean'][c]:.5g}"
                     f" | {fr['spatial_std'][c]:.4g} | {fr['truth_spatial_std'][c]:.4g} | "
                     f"{fr['std_ratio'][c]:.2f} |")
    write_text(out / "skill.md", "\n".join(lines) + "\n")
    ncol = 3
    nrow = int(np.ceil(len(chans) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4 * ncol, 3 * nrow), squeeze=False)
    for c, name in enumerate(chans):
        ax = axes.flat[c]
        for key, style in (("emulator", "-"), ("persistence", "--"), ("climatology", ":")):
            ax.plot(leads / 24, rm[key][:, c], style, label=key)
        ax.set_title(f"{name} [{result['units'][c]}]")
        ax.set_xlabel("lead (days)")
        ax.set_ylabel("RMSE")
    for ax in axes.flat[len(chans):]:
        ax.axis("off")
    axes.flat[0].legend()
    save_figure(fig, out / "skill.png", dpi=90)
    return [out / "skill.json", out / "skill.md", out / "skill.png"]
