"""Initial states from the truth, and the emulator's skill report.

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
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import xarray as xr

from dafusion.data import GriddedSource
from dafusion.emulator.base import ForecastModel
from dafusion.grids import AnyGrid, weighted_mean
from dafusion.progress import null_progress
from dafusion.regrid import make_regridder


def on_grid(source: GriddedSource, times: np.ndarray, grid: AnyGrid, channels: list[str],
            method: str = "spectral") -> xr.DataArray:
    """Truth states at ``times`` regridded to ``grid``: ``(time, channel, lat, lon)``."""
    times = np.asarray(times, "datetime64[ns]")
    missing = [str(t)[:16] for t in times if t not in set(source.times)]
    if missing:
        raise ValueError(f"{source.path}: no truth at {missing[:5]}"
                         f"{' ...' if len(missing) > 5 else ''} (data covers "
                         f"{str(source.times[0])[:16]} .. {str(source.times[-1])[:16]})")
    values = source.stack().sel(time=times, channel=channels).values
    if source.grid != grid:
        values = make_regridder(source.grid, grid, method)(
            torch.as_tensor(values, dtype=torch.float64)).numpy()
    return xr.DataArray(values, dims=("time", "channel", "lat", "lon"),
                        coords={"time": times, "channel": channels, "lat": grid.lat,
                                "lon": grid.lon})


def initial_state(source: GriddedSource, time: str | np.datetime64, model: ForecastModel,
                  method: str = "spectral") -> xr.DataArray:
    """The truth at ``time`` on the model's grid, ``(member=1, channel, lat, lon)``."""
    state = on_grid(source, np.array([np.datetime64(time, "ns")]), model.grid, model.channels,
                    method)
    return state.isel(time=0).expand_dims("member")


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
    (out / "skill.json").write_text(json.dumps(result, indent=1))
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
    (out / "skill.md").write_text("\n".join(lines) + "\n")
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
