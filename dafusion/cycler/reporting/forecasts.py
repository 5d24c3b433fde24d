"""``cycler forecast RUN``: the emulator's forecasts from a run's analyses, scored by lead.

An analysis is judged by the forecast it starts (as HealDA and FuXi Weather are).
From every analysis of a run (its ``analysis.nc``, the ensemble mean) the run's
emulator forecasts ``days`` days, started exactly as ``cycler emulator forecast
--truth RUN/cycle_KKK/analysis.nc --init T`` starts (the state regridded to the
emulator grid with ``emulator.regrid``), and, for comparison, from the truth at the
same time (``cycler emulator forecast --init T``). Both are verified against the
truth regridded to the emulator grid (area-weighted RMSE, ``cycler.metrics``) at
every emulator step whose valid time the truth has.

Files in ``RUN/forecasts/``: ``cycle_KKK.nc`` (from the analysis) and
``truth_KKK.nc`` (from the truth), each as ``cycler emulator forecast`` writes it,
and ``scores.csv`` (``init_cycle, init_time, start, lead_hours, channel, rmse``;
``start`` is ``analysis`` or ``truth``).

**Lead time lost** (:func:`lead_time_lost`): for each lead L, the lead L′ at which
forecasts from the truth reach the error that forecasts from the analysis have at L
(RMSE averaged over the initial times, the truth curve made non-decreasing, linear
between its leads, 0 at lead 0; the first lead at which it reaches that error);
lost = L′ − L hours, NaN where the truth's forecasts
never get that bad within ``days``. Forecasts from OI and LETKF analyses
(``run.method``) are scored the same way, so ``compare`` sets them side by side.
"""

from __future__ import annotations

import csv
import io
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dafusion.cycler.rundir import RunDir, RunError
from dafusion.grids import weighted_mean

FOLDER, SCORES = "forecasts", "scores.csv"
COLUMNS = ["init_cycle", "init_time", "start", "lead_hours", "channel", "rmse"]


def forecast_run(run_dir: str | Path, days: float, *, force: bool = False,
                 progress: Callable[..., Any] | None = None) -> Path:
    """Write ``RUN/forecasts/`` (module docstring); returns the scores' path. The folder
    is built as ``forecasts.partial`` and renamed when complete, so an interrupted
    command (or a failing ``--force``) leaves what was there."""
    from dafusion.data import GriddedSource, demo_truth_path
    from dafusion.emulator.checkpoint import demo_emulator_path, load_emulator
    from dafusion.io import write_text
    from dafusion.progress import null_progress

    run = RunDir(run_dir)
    cfg = run.config()
    cycles = sorted({int(r["cycle"]) for r in run.metrics()})
    out = run.path / FOLDER
    if out.exists() and not force:
        raise RunError(f"{out}: already exists; pass --force to replace it")
    model = load_emulator(cfg.emulator.checkpoint or demo_emulator_path())
    hours = model.meta.time_step_hours
    if days <= 0 or (days * 24) % hours:
        raise RunError(f"--days {days:g}: not a positive whole number of {hours}-hour steps")
    truth = GriddedSource.open(cfg.run.truth or demo_truth_path(), model.channels,
                               member=cfg.data.member)
    partial = out.with_name(FOLDER + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    rows: list[dict[str, Any]] = []
    with (progress or null_progress)(len(cycles), "forecasts") as bar:
        for k in cycles:
            analysis = GriddedSource.open(run.path / f"cycle_{k:03d}" / "analysis.nc",
                                          model.channels)
            for start, source, name in (("analysis", analysis, f"cycle_{k:03d}.nc"),
                                        ("truth", truth, f"truth_{k:03d}.nc")):
                rows += _forecast(model, source, analysis.times[0], int(days * 24 // hours),
                                  cfg, truth, partial / name, k, start)
            bar.update(1)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(partial / SCORES, buffer.getvalue())
    if out.exists():
        shutil.rmtree(out)
    partial.rename(out)
    return out / SCORES


def _forecast(model: Any, source: Any, t0: np.datetime64, steps: int, cfg: Any, truth: Any,
              path: Path, cycle: int, start: str) -> list[dict[str, Any]]:
    """One forecast from ``source`` at ``t0``, written to ``path``; its score rows."""
    from dafusion.emulator.states import initial_state, on_grid
    from dafusion.io import forecast_dataset, write_netcdf

    fc = model.forecast(initial_state(source, t0, model, cfg.emulator.regrid), steps)
    write_netcdf(forecast_dataset(fc, model.grid, attrs={
        "title": f"dafusion emulator forecast from the {start}",
        "initial_state": f"{Path(source.path).name} regridded ({cfg.emulator.regrid})"}),
        path)
    valid = fc["valid_time"].values
    have = np.flatnonzero(np.isin(valid, truth.times))
    verifying = on_grid(truth, valid[have], model.grid, model.channels, cfg.emulator.regrid)
    rows = []
    for j, lead in enumerate(have):
        mse = weighted_mean((fc.isel(lead=int(lead), member=0).values
                             - verifying.values[j]) ** 2, model.grid)
        lead_h = int(fc["lead_time"].values[lead] / np.timedelta64(1, "h"))
        rows += [{"init_cycle": cycle, "init_time": str(t0)[:16], "start": start,
                  "lead_hours": lead_h, "channel": c,
                  "rmse": float(np.sqrt(mse[model.channels.index(c)]))}
                 for c in model.channels if c in cfg.data.channels]
    return rows


def read_scores(run_dir: str | Path) -> list[dict[str, Any]]:
    """``RUN/forecasts/scores.csv`` with numbers; [] when the run has no forecasts."""
    path = Path(run_dir) / FOLDER / SCORES
    if not path.exists():
        return []
    with open(path) as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["init_cycle"], r["lead_hours"] = int(r["init_cycle"]), int(r["lead_hours"])
        r["rmse"] = float(r["rmse"])
    return rows


def mean_by_lead(rows: list[dict[str, Any]], start: str, channel: str
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Leads (hours, > 0) and the RMSE over the initial times (root of the mean square)."""
    sel = [r for r in rows if r["start"] == start and r["channel"] == channel
           and r["lead_hours"] > 0]
    leads = np.array(sorted({r["lead_hours"] for r in sel}))
    rmse = np.array([np.sqrt(np.mean([r["rmse"] ** 2 for r in sel if r["lead_hours"] == h]))
                     for h in leads])
    return leads, rmse


def lead_time_lost(leads: np.ndarray, analysis: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Hours lost at each lead (module docstring): L′(analysis[L]) − L on the truth curve."""
    curve = np.maximum.accumulate(np.concatenate([[0.0], truth]))
    at = np.concatenate([[0.0], leads.astype(float)])
    reach = np.full(len(leads), np.nan)
    for j, value in enumerate(np.asarray(analysis, float)):
        i = int(np.argmax(curve >= value)) if (curve >= value).any() else -1
        if i == 0:
            reach[j] = 0.0
        elif i > 0:  # the first lead at which the truth's forecasts are as bad
            frac = (value - curve[i - 1]) / (curve[i] - curve[i - 1])
            reach[j] = at[i - 1] + frac * (at[i] - at[i - 1])
    return reach - leads


def summary(rows: list[dict[str, Any]], days: list[int] | None = None) -> str:
    """Markdown: per channel, RMSE of the forecasts from the analyses and from the truth
    at whole lead days, and the lead time lost there."""
    channels = list(dict.fromkeys(r["channel"] for r in rows))
    lines = ["| channel | lead day | RMSE from analyses | RMSE from truth | lead time lost (h) |",
             "|---|---|---|---|---|"]
    for c in channels:
        leads, a = mean_by_lead(rows, "analysis", c)
        _, t = mean_by_lead(rows, "truth", c)
        lost = lead_time_lost(leads, a, t)
        for d in days or sorted({int(h // 24) for h in leads if h % 24 == 0}):
            if d * 24 in leads:
                i = int(np.flatnonzero(leads == d * 24)[0])
                lines.append(f"| {c} | {d} | {a[i]:.4g} | {t[i]:.4g} | {lost[i]:.3g} |")
    return "\n".join(lines)
