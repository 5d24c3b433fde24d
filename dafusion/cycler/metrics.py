"""Skill of an analysis ensemble against the truth, per channel.

Conventions (WeatherBench 2): every spatial average is area-weighted with the
grid's ``lat_weights`` (cell areas / Gauss weights), uniform in longitude.

* ``rmse``   sqrt( <(mean_e(x) - truth)²> ): the ensemble mean's error;
* ``bias``   <mean_e(x) - truth>;
* ``spread`` sqrt( <var_e(x)> ), the unbiased ensemble variance (ddof 1), so
  that spread ≈ rmse·sqrt(M/(M+1)) for a calibrated M-member ensemble;
* ``crps``   <CRPS>, the ensemble CRPS E|X - y| - ½ E|X - X'| with the
  "fair" denominator M(M-1) for the second term (Ferro 2014; WeatherBench 2's
  ``CRPS`` with ``fair=True``); with one member it is the absolute error.

``<·>`` is the area-weighted spatial mean.
"""

from __future__ import annotations

import numpy as np

from dafusion.grids import AnyGrid, weighted_mean


def crps_field(ens: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Pointwise fair ensemble CRPS: ``ens (M, ...)``, ``truth (...)`` -> ``(...)``."""
    m = ens.shape[0]
    skill = np.abs(ens - truth[None]).mean(0)
    if m == 1:
        return skill
    # sum_{i,j} |x_i - x_j| from the sorted members: 2 * sum_k (2k - M + 1) x_(k)
    srt = np.sort(ens, axis=0)
    k = np.arange(m).reshape((m,) + (1,) * (ens.ndim - 1))
    pair_sum = 2.0 * ((2 * k - m + 1) * srt).sum(0)
    return skill - pair_sum / (2.0 * m * (m - 1))


def ensemble_scores(ens: np.ndarray, truth: np.ndarray, grid: AnyGrid) -> dict[str, np.ndarray]:
    """``ens (M, C, lat, lon)``, ``truth (C, lat, lon)`` -> each score ``(C,)``."""
    mean = ens.mean(0)
    err = mean - truth
    var = ens.var(0, ddof=1) if ens.shape[0] > 1 else np.zeros_like(mean)
    return {"rmse": np.sqrt(weighted_mean(err ** 2, grid)),
            "bias": weighted_mean(err, grid),
            "spread": np.sqrt(weighted_mean(var, grid)),
            "crps": weighted_mean(crps_field(ens, truth), grid)}


def rank_histogram(ens: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Counts of the truth's rank among the members, ``(M + 1,)``, over every point.

    Rank r = number of members below the truth; ties (rare for continuous fields) are
    broken at random with a fixed seed, as in Hamill (2001). Every grid point counts once
    (no area weighting: the histogram tests calibration point by point).
    """
    m = ens.shape[0]
    below = (ens < truth[None]).sum(0)
    ties = (ens == truth[None]).sum(0)
    if ties.any():
        rng = np.random.default_rng(0)
        below = below + rng.integers(0, ties + 1)
    return np.bincount(below.ravel(), minlength=m + 1)


def spread_skill(spread: np.ndarray, rmse: np.ndarray, members: int) -> np.ndarray:
    """Spread-skill ratio with the finite-ensemble factor: sqrt((M+1)/M) * spread / rmse,
    which is 1 for a calibrated ensemble (Fortin et al. 2014; WeatherBench 2)."""
    return np.sqrt((members + 1) / members) * np.asarray(spread) / np.asarray(rmse)
