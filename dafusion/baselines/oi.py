"""Optimal interpolation (3D-Var's solution) with a static background covariance.

For background states x_b (one, or one per member) and the cycle's observations
(``base.Observations``, operator M linear, R = Σ_y / λ diagonal)::

    d     = y + ε − M(x_b)                    innovations (ε: perturbed observations)
    x_a   = x_b + B Hᵀ (H B Hᵀ + R)⁻¹ d       solved in observation space

H is the operator's matrix, read off the operator itself (:func:`observation_matrix`:
one backward pass per block of rows), so the analysis uses exactly the station
interpolation the diffusion guidance uses. B (:class:`StaticCovariance`) is
univariate: block-diagonal in channels, B_c = σ_c² ρ(r / L_c) with ρ Gaussian or
SOAR at the chordal distance r between grid points (``geometry``). Because H's
rows touch few grid points (a 4x4 stencil for a station), B Hᵀ is formed from
the correlations between the stencils' points and the grid only; nothing of size
grid × grid is built for the analysis.

Members: ``M`` analyses share the factorisation of H B Hᵀ + R; with
perturbations each member's observations get ε_m ~ N(0, R) from its own
generator (perturbed-observation OI, as in an ensemble of data assimilations);
without, every member is the same deterministic analysis of its own background.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.linalg
import scipy.sparse
import torch

from dafusion.baselines.base import BaselineError, Observations
from dafusion.baselines.geometry import chordal_km, correlation, grid_points


@dataclasses.dataclass
class StaticCovariance:
    """B on a grid: per channel a variance σ_c² (normalised) and a length scale L_c (km)."""

    variance: np.ndarray  # (C,)
    length_km: np.ndarray  # (C,)
    model: str  # gaussian | soar
    lat: np.ndarray  # (H,) grid latitudes, degrees
    lon: np.ndarray  # (W,)

    def __post_init__(self) -> None:
        self.variance = np.asarray(self.variance, float)
        self.length_km = np.asarray(self.length_km, float)
        self.points = grid_points(self.lat, self.lon)
        correlation(np.zeros(1), 1.0, self.model)  # names a wrong model now

    def correlations(self, c: int, i: np.ndarray, j: np.ndarray | None = None) -> np.ndarray:
        """ρ between grid points ``i`` and ``j`` (flat indices; None = every point) of
        channel ``c``: ``(len(i), len(j))``."""
        la, lo = self.points
        j = slice(None) if j is None else j
        return correlation(chordal_km(la[i], lo[i], la[j], lo[j]), self.length_km[c],
                           self.model)

    def sample(self, generators: list[torch.Generator]) -> np.ndarray:
        """One draw of N(0, B) per generator, ``(M, C, H, W)``; from the eigenvectors of
        each channel's grid × grid correlation (small grids only)."""
        n = self.points[0].size
        if n > 16384:
            raise BaselineError(f"sampling the static B on {n} grid points needs a "
                                f"{n}x{n} matrix; use a grid of at most 16384 points")
        out = np.empty((len(generators), self.variance.size, n))
        roots: dict[float, np.ndarray] = {}
        for c in range(self.variance.size):
            key = float(self.length_km[c])
            if key not in roots:
                w, u = np.linalg.eigh(self.correlations(c, np.arange(n)))
                roots[key] = u * np.sqrt(np.clip(w, 0.0, None))
            for m, g in enumerate(generators):
                z = torch.randn(n, generator=g, dtype=torch.float64).numpy()
                out[m, c] = np.sqrt(self.variance[c]) * (roots[key] @ z)
        return out.reshape(len(generators), self.variance.size, self.lat.size, self.lon.size)


def observation_matrix(obs: Observations, shape: tuple[int, int, int],
                       block: int = 256) -> scipy.sparse.csr_matrix:
    """H of the observations' (linear) operators, ``(n, C·H·W)`` sparse: row j is the
    gradient of observation j, one backward pass per ``block`` rows; checked linear."""
    n, size = len(obs), int(np.prod(shape))
    rows = []
    for start in range(0, n, block):
        k = min(block, n - start)
        x = torch.zeros((k, *shape), dtype=torch.float64, requires_grad=True)
        out = torch.cat([t.operator(x).reshape(k, -1) for t in obs.terms], dim=1)
        out[torch.arange(k), torch.arange(start, start + k)].sum().backward()
        rows.append(scipy.sparse.csr_matrix(x.grad.reshape(k, size).numpy()))
    h = scipy.sparse.vstack(rows).tocsr()
    _check_linear(h, obs, shape)
    return h


def _check_linear(h: scipy.sparse.csr_matrix, obs: Observations,
                  shape: tuple[int, int, int]) -> None:
    x = np.random.default_rng(0).standard_normal((2, *shape))
    direct, through_h = obs.apply(torch.as_tensor(x)), (h @ x.reshape(2, -1).T).T
    if not np.allclose(direct, through_h, rtol=1e-9, atol=1e-9 * np.abs(direct).max()):
        names = [t.name for t in obs.terms]
        raise BaselineError(f"method oi: the observation operators of {names} are not "
                            "linear (OI needs H); use method letkf")


def innovation_covariance(h: scipy.sparse.csr_matrix, b: StaticCovariance,
                          r: np.ndarray) -> tuple[np.ndarray, list]:
    """S = H B Hᵀ + R ``(n, n)`` and, per channel, what B Hᵀ needs later."""
    npts = b.points[0].size
    s, parts = np.diag(np.asarray(r, float)), []
    for c in range(b.variance.size):
        hc = h[:, c * npts:(c + 1) * npts].tocsc()
        support = np.flatnonzero(np.diff(hc.indptr))  # grid points some observation touches
        if support.size == 0:
            continue
        hs = hc[:, support].toarray()  # (n, s)
        s += b.variance[c] * hs @ b.correlations(c, support, support) @ hs.T
        parts.append((c, support, hs))
    return s, parts


def analysis(xb: np.ndarray, obs: Observations, b: StaticCovariance, members: int,
             generators: list[torch.Generator] | None = None) -> np.ndarray:
    """The OI analysis ``(members, C, H, W)`` of backgrounds ``xb (1 or members, C, H,
    W)`` (normalised); see the module docstring. ``generators``: one per member, for
    perturbed observations; None = none."""
    if xb.shape[0] not in (1, members):
        raise BaselineError(f"method oi: {xb.shape[0]} backgrounds for {members} members")
    shape = xb.shape[1:]
    xb = np.broadcast_to(xb, (members, *shape)).reshape(members, -1)
    h = observation_matrix(obs, shape)
    s, parts = innovation_covariance(h, b, obs.r)
    d = obs.y[:, None] - (h @ xb.T)  # (n, M)
    if generators is not None:
        d = d + np.stack([np.sqrt(obs.r) * torch.randn(len(obs), generator=g,
                                                       dtype=torch.float64).numpy()
                          for g in generators], axis=1)
    z = scipy.linalg.cho_solve(scipy.linalg.cho_factor(s), d)  # (H B Hᵀ + R)⁻¹ d
    xa = xb.copy()
    npts = b.points[0].size
    for c, support, hs in parts:  # + B_c H_cᵀ z
        xa[:, c * npts:(c + 1) * npts] += b.variance[c] * (
            b.correlations(c, support).T @ (hs.T @ z)).T
    return xa.reshape(members, *shape)
