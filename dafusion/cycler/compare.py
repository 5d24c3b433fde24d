"""``cycler compare``: RMSE by variable and lead day over runs (the paper's Table 2 and
Figure 18 layouts).

A lead day ``d`` averages (as mean squared error, then the root) the analyses
with lead ``24 d <= lead < 24 (d + 1)`` hours; day 7 of a 7-day window holds the
last analysis only. Runs are comparable only if they share the truth, the
analysis times and the channels; anything else is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dafusion.cycler.rundir import RunDir


class CompareError(ValueError):
    """Runs that cannot be compared; the message names them and the difference."""


def check_comparable(runs: list[Path]) -> None:
    ref = RunDir(runs[0]).identity()
    for run in runs[1:]:
        other = RunDir(run).identity()
        diff = [k for k in ref if ref[k] != other[k]]
        if diff:
            raise CompareError(f"{run} differs from {runs[0]} in {diff}: "
                               + "; ".join(f"{k}: {ref[k]} vs {other[k]}" for k in diff))


def rmse_by_lead_day(rows: list[dict[str, Any]]) -> dict[str, dict[int, float]]:
    """channel -> lead day -> RMSE (root of the mean squared RMSE of its analyses)."""
    out: dict[str, dict[int, list[float]]] = {}
    for r in rows:
        out.setdefault(r["channel"], {}).setdefault(r["lead_hours"] // 24, []).append(r["rmse"])
    return {c: {d: float(np.sqrt(np.mean(np.square(v)))) for d, v in sorted(days.items())}
            for c, days in out.items()}


def compare(runs: list[Path], out: Path | None = None,
            labels: list[str] | None = None) -> tuple[str, list[Path]]:
    """The Markdown table (best per variable and lead day in bold), plus files in ``out``:
    ``compare.md``, ``compare.csv``, ``compare.png``."""
    runs = [Path(r) for r in runs]
    if not runs:
        raise CompareError("no runs given")
    check_comparable(runs)
    labels = labels or [r.name for r in runs]
    metrics = [RunDir(r).metrics() for r in runs]
    tables = [rmse_by_lead_day(m) for m in metrics]
    channels = list(tables[0])
    days = sorted({d for t in tables for c in t.values() for d in c})
    lines = ["| variable | run | " + " | ".join(f"day {d}" for d in days) + " | mean |",
             "|---|---|" + "---|" * (len(days) + 1)]
    csv_rows = ["variable,run," + ",".join(f"day{d}" for d in days) + ",mean"]
    for c in channels:
        vals = np.array([[t.get(c, {}).get(d, np.nan) for d in days] for t in tables])
        means = np.sqrt(np.nanmean(vals ** 2, axis=1))
        full = np.concatenate([vals, means[:, None]], axis=1)
        best = np.nanargmin(np.where(np.isnan(full), np.inf, full), axis=0)
        for i, label in enumerate(labels):
            cells = [("**%.4g**" if best[j] == i and len(runs) > 1 else "%.4g") % v
                     for j, v in enumerate(full[i])]
            lines.append(f"| {c} | {label} | " + " | ".join(cells) + " |")
            csv_rows.append(f"{c},{label}," + ",".join(f"{v:.6g}" for v in full[i]))
    table = "\n".join(lines) + "\n"
    files: list[Path] = []
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "compare.md").write_text(
            "# RMSE of the ensemble mean by lead day (best in bold)\n\n" + table)
        (out / "compare.csv").write_text("\n".join(csv_rows) + "\n")
        files = [out / "compare.md", out / "compare.csv",
                 plot_rmse(metrics, labels, channels, out / "compare.png")]
    return table, files


def plot_rmse(metrics: list[list[dict[str, Any]]], labels: list[str], channels: list[str],
              path: Path) -> Path:
    """RMSE vs lead time, one panel per channel, one line per run (Figure 18's layout)."""
    from dafusion.figures import pyplot, save_figure

    plt = pyplot()

    from dafusion.variables import parse_channel

    ncol = min(3, len(channels))
    nrow = int(np.ceil(len(channels) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.0 * nrow), squeeze=False)
    for k, c in enumerate(channels):
        ax = axes.flat[k]
        for rows, label in zip(metrics, labels):
            pts = sorted((r["lead_hours"], r["rmse"]) for r in rows if r["channel"] == c)
            ax.plot([p[0] / 24 for p in pts], [p[1] for p in pts], marker=".", label=label)
        try:
            units = parse_channel(c).units
        except ValueError:
            units = "?"
        ax.set_title(f"{c} [{units}]")
        ax.set_xlabel("lead (days)")
        ax.set_ylabel("RMSE")
    for ax in axes.flat[len(channels):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    save_figure(fig, path, dpi=90)
    return path
