"""The report's figures (the paper's figure numbers in brackets); see ``report.py``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from dafusion.baselines.geometry import EARTH_RADIUS_KM, great_circle_km
from dafusion.cycler.metrics import rank_histogram, spread_skill
from dafusion.cycler.reporting.runview import RunView
from dafusion.figures import pyplot, save_figure
from dafusion.grids import AnyGrid, grid_from_name, weighted_mean
from dafusion.interp import interpolate
from dafusion.obs.gridded import Coarsening
from dafusion.spectra import power_spectrum
from dafusion.variables import parse_channel

# --------------------------------------------------------------------------- helpers


def _land_outline(ax: Any) -> None:
    from global_land_mask import globe

    lat = np.linspace(-89.5, 89.5, 180)
    lon = np.linspace(0.25, 359.75, 720)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    land = globe.is_land(la, np.where(lo > 180, lo - 360, lo)).astype(float)
    ax.contour(lon, lat, land, levels=[0.5], colors="k", linewidths=0.4)


def _map(ax: Any, grid: AnyGrid, field: np.ndarray, title: str, units: str, cmap: str,
         vmin: float | None = None, vmax: float | None = None, earth: bool = False) -> None:
    plt = pyplot()
    mesh = ax.pcolormesh(grid.lon, grid.lat, field, cmap=cmap, vmin=vmin, vmax=vmax,
                         shading="nearest")
    if earth:
        _land_outline(ax)
    ax.set_title(title, fontsize=9)
    ax.set_xlim(0, 360)
    ax.set_ylim(-90, 90)
    ax.set_xlabel("longitude (°E)", fontsize=8)
    ax.set_ylabel("latitude (°N)", fontsize=8)
    ax.tick_params(labelsize=7)
    plt.colorbar(mesh, ax=ax, shrink=0.8).set_label(units, fontsize=8)


def _stations(ax: Any, lat: np.ndarray, lon: np.ndarray) -> None:
    if lat.size:
        ax.scatter(lon % 360, lat, s=6, c="k", marker="^", linewidths=0, label="stations")


def coarse_and_bicubic(run: RunView, truth: np.ndarray) -> tuple[AnyGrid, np.ndarray, np.ndarray]:
    """The coarse input (the truth coarsened as the run's gridded source) and its bicubic
    interpolation back to the analysis grid (the paper's baseline)."""
    g = run.cfg.run.sources.gridded
    coarse_grid = grid_from_name(g.grid)
    coarse = Coarsening(run.grid, coarse_grid, g.method)(
        torch.as_tensor(truth[None, None], dtype=torch.float64))[0, 0].numpy()
    lat, lon = np.meshgrid(run.grid.lat, run.grid.lon, indexing="ij")
    back = interpolate(coarse, coarse_grid, lat.ravel(), lon.ravel(), "bicubic")
    return coarse_grid, coarse, back.reshape(run.grid.shape)


def units(channel: str) -> str:
    return parse_channel(channel).units


# --------------------------------------------------------------------------- figures


def figure_map(run: RunView, channel: str, cycle: int, out: Path) -> Path:
    plt = pyplot()
    mean, std = run.mean_std(cycle, channel)
    truth = run.truth_field(cycle, channel)
    lat, lon, _ = run.stations(cycle, channel)
    u, earth = units(channel), run.is_earth()
    lo, hi = np.percentile(np.concatenate([mean.ravel(), truth.ravel()]), [1, 99])
    err = mean - truth
    e = np.abs(err).max()
    fig, axes = plt.subplots(2, 2, figsize=(11, 6))
    _map(axes[0, 0], run.grid, mean, "ensemble mean", u, "viridis", lo, hi, earth)
    _map(axes[0, 1], run.grid, truth, "truth", u, "viridis", lo, hi, earth)
    _map(axes[1, 0], run.grid, err, "error (mean − truth)", u, "RdBu_r", -e, e, earth)
    _map(axes[1, 1], run.grid, std, "ensemble std", u, "magma", 0, None, earth)
    for ax in (axes[0, 0], axes[1, 0]):
        _stations(ax, lat, lon)
    fig.suptitle(f"{run.path.name}: {channel} at {str(run.time(cycle))[:16]} "
                 f"(cycle {cycle}, {lat.size} stations)", fontsize=10)
    return save_figure(fig, out / f"map_{channel}_c{cycle:03d}.png")


def figure_superres(run: RunView, channel: str, cycle: int, out: Path) -> Path:
    plt = pyplot()
    mean, _ = run.mean_std(cycle, channel)
    truth = run.truth_field(cycle, channel)
    cgrid, coarse, bicubic = coarse_and_bicubic(run, truth)
    u, earth = units(channel), run.is_earth()
    lo, hi = np.percentile(truth, [1, 99])
    e = max(np.abs(mean - truth).max(), np.abs(bicubic - truth).max())
    fig, axes = plt.subplots(2, 3, figsize=(15, 6))
    _map(axes[0, 0], cgrid, coarse, f"coarse input ({cgrid.name})", u, "viridis", lo, hi, earth)
    _map(axes[0, 1], run.grid, mean, "analysis (ensemble mean)", u, "viridis", lo, hi, earth)
    _map(axes[0, 2], run.grid, bicubic, "bicubic interpolation of the input", u, "viridis",
         lo, hi, earth)
    _map(axes[1, 0], run.grid, truth, "truth", u, "viridis", lo, hi, earth)
    rm_a = np.sqrt(weighted_mean((mean - truth) ** 2, run.grid))
    rm_b = np.sqrt(weighted_mean((bicubic - truth) ** 2, run.grid))
    _map(axes[1, 1], run.grid, mean - truth, f"analysis error (RMSE {rm_a:.3g})", u, "RdBu_r",
         -e, e, earth)
    _map(axes[1, 2], run.grid, bicubic - truth, f"bicubic error (RMSE {rm_b:.3g})", u,
         "RdBu_r", -e, e, earth)
    fig.suptitle(f"{run.path.name}: super-resolution of {channel} at "
                 f"{str(run.time(cycle))[:16]}", fontsize=10)
    return save_figure(fig, out / f"superres_{channel}_c{cycle:03d}.png")


def figure_spectra(run: RunView, channel: str, cycles: list[int], out: Path) -> Path:
    plt = pyplot()
    acc: dict[str, list[np.ndarray]] = {"truth": [], "mean": [], "bicubic": [], "members": []}
    for c in cycles:
        truth = run.truth_field(c, channel)
        acc["truth"].append(power_spectrum(truth, run.grid))
        acc["mean"].append(power_spectrum(run.mean_std(c, channel)[0], run.grid))
        acc["bicubic"].append(power_spectrum(coarse_and_bicubic(run, truth)[2], run.grid))
        members = run.members(c, channel)
        if members is not None:
            acc["members"].append(power_spectrum(members, run.grid))
    fig, ax = plt.subplots(figsize=(6, 4))
    ell = np.arange(acc["truth"][0].size)
    if acc["members"]:
        spec = np.mean(acc["members"], axis=0)
        for k, s in enumerate(spec):
            ax.loglog(ell[1:], s[1:], color="0.7", lw=0.6, label="members" if k == 0 else None)
    ax.loglog(ell[1:], np.mean(acc["truth"], 0)[1:], "k", lw=1.5, label="truth")
    ax.loglog(ell[1:], np.mean(acc["mean"], 0)[1:], "C0", label="ensemble mean")
    ax.loglog(ell[1:], np.mean(acc["bicubic"], 0)[1:], "C3--", label="bicubic of coarse input")
    ax.set_xlabel("spherical-harmonic degree l")
    ax.set_ylabel(f"power [({units(channel)})²]")
    ax.set_title(f"{channel}: power spectra, mean over cycles {cycles}", fontsize=9)
    ax.legend(fontsize=7)
    return save_figure(fig, out / f"spectra_{channel}.png")


def figure_trace(run: RunView, channel: str, cycles: list[int], latitude: float,
                 out: Path) -> Path:
    plt = pyplot()
    row = int(np.argmin(np.abs(run.grid.lat - latitude)))
    lat = run.grid.lat[row]
    fig, axes = plt.subplots(1, len(cycles) + 1, figsize=(4.2 * (len(cycles) + 1), 3.4),
                             squeeze=False)
    for ax, c in zip(axes[0], cycles):
        mean, std = run.mean_std(c, channel)
        ax.fill_between(run.grid.lon, mean[row] - std[row], mean[row] + std[row], alpha=0.3,
                        label="mean ± std")
        ax.plot(run.grid.lon, mean[row], "C0", label="ensemble mean")
        ax.plot(run.grid.lon, run.truth_field(c, channel)[row], "k", label="truth")
        ax.set_title(f"{str(run.time(c))[:16]}, {lat:.1f}°N", fontsize=9)
        ax.set_xlabel("longitude (°E)")
        ax.set_ylabel(f"{channel} [{units(channel)}]")
    axes[0, 0].legend(fontsize=7)
    ax = axes[0, -1]
    times, m, s, t = [], [], [], []
    for c in run.cycles:
        mean, std = run.mean_std(c, channel)
        times.append(run.time(c))
        m.append(mean[row].mean())
        s.append(np.sqrt((std[row] ** 2).mean()))
        t.append(run.truth_field(c, channel)[row].mean())
    days = (np.array(times) - times[0]) / np.timedelta64(1, "D")
    ax.fill_between(days, np.array(m) - s, np.array(m) + s, alpha=0.3)
    ax.plot(days, m, "C0.-", label="ensemble mean")
    ax.plot(days, t, "k.-", label="truth")
    ax.set_title(f"zonal mean at {lat:.1f}°N over the window", fontsize=9)
    ax.set_xlabel("lead (days)")
    ax.set_ylabel(f"{channel} [{units(channel)}]")
    return save_figure(fig, out / f"trace_{channel}.png")


def figure_scatter(run: RunView, channel: str, cycles: list[int], out: Path) -> Path:
    plt = pyplot()
    obs_x, obs_y, far_x, far_y = [], [], [], []
    glat, glon = np.meshgrid(run.grid.lat, run.grid.lon, indexing="ij")
    for c in cycles:
        mean, _ = run.mean_std(c, channel)
        truth = run.truth_field(c, channel)
        lat, lon, value = run.stations(c, channel)
        if lat.size:
            obs_x.append(value)
            obs_y.append(interpolate(mean, run.grid, lat, lon, "bilinear"))
            # grid points more than 5 degrees (great circle) from every station
            d = np.rad2deg(great_circle_km(glat.ravel(), glon.ravel(), lat, lon).min(1)
                           / EARTH_RADIUS_KM)
            far = d > 5.0
        else:
            far = np.ones(glat.size, bool)
        far_x.append(truth.ravel()[far])
        far_y.append(mean.ravel()[far])
    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    u = units(channel)
    for ax, xs, ys, label in ((axes[0], obs_x, obs_y, "observation"),
                              (axes[1], far_x, far_y, "truth, > 5° from stations")):
        if xs:
            x, y = np.concatenate(xs), np.concatenate(ys)
            ax.scatter(x, y, s=3, alpha=0.4)
            lim = [min(x.min(), y.min()), max(x.max(), y.max())]
            ax.plot(lim, lim, "k--", lw=0.8)
            r = np.corrcoef(x, y)[0, 1] if x.size > 1 else np.nan
            ax.set_title(f"analysis vs {label} (n={x.size}, r={r:.3f})", fontsize=9)
        else:
            ax.set_title(f"analysis vs {label}: none", fontsize=9)
        ax.set_xlabel(f"{label} [{u}]")
        ax.set_ylabel(f"analysis mean [{u}]")
    fig.suptitle(f"{run.path.name}: {channel}, cycles {cycles}", fontsize=10)
    return save_figure(fig, out / f"scatter_{channel}.png")


def calibration(runs: list[RunView], channels: list[str]) -> dict[str, Any]:
    """Spread-skill ratio and CRPS by lead per run and channel; rank histograms of the
    first run (every cycle with members)."""
    out: dict[str, Any] = {"spread_skill": {}, "crps": {}, "rank": {}}
    for run in runs:
        m = run.cfg.run.members
        for ch in channels:
            rows = sorted((r for r in run.metrics if r["channel"] == ch),
                          key=lambda r: r["lead_hours"])
            lead = np.array([r["lead_hours"] for r in rows]) / 24
            out["spread_skill"][(run.path.name, ch)] = (
                lead, spread_skill([r["spread"] for r in rows], [r["rmse"] for r in rows], m))
            out["crps"][(run.path.name, ch)] = (lead, np.array([r["crps"] for r in rows]))
    first = runs[0]
    for ch in channels:
        hist = None
        for c in first.cycles:
            ens = first.members(c, ch)
            if ens is None:
                continue
            h = rank_histogram(ens, first.truth_field(c, ch))
            hist = h if hist is None else hist + h
        if hist is not None:
            out["rank"][ch] = hist
    return out


def figure_calibration(runs: list[RunView], channels: list[str], cal: dict[str, Any],
                       out: Path) -> Path:
    plt = pyplot()
    n = len(channels)
    fig, axes = plt.subplots(3, n, figsize=(3.6 * n, 8.5), squeeze=False)
    for j, ch in enumerate(channels):
        for run in runs:
            lead, ratio = cal["spread_skill"][(run.path.name, ch)]
            axes[0, j].plot(lead, ratio, ".-", label=run.path.name)
            lead, crps = cal["crps"][(run.path.name, ch)]
            axes[1, j].plot(lead, crps, ".-", label=run.path.name)
        axes[0, j].axhline(1.0, color="k", lw=0.8, ls="--")
        axes[0, j].set_title(f"{ch}: spread-skill ratio", fontsize=9)
        axes[0, j].set_xlabel("lead (days)")
        axes[1, j].set_title(f"{ch}: CRPS [{units(ch)}]", fontsize=9)
        axes[1, j].set_xlabel("lead (days)")
        hist = cal["rank"].get(ch)
        ax = axes[2, j]
        if hist is not None:
            freq = hist / hist.sum()
            ax.bar(np.arange(hist.size), freq, color="C2")
            ax.axhline(1.0 / hist.size, color="k", lw=0.8, ls="--")
            ax.set_title(f"{ch}: rank histogram ({runs[0].path.name})", fontsize=9)
            ax.set_xlabel("rank of the truth among the members")
            ax.set_ylabel("frequency")
        else:
            ax.set_title(f"{ch}: no members saved", fontsize=9)
    axes[0, 0].legend(fontsize=7)
    return save_figure(fig, out / "calibration.png")


def obs_summary(runs: list[RunView]) -> list[dict[str, Any]]:
    """Per run and source: cycles, mean used/rejected counts, O−B and O−A mean and RMS
    (RMS over cycles of each cycle's RMS, as a root mean square)."""
    out = []
    for run in runs:
        sources = sorted({r["source"] for r in run.obs_rows})
        for s in sources:
            rows = [r for r in run.obs_rows if r["source"] == s]

            def col(name: str, rows: list = rows) -> np.ndarray:
                return np.array([float(r[name]) if r[name] != "" else np.nan for r in rows])

            out.append({"run": run.path.name, "source": s, "cycles": len(rows),
                        "used": float(col("used").mean()),
                        "rejected": float(col("rejected").mean()),
                        "omb_mean": float(np.nanmean(col("omb_mean")))
                        if np.isfinite(col("omb_mean")).any() else np.nan,
                        "omb_rms": float(np.sqrt(np.nanmean(col("omb_rms") ** 2)))
                        if np.isfinite(col("omb_rms")).any() else np.nan,
                        "oma_mean": float(np.mean(col("oma_mean"))),
                        "oma_rms": float(np.sqrt(np.mean(col("oma_rms") ** 2)))})
    return out


def figure_obs_space(runs: list[RunView], out: Path) -> Path:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for run in runs:
        for s in sorted({r["source"] for r in run.obs_rows}):
            rows = [r for r in run.obs_rows if r["source"] == s]
            cyc = np.array([int(r["cycle"]) for r in rows])
            get = lambda k, rows=rows: np.array([  # noqa: E731
                float(r[k]) if r[k] != "" else np.nan for r in rows])
            label = f"{run.path.name}/{s}"
            axes[0].plot(cyc, get("omb_rms"), "o--", ms=3, label=f"{label} O−B")
            axes[0].plot(cyc, get("oma_rms"), "o-", ms=3, label=f"{label} O−A")
            axes[1].plot(cyc, get("omb_mean"), "o--", ms=3, label=f"{label} O−B")
            axes[1].plot(cyc, get("oma_mean"), "o-", ms=3, label=f"{label} O−A")
            axes[2].plot(cyc, get("used"), "o-", ms=3, label=f"{label} used")
            axes[2].plot(cyc, get("rejected"), "x--", ms=4, label=f"{label} rejected")
    for ax, title in zip(axes, ("RMS (normalised units)", "mean (normalised units)",
                                "observations per cycle")):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("cycle")
    axes[0].legend(fontsize=6)
    axes[2].legend(fontsize=6)
    return save_figure(fig, out / "obs_space.png")
