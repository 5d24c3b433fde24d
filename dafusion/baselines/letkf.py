"""The local ensemble transform Kalman filter (Hunt, Kostelich and Szunyogh 2007).

Backgrounds x_b^(i), i = 1..k (normalised), their mean x̄ and perturbations
X = [x_b^(i) − x̄]; the members seen by the observation operators
Y = [M(x_b^(i)) − ȳ], ȳ their mean; innovations d = y − ȳ; R = Σ_y / λ diagonal.
Every analysed value (grid point p, channel c) has its own analysis in the
k-dimensional ensemble space, from the observations weighted by a localisation
ρ_j(p, c) that divides their error variance (R-localisation, Hunt et al. 2007
section 2.3)::

    P̃   = [ (k − 1) I / ρ_infl + Yᵀ (R⁻¹ ∘ ρ) Y ]⁻¹       (Hunt eq. 21)
    w̄   = P̃ Yᵀ (R⁻¹ ∘ ρ) d                              (eq. 22)
    W_a = [ (k − 1) P̃ ]^½  (symmetric square root)     (eq. 24)
    x_a^(i) = x̄ + X (w̄ + W_a[:, i])                    (eq. 25)

ρ_j(p, c) = GC(r_pj / L_h) · GC(|ln p_c − ln p_j| / L_v): Gaspari–Cohn in the
great-circle distance (half-width L_h km, zero from 2 L_h) and, optionally, in
log-pressure (L_v scale heights; single-level channels count as 1000 hPa).
Without localisation every point shares one analysis: the global ETKF.
ρ_infl is multiplicative prior inflation of the covariance (1 = none; in the cycle
the members' forecasts are inflated before they arrive here, ``run.inflation``);
``rtps`` α relaxes the analysis spread back towards the background spread
(Whitaker and Hamill 2012): X_a ← X_a (α (σ_b − σ_a) / σ_a + 1) per point.
A point that no observation reaches keeps its background (without inflation exactly;
with it, x̄ + √ρ_infl X, then the relaxation).

The per-point matrices are summed per observed channel first
(Σ_j∈q ρ_h(p, j) Y_j Y_jᵀ / r_j) and combined by the vertical weights, so the cost
is points × observations × k² once, plus one k × k eigendecomposition per
(point, channel), in blocks of points.
"""

from __future__ import annotations

import numpy as np

from dafusion.baselines.base import BaselineError, Observations, log_pressure_distance
from dafusion.baselines.geometry import gaspari_cohn, great_circle_km, grid_points

BLOCK = 2048  # grid points per block (memory: C · BLOCK · k² doubles)


def analysis(xb: np.ndarray, obs: Observations, lat: np.ndarray, lon: np.ndarray,
             levels: np.ndarray, *, localisation_km: float | None,
             vertical: float | None = None, inflation: float = 1.0,
             rtps: float = 0.0) -> np.ndarray:
    """The LETKF analysis ``(k, C, H, W)`` of ``xb (k, C, H, W)`` (normalised) on the
    grid ``lat (H,)``, ``lon (W,)`` whose channels lie at ``levels (C,)`` hPa.
    ``localisation_km``/``vertical`` None: no localisation in that direction."""
    k, c, h, w = xb.shape
    if k < 2:
        raise BaselineError(f"method letkf: needs at least 2 members, got {k}")
    yb = obs.apply(xb)  # (k, n)
    ybar = yb.mean(0)
    y_pert, d = yb - ybar, obs.y - ybar
    xbar = xb.mean(0).reshape(c, -1)
    x_pert = (xb - xb.mean(0)).reshape(k, c, -1)
    la, lo = grid_points(lat, lon)
    observed = np.unique(obs.channel)
    vert = (np.ones((c, observed.size)) if vertical is None else
            gaspari_cohn(log_pressure_distance(levels, levels[observed]), vertical))
    out = np.empty((k, c, h * w))
    for start in range(0, h * w, BLOCK):
        p = slice(start, min(start + BLOCK, h * w))
        hor = (np.ones((la[p].size, len(obs))) if localisation_km is None else
               gaspari_cohn(great_circle_km(la[p], lo[p], obs.lat, obs.lon), localisation_km))
        a, b = _local_sums(hor / obs.r, y_pert, d, obs.channel, observed, vert)
        out[:, :, p] = _transform(a, b, xbar[:, p], x_pert[:, :, p], xb.reshape(k, c, -1)[:, :, p],
                                  inflation, rtps)
    return out.reshape(k, c, h, w)


def _local_sums(weight: np.ndarray, y_pert: np.ndarray, d: np.ndarray, channel: np.ndarray,
                observed: np.ndarray, vert: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Yᵀ(R⁻¹∘ρ)Y ``(C, P, k, k)`` and Yᵀ(R⁻¹∘ρ)d ``(C, P, k)`` for every analysed value;
    ``weight (P, n)``: ρ_h / r."""
    k, (npts, _) = y_pert.shape[0], weight.shape
    per_q_a = np.empty((observed.size, npts, k, k))
    per_q_b = np.empty((observed.size, npts, k))
    for i, q in enumerate(observed):
        j = channel == q
        yq = y_pert[:, j]  # (k, n_q)
        per_q_a[i] = np.einsum("pj,kj,lj->pkl", weight[:, j], yq, yq, optimize=True)
        per_q_b[i] = weight[:, j] @ (yq * d[j]).T
    return (np.einsum("cq,qpkl->cpkl", vert, per_q_a, optimize=True),
            np.einsum("cq,qpk->cpk", vert, per_q_b, optimize=True))


def _transform(a: np.ndarray, b: np.ndarray, xbar: np.ndarray, x_pert: np.ndarray,
               xb: np.ndarray, inflation: float, rtps: float) -> np.ndarray:
    """Hunt's eqs. 21-25 for every analysed value; ``(k, C, P)``."""
    k = x_pert.shape[0]
    reached = np.abs(a).sum(axis=(-2, -1)) > 0  # (C, P): some observation has weight
    a = a + (k - 1) / inflation * np.eye(k)
    lam, u = np.linalg.eigh(a)  # a = U Λ Uᵀ, Λ > 0
    p_tilde = (u / lam[..., None, :]) @ np.swapaxes(u, -1, -2)
    w_mean = np.einsum("cpkl,cpl->cpk", p_tilde, b)
    w_a = (u * np.sqrt((k - 1) / lam)[..., None, :]) @ np.swapaxes(u, -1, -2)
    weights = w_mean[..., :, None] + w_a  # (C, P, j, i): x_a^(i) = x̄ + X (w̄ + W_a[:, i])
    out = xbar[None] + np.einsum("jcp,cpji->icp", x_pert, weights)
    if rtps > 0:
        mean = out.mean(0)
        sd_b, sd_a = x_pert.std(0, ddof=1), out.std(0, ddof=1)
        factor = rtps * (sd_b - sd_a) / np.where(sd_a > 0, sd_a, 1.0) + 1.0
        out = mean[None] + (out - mean[None]) * np.where(sd_a > 0, factor, 1.0)[None]
    if inflation == 1.0:  # what eqs. 21-25 give where no observation reaches, exactly
        out[:, ~reached] = xb[:, ~reached]
    return out
