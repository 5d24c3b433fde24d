"""``cycler compare``: RMSE, spread-skill and CRPS by variable and lead day over runs (the
paper's Table 2 and Figure 18 layouts, with the ensemble's calibration next to its skill).

The first analysis (lead 0 h) is a column of its own: in the emulator modes it
sees the initial truth. A lead day ``d`` averages the analyses with lead
``24 d <= lead < 24 (d + 1)`` hours other than lead 0 (day 0 is the 12-hour
analysis; day 7 of a 7-day window holds the last analysis only); ``mean`` is
over every analysis after the first. RMSE averages as mean squared error, then
the root; the spread-skill ratio is sqrt((M+1)/M) · rms(spread) / rms(RMSE) over
the same analyses (1 = calibrated); CRPS is the mean fair CRPS. Runs are
comparable only if they share the truth, the analysis times and the channels;
anything else is refused.

A run of more than 14 days groups its lead days in blocks (about ten columns) and
gets a steady-state table (``cycler.reporting.steady``: error and spread over its last
third, their trend with an interval, the day it settled).

Runs with withheld stations (``run.sources.stations.withhold``) get a table of their
scores at those stations, which no analysis saw (``obs_diagnostics.csv``, source
``stations_withheld``, normalised units, analyses after the first): RMS O−B and O−A,
the ensemble's spread and CRPS there, and sqrt(spread² + Σ_y) / rms(O−A), 1 for an
ensemble whose spread and stated observation error explain its misfit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dafusion.cycler.reporting.steady import table as steady_table
from dafusion.cycler.rundir import RunDir, same_identity
from dafusion.io import write_text


class CompareError(ValueError):
    """Runs that cannot be compared; the message names them and the difference."""


def check_comparable(runs: list[Path]) -> None:
    ref = RunDir(runs[0]).identity()
    for run in runs[1:]:
        other = RunDir(run).identity()
        diff = [k for k in ref if not same_identity(ref[k], other[k])]
        if diff:
            raise CompareError(f"{run} differs from {runs[0]} in {diff}: "
                               + "; ".join(f"{k}: {ref[k]} vs {other[k]}" for k in diff))


def _check_same_cycles(runs: list[Path], metrics: list[list[dict[str, Any]]]) -> None:
    """Runs with different numbers of analyses (one interrupted) are not compared: their
    means would average different leads."""
    done = [len({r["cycle"] for r in m}) for m in metrics]
    if len(set(done)) > 1:
        short = runs[int(np.argmin(done))]
        raise CompareError(f"{short}: {min(done)} analyses, other runs {max(done)} (an "
                           f"interrupted run; finish it with 'cycler run --resume {short}' "
                           "before comparing)")


FILES = ("compare.md", "compare.csv", "compare.png")  # what compare writes in ``out``

SCORES = {"rmse": "RMSE of the ensemble mean (best in bold)",
          "spread_skill": "Spread-skill ratio (closest to 1 in bold)",
          "crps": "Fair CRPS (best in bold)"}


def scores_by_lead(rows: list[dict[str, Any]], members: int, block_days: int = 1
                   ) -> dict[str, dict[str, dict[str, float]]]:
    """score -> channel -> column (``0 h``, ``day d``, ``mean``) -> value; see the module
    docstring. With ``block_days`` b > 1 the lead days are grouped b at a time
    (``days a-b``), for runs of months."""
    groups: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for r in rows:
        day = r["lead_hours"] // 24
        first = day - day % block_days
        column = ("0 h" if r["lead_hours"] == 0 else f"day {day}" if block_days == 1
                  else f"days {first}-{first + block_days - 1}")
        by_channel = groups.setdefault(r["channel"], {})
        by_channel.setdefault(column, []).append(r)
        if r["lead_hours"] > 0:
            by_channel.setdefault("mean", []).append(r)
    factor = np.sqrt((members + 1) / members)
    out: dict[str, dict[str, dict[str, float]]] = {k: {} for k in SCORES}
    for channel, columns in groups.items():
        order = sorted(columns, key=lambda c: (
            c == "mean", c != "0 h",
            int(c.split()[1].split("-")[0]) if c.startswith("day") else 0))
        for column in order:
            sel = columns[column]
            rms = float(np.sqrt(np.mean([r["rmse"] ** 2 for r in sel])))
            spread = float(np.sqrt(np.mean([r["spread"] ** 2 for r in sel])))
            out["rmse"].setdefault(channel, {})[column] = rms
            out["spread_skill"].setdefault(channel, {})[column] = (
                factor * spread / rms if members > 1 else float("nan"))  # no ensemble
            out["crps"].setdefault(channel, {})[column] = float(np.mean([r["crps"] for r in sel]))
    return out


def compare(runs: list[Path], out: Path | None = None, labels: list[str] | None = None,
            steady_days: float | None = None) -> tuple[str, list[Path]]:
    """Markdown tables (RMSE, spread-skill, CRPS; best per variable and column in bold),
    plus files in ``out``: ``compare.md``, ``compare.csv``, ``compare.png``;
    ``steady_days``: the steady state over the runs' last days, not their last third."""
    runs = [Path(r) for r in runs]
    if not runs:
        raise CompareError("no runs given")
    check_comparable(runs)
    labels = labels or [r.name for r in runs]
    metrics = [RunDir(r).metrics() for r in runs]
    _check_same_cycles(runs, metrics)
    block = block_days(max(int(r["lead_hours"]) for r in metrics[0]) // 24)
    scores = [scores_by_lead(m, RunDir(r).config().run.members, block)
              for m, r in zip(metrics, runs)]
    channels = list(scores[0]["rmse"])
    columns = list(scores[0]["rmse"][channels[0]])
    text, csv_rows = [], ["score,variable,run," + ",".join(c.replace(" ", "") for c in columns)]
    for score, title in SCORES.items():
        lines = [f"### {title}", "", "| variable | run | " + " | ".join(columns) + " |",
                 "|---|---|" + "---|" * len(columns)]
        for c in channels:
            full = np.array([[t[score].get(c, {}).get(col, np.nan) for col in columns]
                             for t in scores])
            badness = np.abs(np.log(full)) if score == "spread_skill" else full
            best = np.nanargmin(np.where(np.isnan(badness), np.inf, badness), axis=0)
            for i, label in enumerate(labels):
                cells = [("**%.4g**" if best[j] == i and len(runs) > 1 else "%.4g") % v
                         for j, v in enumerate(full[i])]
                lines.append(f"| {c} | {label} | " + " | ".join(cells) + " |")
                csv_rows.append(f"{score},{c},{label}," + ",".join(f"{v:.6g}" for v in full[i]))
        text.append("\n".join(lines) + "\n")
    single = [label for label, r in zip(labels, runs) if RunDir(r).config().run.members < 2]
    if single:
        text.append(f"Note: {', '.join(single)} has one member: no ensemble, so its spread is "
                    "0, its spread-skill ratio is not defined (nan) and its CRPS is the "
                    "mean absolute error.\n")
    text.append(_overall(scores, labels, runs))
    steady = steady_table(list(zip(labels, metrics)), channels, steady_days)
    if steady:
        text.append(steady)
    withheld = _withheld(runs, labels)
    if withheld:
        text.append(withheld)
    forecast = _forecasts(runs, labels)
    if forecast:
        text.append(forecast)
    table = "\n".join(text)
    files: list[Path] = []
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / "compare.md", "# Runs by lead day\n\n" + table)
        write_text(out / "compare.csv", "\n".join(csv_rows) + "\n")
        files = [out / "compare.md", out / "compare.csv",
                 plot_rmse(metrics, labels, channels, out / "compare.png")]
    return table, files


def block_days(last_day: int) -> int:
    """Lead days per column: 1 up to 14 days, then about ten columns for the run."""
    return 1 if last_day <= 14 else int(np.ceil((last_day + 1) / 10))


def _overall(scores: list[dict], labels: list[str], runs: list[Path]) -> str:
    """One line per run: RMSE and CRPS over leads > 0 relative to the best run, averaged
    over variables (1 = best in every variable: the ranking of a sweep), and the mean
    seconds of one analysis (``timing.csv``)."""
    lines = ["### Overall", "", "RMSE and CRPS (lead > 0) divided by the best run's, mean "
             "over variables (1 = best everywhere); seconds per analysis.", "",
             "| run | RMSE / best | CRPS / best | analysis s |", "|---|---|---|---|"]
    rel = {}
    for score in ("rmse", "crps"):
        full = np.array([[t[score][c]["mean"] for c in t[score]] for t in scores])
        rel[score] = (full / full.min(axis=0)).mean(axis=1)
    for i, label in enumerate(labels):
        seconds = [float(r["analysis_s"]) for r in RunDir(runs[i]).timing()]
        lines.append(f"| {label} | {rel['rmse'][i]:.4f} | {rel['crps'][i]:.4f} | "
                     f"{np.mean(seconds) if seconds else float('nan'):.3g} |")
    return "\n".join(lines) + "\n"


def _withheld(runs: list[Path], labels: list[str]) -> str:
    """The withheld stations' table of the module docstring ("" when no run has any)."""
    lines = ["### Withheld stations", "", "At stations no analysis saw, normalised units, "
             "over the analyses after the first: RMS O−B and O−A, the ensemble's spread "
             "and fair CRPS there, and sqrt(spread² + Σ_y) / rms(O−A) (1 = consistent).",
             "", "| run | observations / analysis | O−B rms | O−A rms | spread | CRPS "
             "| consistency |", "|---|---|---|---|---|---|---|"]
    found = False
    for label, run in zip(labels, runs):
        rows = [r for r in RunDir(run).obs_rows()
                if r["source"] == "stations_withheld" and int(r["cycle"]) > 0]
        if not rows:
            continue
        found = True

        def rms(key: str, rows: list[dict[str, Any]] = rows) -> float:
            return float(np.sqrt(np.mean([r[key] ** 2 for r in rows])))

        sigma_y = float(np.mean([r["sigma_y"] for r in rows]))
        consistency = np.sqrt(rms("spread") ** 2 + sigma_y) / rms("oma_rms")
        lines.append(f"| {label} | {np.mean([float(r['used']) for r in rows]):.4g} | "
                     f"{rms('omb_rms'):.4g} | {rms('oma_rms'):.4g} | {rms('spread'):.4g} | "
                     f"{np.mean([r['crps'] for r in rows]):.4g} | {consistency:.4g} |")
    return "\n".join(lines) + "\n" if found else ""


def _forecasts(runs: list[Path], labels: list[str]) -> str:
    """RMSE of the emulator's forecasts from each run's analyses at lead days 1, 3, 5, 7
    and the lead time lost against forecasts from the truth (``cycler forecast``;
    "" when no run has them)."""
    from dafusion.cycler.reporting.forecasts import lead_time_lost, mean_by_lead, read_scores

    scores = [(label, read_scores(run)) for label, run in zip(labels, runs)]
    scores = [(label, rows) for label, rows in scores if rows]
    if not scores:
        return ""
    days = [1, 3, 5, 7]
    lines = ["### Forecasts from the analyses", "",
             "`cycler forecast`: RMSE of the emulator's forecasts from each analysis (and "
             "from the truth at the same times) by lead day, and in brackets the lead time "
             "lost in hours (the lead at which forecasts from the truth are as bad, minus "
             "this lead).", "",
             "| variable | run | " + " | ".join(f"day {d}" for d in days) + " |",
             "|---|---|" + "---|" * len(days)]
    channels = list(dict.fromkeys(r["channel"] for _, rows in scores for r in rows))
    for c in channels:
        for i, (label, rows) in enumerate(scores):
            leads, a = mean_by_lead(rows, "analysis", c)
            _, t = mean_by_lead(rows, "truth", c)
            if not leads.size:
                continue
            lost = lead_time_lost(leads, a, t)
            cells = []
            for d in days:
                hit = np.flatnonzero(leads == 24 * d)
                cells.append(f"{a[hit[0]]:.4g} ({lost[hit[0]]:.3g})" if hit.size else "")
            lines.append(f"| {c} | {label} | " + " | ".join(cells) + " |")
            if i == len(scores) - 1:
                truth = [f"{t[np.flatnonzero(leads == 24 * d)[0]]:.4g}"
                         if (leads == 24 * d).any() else "" for d in days]
                lines.append(f"| {c} | from the truth | " + " | ".join(truth) + " |")
    return "\n".join(lines) + "\n"


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
