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

from pathlib import Path

import numpy as np

from dafusion.cycler.campaigns.compare import check_comparable, plot_rmse, scores_by_lead
from dafusion.cycler.reporting.figures import (
    calibration,
    figure_calibration,
    figure_map,
    figure_obs_space,
    figure_scatter,
    figure_spectra,
    figure_superres,
    figure_trace,
    obs_summary,
    units,
)
from dafusion.cycler.reporting.runview import ReportError, RunView
from dafusion.cycler.reporting.steady import table as steady_table
from dafusion.io import write_text

__all__ = ["ReportError", "RunView", "make_report"]

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
    variables = _variables(first, variables)
    cycles = cycles if cycles is not None else default_cycles(first)
    bad = [c for c in cycles if c not in first.cycles]
    if bad:
        raise ReportError(f"--cycles {bad}: {first.path.name} has cycles {first.cycles}")
    out.mkdir(parents=True, exist_ok=True)
    lines = (_runs_table(runs) + _skill_section(runs, out)
             + _calibration_section(runs, variables, out) + _obs_section(runs, out)
             + [f"## Fields of {first.path.name}", ""])
    for ch in variables:
        lines += _field_section(first, ch, cycles, latitude, out)
    page = out / "report.md"
    write_text(page, "\n".join(lines) + "\n")
    return page


def _variables(run: RunView, variables: list[str] | None) -> list[str]:
    variables = variables or [c for c in ("t850", "z500", "u500") if c in run.channels] \
        or run.channels[:3]
    unknown = [v for v in variables if v not in run.channels]
    if unknown:
        raise ReportError(f"--variables {unknown}: not channels of {run.path.name} "
                          f"({run.channels})")
    return variables


def _runs_table(runs: list[RunView]) -> list[str]:
    lines = [f"# Assimilation report: {', '.join(r.path.name for r in runs)}", "",
             "| run | method | mode | members | window | sources |", "|---|---|---|---|---|---|"]
    for r in runs:
        src = sorted({row["source"] for row in r.obs_rows}) or ["none (unconditional)"]
        lines.append(f"| {r.path.name} | {r.cfg.run.method} | {r.cfg.run.mode} | "
                     f"{r.cfg.run.members} | "
                     f"{str(r.time(r.cycles[0]))[:16]} .. {str(r.time(r.cycles[-1]))[:16]} | "
                     f"{', '.join(src)} |")
    return lines + [""]


def _skill_section(runs: list[RunView], out: Path) -> list[str]:
    first = runs[0]
    plot_rmse([r.metrics for r in runs], [r.path.name for r in runs], first.channels,
              out / "skill.png")
    scores = [scores_by_lead(r.metrics, r.cfg.run.members) for r in runs]
    columns = list(scores[0]["rmse"][first.channels[0]])
    lines = ["## Skill over the window (Figure 18)", "",
             "Latitude-weighted RMSE of the ensemble mean against the truth, and the "
             "spread-skill ratio sqrt((M+1)/M)·spread/RMSE (1 = calibrated) and fair CRPS "
             "over the same analyses. Lead 0 h is the first analysis (in the emulator modes "
             "it sees the initial truth); `mean` is over the analyses after it.", "",
             "![skill](skill.png)", "",
             "| variable | run | score | " + " | ".join(columns) + " |",
             "|---|---|---|" + "---|" * len(columns)]
    for ch in first.channels:
        for r, sc in zip(runs, scores):
            for key, name in (("rmse", "RMSE"), ("spread_skill", "spread-skill"),
                              ("crps", "CRPS")):
                values = sc[key].get(ch, {})
                lines.append(f"| {ch} | {r.path.name} | {name} | "
                             + " | ".join(f"{values.get(c, np.nan):.4g}" for c in columns)
                             + " |")
    steady = steady_table([(r.path.name, r.metrics) for r in runs], first.channels)
    return lines + [""] + ([steady.replace("### ", "## ", 1)] if steady else [])


def _calibration_section(runs: list[RunView], variables: list[str], out: Path) -> list[str]:
    cal = calibration(runs, variables)
    figure_calibration(runs, variables, cal, out)
    lines = ["## Ensemble calibration", "",
             "Spread-skill ratio sqrt((M+1)/M)·spread/RMSE (1 = calibrated; WeatherBench 2), "
             "fair CRPS (Ferro 2014), rank histograms over every grid point and cycle "
             "(flat = calibrated; U = under-dispersive).", "", "![calibration](calibration.png)",
             "", "| run | variable | mean spread-skill | mean CRPS |", "|---|---|---|---|"]
    for r in runs:
        for ch in variables:
            lines.append(f"| {r.path.name} | {ch} | "
                         f"{np.nanmean(cal['spread_skill'][(r.path.name, ch)][1]):.3f} | "
                         f"{np.nanmean(cal['crps'][(r.path.name, ch)][1]):.4g} |")
    return lines + [""]


def _obs_section(runs: list[RunView], out: Path) -> list[str]:
    figure_obs_space(runs, out)
    lines = ["## Observation space (DART obs_diag style)", "",
             "O−B: observation minus the background (the emulator forecast in the emulator "
             "modes, the previous analysis in plain mode) through the source's operator; "
             "O−A: minus the analysis mean. Normalised units. The emulator term has no O−B: "
             "its observation is the background.", "",
             "![obs space](obs_space.png)", "",
             "| run | source | cycles | used/cycle | rejected/cycle | O−B mean | O−B RMS | "
             "O−A mean | O−A RMS |", "|---|---|---|---|---|---|---|---|---|"]
    def num(v: float) -> str:
        return "—" if np.isnan(v) else f"{v:.3g}"

    for s in obs_summary(runs):
        lines.append(f"| {s['run']} | {s['source']} | {s['cycles']} | {s['used']:.0f} | "
                     f"{s['rejected']:.0f} | {num(s['omb_mean'])} | {num(s['omb_rms'])} | "
                     f"{num(s['oma_mean'])} | {num(s['oma_rms'])} |")
    return lines + [""]


def _field_section(first: RunView, ch: str, cycles: list[int], latitude: float,
                   out: Path) -> list[str]:
    lines = [f"### {ch} [{units(ch)}]", ""]
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
    return lines + ["Scatter (Figures 8, 9, 13, 15): analysis against the observations at "
                    "the stations, and against the truth at grid points more than 5° from "
                    "every station.", "", f"![scatter]({p.name})", ""]
