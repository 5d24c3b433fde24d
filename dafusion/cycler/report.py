"""``cycler report``: the paper's diagnostics as figures, ensemble calibration and
observation-space statistics, on one page (``report.md``) with the figures beside it.

Figures (the paper's figure numbers in brackets), for the chosen variables and cycles of
the first run, unless said otherwise:

* ``map_<ch>_cNNN.png``   ensemble mean, truth, error, ensemble std, stations (1, 4, 7)
* ``superres_<ch>_cNNN.png`` coarse input (the truth coarsened as the run's gridded source
  would be), analysis, bicubic interpolation of the coarse input, truth, both errors (2-3)
* ``spectra_<ch>.png``    spherical-harmonic power spectra of truth, members, mean and
  the bicubic interpolation, averaged over the chosen cycles (5, 10, 12)
* ``trace_<ch>.png``      along a latitude circle at the chosen cycles, and the band mean
  over the window: ensemble mean ± std against the truth (6, 11, 14, 19)
* ``scatter_<ch>.png``    analysis vs observation at the stations, analysis vs truth at
  the grid points away from the stations (8, 9, 13, 15)
* ``skill.png``           RMSE vs lead time per variable, all runs (18)
* ``calibration.png``     spread-skill ratio and CRPS vs lead time, all runs; rank
  histograms of the first run (WeatherBench 2 / Hamill 2001 conventions; see
  ``dafusion.cycler.metrics``)
* ``obs_space.png``       per source: O−B and O−A mean and RMS per cycle, used and
  rejected counts (DART ``obs_diag`` style; normalised units)
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from dafusion.config import Config, load_config
from dafusion.cycler.compare import check_comparable, plot_rmse, read_metrics, rmse_by_lead_day
from dafusion.cycler.metrics import rank_histogram, spatial_mean, spread_skill
from dafusion.data import GriddedSource, demo_truth_path
from dafusion.grids import AnyGrid, grid_from_name
from dafusion.interp import PointInterpolation
from dafusion.obs.gridded import Coarsening
from dafusion.obs.table import read_table
from dafusion.spectra import power_spectrum
from dafusion.variables import parse_channel


class ReportError(ValueError):
    """A run directory the report cannot read; names the file."""


def _plt():  # noqa: ANN202
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def channel_field(ds: xr.Dataset, channel: str, suffix: str = "") -> np.ndarray:
    """A channel's values from a CF state dataset (``dafusion.io.state_dataset`` layout)."""
    ch = parse_channel(channel)
    name = ch.variable.name + suffix
    if name not in ds:
        raise ReportError(f"{ds.encoding.get('source', 'dataset')}: no variable {name}")
    field = ds[name]
    if ch.level is not None:
        field = field.sel(level=ch.level)
    return np.asarray(field.values, dtype=np.float64)


@dataclasses.dataclass
class RunView:
    """What the report reads from one run directory."""

    path: Path
    cfg: Config
    truth: GriddedSource
    metrics: list[dict[str, Any]]
    obs_rows: list[dict[str, str]]
    _cache: dict[Any, Any] = dataclasses.field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, path: Path) -> RunView:
        path = Path(path)
        if not (path / "config.yaml").exists():
            raise ReportError(f"{path}: not a run directory (no config.yaml)")
        cfg = load_config(path / "config.yaml")
        truth = GriddedSource.open(cfg.run.truth or demo_truth_path(), cfg.data.channels)
        obs_rows: list[dict[str, str]] = []
        if (path / "obs_diagnostics.csv").exists():
            with open(path / "obs_diagnostics.csv") as f:
                obs_rows = list(csv.DictReader(f))
        return cls(path, cfg, truth, read_metrics(path), obs_rows)

    @property
    def grid(self) -> AnyGrid:
        return self.truth.grid

    @property
    def channels(self) -> list[str]:
        return list(self.cfg.data.channels)

    @property
    def cycles(self) -> list[int]:
        return sorted({int(r["cycle"]) for r in self.metrics})

    def time(self, cycle: int) -> np.datetime64:
        row = next(r for r in self.metrics if int(r["cycle"]) == cycle)
        return np.datetime64(row["valid_time"], "ns")

    def _open(self, cycle: int, name: str) -> xr.Dataset:
        path = self.path / f"cycle_{cycle:03d}" / name
        if not path.exists():
            raise ReportError(f"{path}: missing")
        return xr.load_dataset(path)

    def mean_std(self, cycle: int, channel: str) -> tuple[np.ndarray, np.ndarray]:
        ds = self._open(cycle, "analysis.nc")
        return channel_field(ds, channel), channel_field(ds, channel, "_std")

    def members(self, cycle: int, channel: str) -> np.ndarray | None:
        path = self.path / f"cycle_{cycle:03d}" / "members.nc"
        return channel_field(xr.load_dataset(path), channel) if path.exists() else None

    def truth_field(self, cycle: int, channel: str) -> np.ndarray:
        key = ("truth", cycle)
        if key not in self._cache:  # every figure asks again; read each state once
            self._cache[key] = self.truth.at(self.time(cycle))
        return np.asarray(self._cache[key].sel(channel=channel).values, dtype=np.float64)

    def stations(self, cycle: int, channel: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """lat, lon, value of the observations of ``channel`` usable at ``cycle``."""
        path = self.path / "observations.nc"
        if not path.exists():
            return np.zeros(0), np.zeros(0), np.zeros(0)
        if "table" not in self._cache:
            self._cache["table"] = read_table(path)
        table = self._cache["table"]
        half = np.timedelta64(int(self.cfg.run.sources.stations.window_hours * 3600), "s")
        rows = table.window(self.time(cycle), half)
        ch = parse_channel(channel)
        level = np.nan if ch.level is None else float(ch.level)
        keep = (rows.variable == ch.variable.name) & (rows.qc == 0) & (
            np.isnan(rows.level) if np.isnan(level) else rows.level == level)
        return rows.lat[keep], rows.lon[keep], rows.value[keep]

    def is_earth(self) -> bool:
        return "dafusion_world_config" not in self.truth.ds.attrs


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
    plt = _plt()
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


def _interp(grid: AnyGrid, field: np.ndarray, lat: np.ndarray, lon: np.ndarray,
            method: str) -> np.ndarray:
    op = PointInterpolation.build(grid, lat, lon, np.zeros(lat.size, int), method)
    return op.apply(torch.as_tensor(field[None, None], dtype=torch.float64))[0].numpy()


def coarse_and_bicubic(run: RunView, truth: np.ndarray) -> tuple[AnyGrid, np.ndarray, np.ndarray]:
    """The coarse input (the truth coarsened as the run's gridded source) and its bicubic
    interpolation back to the analysis grid (the paper's baseline)."""
    g = run.cfg.run.sources.gridded
    coarse_grid = grid_from_name(g.grid)
    coarse = Coarsening(run.grid, coarse_grid, g.method)(
        torch.as_tensor(truth[None, None], dtype=torch.float64))[0, 0].numpy()
    lat, lon = np.meshgrid(run.grid.lat, run.grid.lon, indexing="ij")
    back = _interp(coarse_grid, coarse, lat.ravel(), lon.ravel(), "bicubic")
    return coarse_grid, coarse, back.reshape(run.grid.shape)


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    _plt().close(fig)
    return path


def _units(channel: str) -> str:
    return parse_channel(channel).units


# --------------------------------------------------------------------------- figures


def figure_map(run: RunView, channel: str, cycle: int, out: Path) -> Path:
    plt = _plt()
    mean, std = run.mean_std(cycle, channel)
    truth = run.truth_field(cycle, channel)
    lat, lon, _ = run.stations(cycle, channel)
    u, earth = _units(channel), run.is_earth()
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
    return _save(fig, out / f"map_{channel}_c{cycle:03d}.png")


def figure_superres(run: RunView, channel: str, cycle: int, out: Path) -> Path:
    plt = _plt()
    mean, _ = run.mean_std(cycle, channel)
    truth = run.truth_field(cycle, channel)
    cgrid, coarse, bicubic = coarse_and_bicubic(run, truth)
    u, earth = _units(channel), run.is_earth()
    lo, hi = np.percentile(truth, [1, 99])
    e = max(np.abs(mean - truth).max(), np.abs(bicubic - truth).max())
    fig, axes = plt.subplots(2, 3, figsize=(15, 6))
    _map(axes[0, 0], cgrid, coarse, f"coarse input ({cgrid.name})", u, "viridis", lo, hi, earth)
    _map(axes[0, 1], run.grid, mean, "analysis (ensemble mean)", u, "viridis", lo, hi, earth)
    _map(axes[0, 2], run.grid, bicubic, "bicubic interpolation of the input", u, "viridis",
         lo, hi, earth)
    _map(axes[1, 0], run.grid, truth, "truth", u, "viridis", lo, hi, earth)
    rm_a = np.sqrt(spatial_mean((mean - truth) ** 2, run.grid))
    rm_b = np.sqrt(spatial_mean((bicubic - truth) ** 2, run.grid))
    _map(axes[1, 1], run.grid, mean - truth, f"analysis error (RMSE {rm_a:.3g})", u, "RdBu_r",
         -e, e, earth)
    _map(axes[1, 2], run.grid, bicubic - truth, f"bicubic error (RMSE {rm_b:.3g})", u,
         "RdBu_r", -e, e, earth)
    fig.suptitle(f"{run.path.name}: super-resolution of {channel} at "
                 f"{str(run.time(cycle))[:16]}", fontsize=10)
    return _save(fig, out / f"superres_{channel}_c{cycle:03d}.png")


def figure_spectra(run: RunView, channel: str, cycles: list[int], out: Path) -> Path:
    plt = _plt()
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
    ax.set_ylabel(f"power [({_units(channel)})²]")
    ax.set_title(f"{channel}: power spectra, mean over cycles {cycles}", fontsize=9)
    ax.legend(fontsize=7)
    return _save(fig, out / f"spectra_{channel}.png")


def figure_trace(run: RunView, channel: str, cycles: list[int], latitude: float,
                 out: Path) -> Path:
    plt = _plt()
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
        ax.set_ylabel(f"{channel} [{_units(channel)}]")
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
    ax.set_ylabel(f"{channel} [{_units(channel)}]")
    return _save(fig, out / f"trace_{channel}.png")


def figure_scatter(run: RunView, channel: str, cycles: list[int], out: Path) -> Path:
    plt = _plt()
    obs_x, obs_y, far_x, far_y = [], [], [], []
    glat, glon = np.meshgrid(run.grid.lat, run.grid.lon, indexing="ij")
    for c in cycles:
        mean, _ = run.mean_std(c, channel)
        truth = run.truth_field(c, channel)
        lat, lon, value = run.stations(c, channel)
        if lat.size:
            obs_x.append(value)
            obs_y.append(_interp(run.grid, mean, lat, lon, "bilinear"))
            # grid points more than 5 degrees (great circle) from every station
            d = _angular_distance(glat.ravel()[:, None], glon.ravel()[:, None], lat[None],
                                  lon[None]).min(1)
            far = d > 5.0
        else:
            far = np.ones(glat.size, bool)
        far_x.append(truth.ravel()[far])
        far_y.append(mean.ravel()[far])
    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    u = _units(channel)
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
    return _save(fig, out / f"scatter_{channel}.png")


def _angular_distance(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray,
                      lon2: np.ndarray) -> np.ndarray:
    p1, p2 = np.deg2rad(lat1), np.deg2rad(lat2)
    dl = np.deg2rad(lon2 - lon1)
    c = np.sin(p1) * np.sin(p2) + np.cos(p1) * np.cos(p2) * np.cos(dl)
    return np.rad2deg(np.arccos(np.clip(c, -1, 1)))


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
    plt = _plt()
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
        axes[1, j].set_title(f"{ch}: CRPS [{_units(ch)}]", fontsize=9)
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
    return _save(fig, out / "calibration.png")


def obs_summary(runs: list[RunView]) -> list[dict[str, Any]]:
    """Per run and source: cycles, mean used/rejected counts, O−B and O−A mean and RMS
    (RMS over cycles of each cycle's RMS, as a root mean square)."""
    out = []
    for run in runs:
        sources = sorted({r["source"] for r in run.obs_rows})
        for s in sources:
            rows = [r for r in run.obs_rows if r["source"] == s]

            def col(name: str) -> np.ndarray:
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
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for run in runs:
        for s in sorted({r["source"] for r in run.obs_rows}):
            rows = [r for r in run.obs_rows if r["source"] == s]
            cyc = np.array([int(r["cycle"]) for r in rows])
            get = lambda k: np.array([float(r[k]) if r[k] != "" else np.nan  # noqa: E731
                                      for r in rows])
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
    return _save(fig, out / "obs_space.png")


# --------------------------------------------------------------------------- the page


def default_cycles(run: RunView) -> list[int]:
    c = run.cycles
    return sorted({c[0], c[len(c) // 2], c[-1]})


def make_report(run_dirs: list[Path], out: Path, variables: list[str] | None = None,
                cycles: list[int] | None = None, latitude: float = 45.0) -> Path:
    """Write the figures and ``report.md`` into ``out``; returns the page's path."""
    runs = [RunView.open(p) for p in run_dirs]
    if len(runs) > 1:
        check_comparable([r.path for r in runs])
    first = runs[0]
    variables = variables or [c for c in ("t850", "z500", "u500") if c in first.channels] \
        or first.channels[:3]
    unknown = [v for v in variables if v not in first.channels]
    if unknown:
        raise ReportError(f"--variables {unknown}: not channels of {first.path.name} "
                          f"({first.channels})")
    cycles = cycles if cycles is not None else default_cycles(first)
    bad = [c for c in cycles if c not in first.cycles]
    if bad:
        raise ReportError(f"--cycles {bad}: {first.path.name} has cycles {first.cycles}")
    out.mkdir(parents=True, exist_ok=True)
    lines = [f"# Assimilation report: {', '.join(r.path.name for r in runs)}", ""]
    lines += ["| run | mode | members | window | sources |", "|---|---|---|---|---|"]
    for r in runs:
        src = sorted({row["source"] for row in r.obs_rows}) or ["none (unconditional)"]
        lines.append(f"| {r.path.name} | {r.cfg.run.mode} | {r.cfg.run.members} | "
                     f"{str(r.time(r.cycles[0]))[:16]} .. {str(r.time(r.cycles[-1]))[:16]} | "
                     f"{', '.join(src)} |")
    lines += ["", "## Skill over the window (Figure 18)", "",
              "Latitude-weighted RMSE of the ensemble mean against the truth.", "",
              "![skill](skill.png)", ""]
    channels = first.channels
    plot_rmse([r.metrics for r in runs], [r.path.name for r in runs], channels,
              out / "skill.png")
    lines += ["| variable | run | " + " | ".join(f"day {d}" for d in range(
        int(max(r["lead_hours"] for r in first.metrics) // 24) + 1)) + " |"]
    lines += ["|---|---|" + "---|" * (int(max(r["lead_hours"] for r in first.metrics)
                                          // 24) + 1)]
    for ch in channels:
        for r in runs:
            days = rmse_by_lead_day(r.metrics).get(ch, {})
            lines.append(f"| {ch} | {r.path.name} | "
                         + " | ".join(f"{v:.4g}" for v in days.values()) + " |")
    cal = calibration(runs, variables)
    figure_calibration(runs, variables, cal, out)
    lines += ["", "## Ensemble calibration", "",
              "Spread-skill ratio sqrt((M+1)/M)·spread/RMSE (1 = calibrated; WeatherBench 2), "
              "fair CRPS (Ferro 2014), rank histograms over every grid point and cycle "
              "(flat = calibrated; U = under-dispersive).", "", "![calibration](calibration.png)",
              "", "| run | variable | mean spread-skill | mean CRPS |", "|---|---|---|---|"]
    for r in runs:
        for ch in variables:
            lines.append(f"| {r.path.name} | {ch} | "
                         f"{np.nanmean(cal['spread_skill'][(r.path.name, ch)][1]):.3f} | "
                         f"{np.nanmean(cal['crps'][(r.path.name, ch)][1]):.4g} |")
    figure_obs_space(runs, out)
    lines += ["", "## Observation space (DART obs_diag style)", "",
              "O−B: observation minus the background (the emulator forecast in the emulator "
              "modes, the previous analysis in plain mode) through the source's operator; "
              "O−A: minus the analysis mean. Normalised units.", "",
              "![obs space](obs_space.png)", "",
              "| run | source | cycles | used/cycle | rejected/cycle | O−B mean | O−B RMS | "
              "O−A mean | O−A RMS |", "|---|---|---|---|---|---|---|---|---|"]
    for s in obs_summary(runs):
        lines.append(f"| {s['run']} | {s['source']} | {s['cycles']} | {s['used']:.0f} | "
                     f"{s['rejected']:.0f} | {s['omb_mean']:.3g} | {s['omb_rms']:.3g} | "
                     f"{s['oma_mean']:.3g} | {s['oma_rms']:.3g} |")
    lines += ["", f"## Fields of {first.path.name}", ""]
    for ch in variables:
        lines += [f"### {ch} [{_units(ch)}]", ""]
        for c in cycles:
            p = figure_map(first, ch, c, out)
            lines += [f"Maps at {str(first.time(c))[:16]} (Figures 1, 4, 7): ensemble mean, "
                      "truth, error and ensemble std; triangles are the stations used.", "",
                      f"![map]({p.name})", ""]
        p = figure_superres(first, ch, cycles[0], out)
        lines += ["Super-resolution (Figures 2-3): the truth coarsened to "
                  f"{first.cfg.run.sources.gridded.grid}, the analysis, the bicubic "
                  "interpolation of the coarse field (computed here), the truth and both "
                  "errors.", "", f"![superres]({p.name})", ""]
        p = figure_spectra(first, ch, cycles, out)
        lines += ["Power spectra (Figures 5, 10, 12).", "", f"![spectra]({p.name})", ""]
        p = figure_trace(first, ch, cycles, latitude, out)
        lines += [f"Traces at {latitude:g}°N (Figures 6, 11, 14, 19): along the latitude "
                  "circle at the chosen cycles, and its zonal mean over the window; shading "
                  "is ± one ensemble std.", "", f"![trace]({p.name})", ""]
        p = figure_scatter(first, ch, cycles, out)
        lines += ["Scatter (Figures 8, 9, 13, 15): analysis against the observations at the "
                  "stations, and against the truth at grid points more than 5° from every "
                  "station.", "", f"![scatter]({p.name})", ""]
    page = out / "report.md"
    page.write_text("\n".join(lines) + "\n")
    return page
