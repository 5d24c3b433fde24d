"""Spherical-harmonic power spectra on any of the system's grids.

``power_spectrum(field, grid, lmax)`` returns E(l) = Σ_m |a_lm|² for total
wavenumbers l = 0..lmax, with orthonormal harmonics on the unit sphere, so that
Σ_l E(l) = ∫ f² dΩ for a band-limited field (Parseval). The longitude
transform is an FFT; the latitude transform is a quadrature with the grid's
own area weights (exact for Legendre-Gauss grids up to the resolved band,
second-order accurate for cell-centred equiangular grids).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from dafusion.grids import AnyGrid, LegendreGaussGrid


def legendre(lmax: int, mu: np.ndarray) -> np.ndarray:
    """Orthonormal associated Legendre functions P̄_l^m(μ): ``(m, l, lat)``, zero for l < m.

    Normalised so that ∫_{-1}^{1} P̄_l^m(μ)² dμ = 1 (no Condon-Shortley phase).
    Computed by the standard stable recursions on the normalised functions
    (sectoral P̄_m^m from P̄_{m-1}^{m-1}, then upward in l), which, unlike
    unnormalised P_l^m times a normalising factor, neither overflows nor loses
    precision at high degree (ERA5 grids need l up to a few hundred).
    """
    mu = np.asarray(mu, dtype=np.float64)
    out = np.zeros((lmax + 1, lmax + 1, mu.size))
    s = np.sqrt(np.clip(1.0 - mu * mu, 0.0, None))
    pmm = np.full(mu.size, np.sqrt(0.5))
    for m in range(lmax + 1):
        if m > 0:
            pmm = np.sqrt((2 * m + 1) / (2 * m)) * s * pmm
        out[m, m] = pmm
        if m + 1 > lmax:
            break
        out[m, m + 1] = np.sqrt(2 * m + 3) * mu * pmm
        for ell in range(m + 2, lmax + 1):
            a = np.sqrt((4 * ell * ell - 1) / (ell * ell - m * m))
            a_prev = np.sqrt((4 * (ell - 1) ** 2 - 1) / ((ell - 1) ** 2 - m * m))
            out[m, ell] = a * (mu * out[m, ell - 1] - out[m, ell - 2] / a_prev)
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


def analysis_matrix(grid: AnyGrid, lmax: int) -> np.ndarray:
    """A[m, l, lat]: b_lm = Σ_lat A[m, l, lat] f_m(lat), f_m the forward-normalised rfft.

    Gauss quadrature on a Legendre-Gauss grid (exact for band-limited fields); a
    weighted least-squares fit of every degree the grid holds on other grids.
    The orthonormal coefficient on the unit sphere is a_lm = sqrt(2π) b_lm.
    """
    mu = np.sin(np.deg2rad(grid.lat))
    p = legendre(lmax, mu)  # (m, l, lat)
    if isinstance(grid, LegendreGaussGrid):
        return p * (2.0 * grid.lat_weights)[None, None, :]
    w = np.sqrt(grid.lat_weights)
    out = np.zeros_like(p)
    for m in range(lmax + 1):
        basis = p[m, m:].T  # (lat, l - m)
        out[m, m:] = np.linalg.pinv(basis * w[:, None]) * w[None, :]
    return out


def coefficients(field: torch.Tensor, analysis: torch.Tensor) -> torch.Tensor:
    """``(..., lat, lon)`` -> ``(..., m, l)`` complex a_lm (orthonormal on the unit sphere,
    m >= 0; a real field's -m are the conjugates), with ``analysis = analysis_matrix(...)``."""
    lmax = analysis.shape[0] - 1
    fm = torch.fft.rfft(field, dim=-1, norm="forward")[..., : lmax + 1]  # (..., lat, m)
    return math.sqrt(2 * math.pi) * torch.einsum("mls,...sm->...ml", analysis.to(fm.dtype), fm)


def m_weights(lmax: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``(lmax + 1, 1)``: 1 for m = 0, 2 for m > 0 (a real field's ±m)."""
    w = torch.full((lmax + 1, 1), 2.0, dtype=dtype)
    w[0] = 1.0
    return w


def coefficient_power(field: torch.Tensor, analysis: torch.Tensor) -> torch.Tensor:
    """``(..., lat, lon)`` -> ``(..., m, l)``: w_m |a_lm|² (w_0 = 1, w_m = 2 for m > 0), so
    that the sum over m is the power E(l) and over (m, l) the integral ∫ f² dΩ."""
    a = coefficients(field, analysis)
    return m_weights(analysis.shape[0] - 1, field.dtype).to(field.device) * a.abs() ** 2


def synthesis(coef: torch.Tensor, grid: AnyGrid) -> torch.Tensor:
    """``(..., m, l)`` complex a_lm (m >= 0, orthonormal) -> the real field ``(..., lat, lon)``
    on ``grid``: Σ_l a_l0 Y_l0 + 2 Re Σ_{m>0} a_lm Y_lm, the inverse of :func:`coefficients`
    for band-limited fields."""
    lmax = coef.shape[-1] - 1
    p = torch.as_tensor(legendre(lmax, np.sin(np.deg2rad(grid.lat))))  # (m, l, lat)
    fm = torch.einsum("...ml,mls->...sm", coef, p.to(coef.dtype)) / math.sqrt(2 * math.pi)
    return torch.fft.irfft(fm, n=grid.nlon, dim=-1, norm="forward")


def point_variance(spectrum: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Σ_l (2l + 1) v_l / 4π over the last axis: the variance at any point of an isotropic
    field whose real coefficients of degree l have variance v_l (addition theorem)."""
    n = spectrum.shape[-1]
    two_l_1 = (2 * torch.arange(n, dtype=spectrum.dtype) + 1 if isinstance(spectrum, torch.Tensor)
               else 2 * np.arange(n) + 1)
    return (spectrum * two_l_1).sum(-1) / (4 * math.pi)


def degree_covariance(fields: torch.Tensor, analysis: torch.Tensor) -> torch.Tensor:
    """``(B, C, lat, lon)`` -> ``(B, lmax + 1, C, C)``: per field, the covariance between
    channels of one real coefficient of degree l, Re Σ_m w_m a_lm,c conj(a_lm,d) / (2l + 1)
    (its diagonal summed over l with weights 2l + 1 is ∫ f² dΩ, as for ``power_spectrum``)."""
    lmax = analysis.shape[0] - 1
    a = coefficients(fields, analysis)  # (B, C, m, l)
    w = m_weights(lmax, fields.dtype)[:, 0].to(a.dtype)
    cross = torch.einsum("bcml,bdml,m->blcd", a, a.conj(), w).real
    return cross / (2 * torch.arange(lmax + 1, dtype=fields.dtype) + 1)[None, :, None, None]
