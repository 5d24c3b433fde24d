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
"""

from __future__ import annotations

import math

import numpy as np
import torch

from dafusion.obs.base import LikelihoodTerm

SMOOTHING = 0.5  # α
BOUNDS = (1.0, 1000.0)


def innovation_scales(stations: LikelihoodTerm, background: torch.Tensor, channels: list[str],
                      claimed: dict[str, float], unresolved: dict[str, float]
                      ) -> dict[str, float]:
    """ŝ_c for the channels in ``claimed`` that the stations observe (normalised units).

    ``background``: ``(C, H, W)`` normalised; ``claimed``: q_c; ``unresolved``: U_c.
    """
    with torch.no_grad():
        d = (stations.y.reshape(-1) - stations.operator(
            background[None].to(stations.y.dtype)).reshape(-1)).double()
    r = torch.broadcast_to(torch.as_tensor(stations.sigma_y, dtype=torch.float64), d.shape)
    where = stations.locations()
    if where is None:
        raise ValueError(f"adaptive error estimation: term '{stations.name}' does not say "
                         "which channel each observation is (locations() is None)")
    which = torch.as_tensor(np.asarray(where[2]))
    out = {}
    for name, q in claimed.items():
        sel = which == channels.index(name)
        if int(sel.sum()) < 10:  # too few to estimate a variance
            continue
        e = float(d[sel].pow(2).mean() - r[sel].mean()) - unresolved[name]
        out[name] = float(np.clip(e / q, *BOUNDS))
    return out


def smoothed(previous: dict[str, float], estimate: dict[str, float]) -> dict[str, float]:
    """log s_k = (1 − α) log s_{k−1} + α log ŝ_k per channel (s_{−1} = 1)."""
    return {c: math.exp((1 - SMOOTHING) * math.log(previous.get(c, 1.0))
                        + SMOOTHING * math.log(v)) for c, v in estimate.items()}
