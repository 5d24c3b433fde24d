"""The steady state of a long cycle: does the error settle, and at what level?

For one channel of one run, over the analyses after the first (``metrics.csv``):

* ``error`` and ``spread``: the RMS over the **last third** of the run (lead ≥ ⅔ of
  the last lead), or over its last ``days`` days when they are given (``cycler
  compare --steady-days``), of the analyses' RMSE and spread;
* ``trend``: the least-squares slope of the RMSE against time over the same analyses,
  per 10 days, with a 95 % interval that allows for the analyses' serial correlation
  (consecutive 12-hourly analyses are not independent): the residuals' lag-1
  autocorrelation r₁ ≥ 0 gives n_eff = n (1 − r₁) / (1 + r₁), the slope's standard
  error uses n_eff − 2 degrees of freedom, and the interval Student's t of n_eff − 2
  (Santer et al. 2000). An interval that contains 0 is a trend indistinguishable from
  none;
* ``settled_day``: the first lead day whose RMS error (of the analyses in
  24 d ≤ lead < 24 (d + 1) h) reaches the last third's error less its 95 % margin
  (t · sd / √n_eff): from that day on the error is at its steady-state level. None
  when no day before the last third does.

The numbers are in the channel's physical units (``metrics.csv``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from scipy import stats


@dataclasses.dataclass(frozen=True)
class SteadyState:
    """One channel of one run (module docstring)."""

    error: float
    spread: float
    trend: float  # per 10 days
    trend_low: float
    trend_high: float
    settled_day: int | None
    n: int  # analyses in the last third
    n_eff: float


def effective_size(residuals: np.ndarray) -> float:
    """n (1 − r₁) / (1 + r₁) with r₁ the lag-1 autocorrelation of the residuals, ≥ 0."""
    n = residuals.size
    centred = residuals - residuals.mean()
    denominator = float((centred**2).sum())
    r1 = float((centred[1:] * centred[:-1]).sum()) / denominator if denominator > 0 else 0.0
    r1 = min(max(r1, 0.0), 0.99)
    return n * (1 - r1) / (1 + r1)


def trend(days: np.ndarray, values: np.ndarray) -> tuple[float, float, float, float]:
    """Slope per day and its 95 % interval (serial correlation allowed for), and n_eff."""
    days, values = np.asarray(days, float), np.asarray(values, float)
    slope, intercept = np.polyfit(days, values, 1)
    residuals = values - (slope * days + intercept)
    n_eff = effective_size(residuals)
    dof = max(n_eff - 2.0, 1.0)
    residual_variance = float((residuals**2).sum()) / dof
    se = np.sqrt(residual_variance / float(((days - days.mean()) ** 2).sum()))
    half = float(stats.t.ppf(0.975, dof)) * se
    return float(slope), float(slope - half), float(slope + half), n_eff


def steady_state(rows: list[dict[str, Any]], channel: str,
                 days: float | None = None) -> SteadyState | None:
    """The steady state of ``channel`` from ``metrics.csv`` rows over the last third, or
    the last ``days`` days (None: fewer than 6 analyses there, too short to tell)."""
    sel = sorted((int(r["lead_hours"]), float(r["rmse"]), float(r["spread"]))
                 for r in rows if r["channel"] == channel and int(r["lead_hours"]) > 0)
    if not sel:
        return None
    lead = np.array([s[0] for s in sel], float)
    rmse, spread = np.array([s[1] for s in sel]), np.array([s[2] for s in sel])
    last = lead >= (lead[-1] * 2 / 3 if days is None else lead[-1] - 24 * days)
    if last.sum() < 6:
        return None
    slope, low, high, n_eff = trend(lead[last] / 24, rmse[last])
    error = float(np.sqrt(np.mean(rmse[last] ** 2)))
    dof = max(n_eff - 2.0, 1.0)
    margin = float(stats.t.ppf(0.975, dof)) * float(rmse[last].std(ddof=1)) / np.sqrt(n_eff)
    settled = None
    for day in range(int(lead[last][0] // 24) + 1):
        in_day = (lead >= 24 * day) & (lead < 24 * (day + 1))
        if in_day.any() and np.sqrt(np.mean(rmse[in_day] ** 2)) >= error - margin:
            settled = day
            break
    return SteadyState(error, float(np.sqrt(np.mean(spread[last] ** 2))), 10 * slope,
                       10 * low, 10 * high, settled, int(last.sum()), n_eff)


def table(runs: list[tuple[str, list[dict[str, Any]]]], channels: list[str],
          days: float | None = None) -> str:
    """Markdown: one line per channel and run ("" when every run is too short); over the
    last third of each run, or its last ``days`` days."""
    span = "the last third" if days is None else f"the last {days:g} days"
    lines = [f"### Steady state ({span} of each run)", "",
             f"RMS error and spread over {span}; the RMSE's trend per 10 days with its "
             "95 % interval (serial correlation allowed for; `cycler.reporting.steady`); the "
             "first lead day at the steady-state error.", "",
             "| variable | run | error | spread | trend / 10 days [95 %] | settled from day |",
             "|---|---|---|---|---|---|"]
    found = False
    for c in channels:
        for label, rows in runs:
            s = steady_state(rows, c, days)
            if s is None:
                continue
            found = True
            lines.append(f"| {c} | {label} | {s.error:.4g} | {s.spread:.4g} | {s.trend:+.3g} "
                         f"[{s.trend_low:+.3g}, {s.trend_high:+.3g}] | "
                         f"{s.settled_day if s.settled_day is not None else 'not settled'} |")
    return "\n".join(lines) + "\n" if found else ""
