"""Adaptive error estimation of the emulator term from the stations' innovations.

The error statistics of the emulator (``dafusion.emulator.errors``) are those of
forecasts started from the truth. A cycled forecast also carries the error of the
analysis it started from, which no offline statistic knows. The stations measure
it: for station observations of channel c and the emulator background b (the
forecast regridded to the analysis grid), d = y − H(b) has

    E[d²] = R + e_c + U_c

(Hollingsworth and Lönnberg 1986; Desroziers et al. 2005: E[d_b d_bᵀ] = R + HBHᵀ),
with R the stations' error variance, e_c the point variance of the forecast's error
at the degrees the emulator holds and U_c the truth's variance at the degrees it
cannot hold (``unresolved_variance`` of the statistics). The estimate of the scale
of the emulator's Σ_y for channel c is ŝ_c = (mean d² − mean R − U_c) / q_c, with q_c
the statistics' point variance at the forecast's lead, bounded to [1, 1000] (never
below the offline statistics), and smoothed over cycles in log space:
log s_k = (1 − α) log s_{k−1} + α log ŝ_k. Enabled by
``run.sources.emulator.adaptive`` (with station observations); the scales are
carried in ``state.npz`` and written to ``log.txt`` every cycle.

**Adaptive inflation** (``run.sources.emulator.adaptive_inflation``) asks the same
innovations for the spread of the members' forecasts instead (Li, Kalnay and
Miyoshi 2009; Miyoshi 2011: the innovation statistic E[d dᵀ] = R + HPHᵀ with P
the background ensemble's covariance times ρ²). With s²_i the members' unbiased
variance at observation i of channel c (the forecasts regridded to the analysis
grid and interpolated by the stations' own operator), ρ̂²_c = (mean d² − mean R −
U_c) / mean s², ρ̂_c bounded to [0.5, 2] (deflation as well as inflation) and
smoothed over cycles in log space as above, with α = 0.1: one cycle's estimate
from about 120 correlated innovations per channel scatters by ±30 % (a 10-day run
with α = 0.5, docs/long_cycles.md), while the spread drifts over days. The members'
forecasts are spread about their mean by ρ_c before they guide. Where the fixed
``run.inflation`` is chosen once, this factor follows the cycle: it falls below 1
when the forecasts' spread outgrows their error (docs/long_cycles.md).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from dafusion.obs.base import LikelihoodTerm

SMOOTHING = 0.5  # α
BOUNDS = (1.0, 1000.0)
INFLATION_BOUNDS = (0.5, 2.0)  # ρ
INFLATION_SMOOTHING = 0.1  # α of ρ
MIN_OBSERVATIONS = 10  # of a channel in one cycle, to estimate its variance


def innovation_scales(stations: LikelihoodTerm, background: torch.Tensor, channels: list[str],
                      claimed: dict[str, float], unresolved: dict[str, float]
                      ) -> dict[str, float]:
    """ŝ_c for the channels in ``claimed`` that the stations observe (normalised units).

    ``background``: ``(C, H, W)`` normalised; ``claimed``: q_c; ``unresolved``: U_c.
    """
    d, r, which = _innovations(stations, background)
    out = {}
    for name, q in claimed.items():
        sel = which == channels.index(name)
        if int(sel.sum()) < MIN_OBSERVATIONS:  # too few to estimate a variance
            continue
        e = float(d[sel].pow(2).mean() - r[sel].mean()) - unresolved[name]
        out[name] = float(np.clip(e / q, *BOUNDS))
    return out


def inflation_factors(stations: LikelihoodTerm, background: torch.Tensor,
                      members: torch.Tensor, channels: list[str],
                      unresolved: dict[str, float]) -> dict[str, float]:
    """ρ̂_c for the channels in ``unresolved`` that the stations observe (see the module
    docstring). ``background``: ``(C, H, W)``, the members' mean; ``members``:
    ``(M, C, H, W)``, both normalised on the analysis grid."""
    d, r, which = _innovations(stations, background)
    with torch.no_grad():
        at = stations.operator(members.to(stations.y.dtype)).double()  # (M, n)
    s2 = at.var(0, unbiased=True).reshape(-1)
    out = {}
    for name, u in unresolved.items():
        sel = which == channels.index(name)
        if int(sel.sum()) < MIN_OBSERVATIONS:
            continue
        e = float(d[sel].pow(2).mean() - r[sel].mean()) - u
        ratio = e / float(s2[sel].mean()) if float(s2[sel].mean()) > 0 else math.inf
        out[name] = float(np.clip(math.sqrt(max(ratio, 0.0)), *INFLATION_BOUNDS))
    return out


def _innovations(stations: LikelihoodTerm, background: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """d = y − H(b), R and the channel index of every observation (float64)."""
    with torch.no_grad():
        d = (stations.y.reshape(-1) - stations.operator(
            background[None].to(stations.y.dtype)).reshape(-1)).double()
    r = torch.broadcast_to(torch.as_tensor(stations.sigma_y, dtype=torch.float64), d.shape)
    where = stations.locations()
    if where is None:
        raise ValueError(f"adaptive error estimation: term '{stations.name}' does not say "
                         "which channel each observation is (locations() is None)")
    return d, r, torch.as_tensor(np.asarray(where[2]))


def smoothed(previous: dict[str, float], estimate: dict[str, float],
             alpha: float = SMOOTHING) -> dict[str, float]:
    """log s_k = (1 − α) log s_{k−1} + α log ŝ_k per channel (s_{−1} = 1)."""
    return {c: math.exp((1 - alpha) * math.log(previous.get(c, 1.0))
                        + alpha * math.log(v)) for c, v in estimate.items()}
