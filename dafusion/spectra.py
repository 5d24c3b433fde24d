"""Spherical-harmonic power spectra on any of the system's grids.

``power_spectrum(field, grid, lmax)`` returns E(l) = Σ_m |a_lm|² for total
wavenumbers l = 0..lmax, with orthonormal harmonics on the unit sphere, so that
Σ_l E(l) = ∫ f² dΩ for a band-limited field (Parseval). The longitude
transform is an FFT; the latitude transform is a quadrature with the grid's
own area weights (exact for Legendre-Gauss grids up to the resolved band,
second-order accurate for cell-centred equiangular grids).
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln, lpmv

from dafusion.grids import AnyGrid


def legendre(lmax: int, mu: np.ndarray) -> np.ndarray:
    """Orthonormal associated Legendre functions P̄_l^m(μ): ``(m, l, lat)``, zero for l < m.

    Normalised so that ∫_{-1}^{1} P̄_l^m(μ)² dμ = 1 (no Condon-Shortley phase).
    """
    out = np.zeros((lmax + 1, lmax + 1, mu.size))
    for m in range(lmax + 1):
        for ell in range(m, lmax + 1):
            log_norm = 0.5 * (np.log((2 * ell + 1) / 2) + gammaln(ell - m + 1) - gammaln(ell + m + 1))
            out[m, ell] = (-1) ** m * lpmv(m, ell, mu) * np.exp(log_norm)
    return out


def power_spectrum(field: np.ndarray, grid: AnyGrid, lmax: int | None = None) -> np.ndarray:
    """E(l) for ``field (..., nlat, nlon)``: ``(..., lmax + 1)``; see module docstring."""
    field = np.asarray(field, dtype=np.float64)
    nlat, nlon = grid.shape
    if field.shape[-2:] != (nlat, nlon):
        raise ValueError(f"field shape {field.shape} does not end in {grid.shape} ({grid.name})")
    lmax = min(nlon // 2, nlat) - 1 if lmax is None else lmax
    mu = np.sin(np.deg2rad(grid.lat))
    dmu = 2.0 * grid.lat_weights  # ∫ dμ over each latitude band
    fm = np.fft.rfft(field, axis=-1)[..., : lmax + 1] * (2 * np.pi / nlon)  # ∫ f e^{-imλ} dλ
    p = legendre(lmax, mu)  # (m, l, lat)
    # a_lm = 1/sqrt(2π) ∫ f_m(μ) P̄_l^m(μ) dμ for complex orthonormal Y_lm
    coef = np.einsum("...jm,mlj,j->...ml", fm, p, dmu) / np.sqrt(2 * np.pi)
    power = np.abs(coef) ** 2
    power[..., 1:, :] *= 2.0  # m > 0 stands for ±m of a real field
    return power.sum(axis=-2)
