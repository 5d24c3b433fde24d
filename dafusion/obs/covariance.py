"""Correlated observation errors: the covariance Σ_y + σ² Γ̂(σ) of eq. 13 beyond its diagonal.

A likelihood term whose errors are correlated carries ``covariance``, an object with

    mahalanobis(residual, sigma) -> rᵀ (Σ_y + σ² Γ̂(σ))⁻¹ r   per member, ``(B,)``

for ``residual = y − M(x̂₀)`` of shape ``(B, n)`` and ``sigma`` of shape ``(B,)``.
Two structures are provided:

* :class:`DenseCovariance`: full ``(n, n)`` matrices, a Cholesky solve per member;
  for small terms (a few hundred observations: a radiosonde network, a test).
* :class:`SpectralCovariance`: errors of a field on a sphere that are isotropic,
  i.e. independent between spherical-harmonic coefficients with one variance per
  total wavenumber l and channel (or one covariance between channels per l). That
  is a dense covariance in grid space (correlations over the scales where the
  error lives), applied at the cost of a transform. It sees the residual's
  coefficients up to ``lmax``; a residual beyond them is outside the term's error
  model (for the emulator term that part belongs to ``y`` only and does not depend
  on the state).

A term without ``covariance`` (None) has independent errors: ``obs.base`` divides
each residual by its own ``Σ_y + σ² Γ̂``. The term's ``sigma_y`` and ``gamma`` are
then the marginal (diagonal) values, used by the background check and the
observation-space diagnostics.

Spectral conventions: real orthonormal harmonics on the unit sphere; a field with
coefficient variance v_l has point variance Σ_l (2l+1) v_l / 4π (addition theorem).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Union

import numpy as np
import torch

from dafusion.grids import AnyGrid
from dafusion.spectra import (
    analysis_matrix,
    coefficient_power,
    coefficients,
    m_weights,
    point_variance,
    synthesis,
)

Matrix = Union[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]


class DenseCovariance:
    """Σ_y ``(n, n)`` plus σ² Γ̂: a matrix ``(n, n)`` or a function σ ``(B,)`` -> ``(B, n, n)``."""

    def __init__(self, sigma_y: torch.Tensor, gamma: Matrix, name: str = "term"):
        self.sigma_y, self.gamma, self.name = sigma_y, gamma, name
        n = sigma_y.shape[-1]
        if sigma_y.shape != (n, n) or not torch.allclose(sigma_y, sigma_y.T):
            raise ValueError(f"likelihood term '{name}': Σ_y must be a symmetric (n, n) "
                             f"matrix, got shape {tuple(sigma_y.shape)}")
        try:
            torch.linalg.cholesky(sigma_y)
        except RuntimeError:
            raise ValueError(f"likelihood term '{name}': Σ_y is not positive definite") from None

    def mahalanobis(self, residual: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        s2 = (sigma ** 2).to(residual.dtype)[:, None, None]
        gamma = self.gamma(sigma) if callable(self.gamma) else self.gamma
        cov = self.sigma_y.to(residual.dtype) + s2 * torch.as_tensor(gamma).to(residual.dtype)
        chol, info = torch.linalg.cholesky_ex(cov)
        if bool((info != 0).any()):
            raise FloatingPointError(f"likelihood term '{self.name}': Σ_y + σ²Γ̂ is not "
                                     f"positive definite at sigma={float(sigma.max()):.4g}")
        z = torch.linalg.solve_triangular(chol, residual[..., None], upper=False)
        return z.squeeze(-1).pow(2).sum(dim=-1)


class SpectralCovariance:
    """Isotropic errors of ``channels`` fields on ``grid``, independent per coefficient.

    ``variance``: Σ_y as the coefficient variance v_l per channel ``(C, lmax + 1)``
    (channels independent), or as a covariance between channels per degree
    ``(lmax + 1, C, C)`` (multivariate: e.g. balanced geopotential and temperature
    errors), normalised units. ``gamma``: Γ̂ per channel and degree ``(C, lmax + 1)``,
    or a function σ ``(B,)`` -> ``(B, C, lmax + 1)``, on the diagonal.
    The residual is ``(B, C · nlat · nlon)`` (channel-major) or ``(B, C, nlat, nlon)``.
    """

    def __init__(self, grid: AnyGrid, variance: torch.Tensor, gamma: Matrix,
                 name: str = "term"):
        self.grid, self.name = grid, name
        self.variance, self.gamma = variance, gamma
        self.multivariate = variance.dim() == 3
        if self.multivariate:
            self.lmax, self.channels = variance.shape[0] - 1, variance.shape[1]
            ok = variance.shape[2] == self.channels and bool(
                (torch.linalg.eigvalsh(variance) > 0).all())
        else:
            self.channels, self.lmax = variance.shape[0], variance.shape[-1] - 1
            ok = variance.dim() == 2 and bool((variance > 0).all())
        if not ok:
            raise ValueError(f"likelihood term '{name}': the spectral Σ_y must be > 0 "
                             f"(channels, degrees) or positive definite (degrees, channels, "
                             f"channels), got shape {tuple(variance.shape)}")
        if self.lmax > min(grid.nlat - 1, grid.nlon // 2 - 1):
            raise ValueError(f"likelihood term '{name}': degree {self.lmax} is beyond "
                             f"{grid.name}")
        self.analysis = torch.as_tensor(analysis_matrix(grid, self.lmax))

    def diagonal(self) -> torch.Tensor:
        """The channels' own coefficient variances ``(C, lmax + 1)``."""
        return torch.diagonal(self.variance, dim1=1, dim2=2).T if self.multivariate \
            else self.variance

    def point_variance(self) -> torch.Tensor:
        """The marginal variance of Σ_y at every point, per channel ``(C,)``."""
        return point_variance(self.diagonal())

    def mahalanobis(self, residual: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        field = residual.reshape(residual.shape[0], self.channels, *self.grid.shape)
        gamma = self.gamma(sigma) if callable(self.gamma) else self.gamma
        s2 = (sigma ** 2).to(field.dtype)[:, None, None]
        extra = s2 * torch.as_tensor(gamma).to(field)  # (B, C, l)
        if not self.multivariate:
            power = coefficient_power(field, self.analysis.to(field.device))  # (B, C, m, l)
            return (power.sum(dim=-2) / (self.variance.to(field) + extra)).sum(dim=(1, 2))
        a = coefficients(field, self.analysis.to(field.device)).permute(0, 3, 1, 2)
        total = self.variance.to(field) + torch.diag_embed(extra.transpose(1, 2))  # (B,l,C,C)
        chol, info = torch.linalg.cholesky_ex(total)
        if bool((info != 0).any()):
            raise FloatingPointError(f"likelihood term '{self.name}': Σ_y + σ²Γ̂ is not "
                                     f"positive definite at sigma={float(sigma.max()):.4g}")
        z = torch.linalg.solve_triangular(chol.to(a.dtype), a, upper=False)  # (B, l, C, m)
        w = m_weights(self.lmax, field.dtype).to(field.device)[:, 0]
        return (z.abs() ** 2 * w).sum(dim=(1, 2, 3))


def sample_spectral(cov: SpectralCovariance, generators: list[torch.Generator]
                    ) -> torch.Tensor:
    """One draw of the errors Σ_y per generator: ``(B, C, nlat, nlon)``, float64.

    Independent standard normals z per real coefficient (m = 0: one; m > 0: the real
    and imaginary parts, each of variance ½ of the degree's), coloured per degree by
    the Cholesky factor of Σ_y (or its square root per channel), synthesised on the
    grid; ``cov.mahalanobis`` of the draw is Σ z² exactly.
    """
    lmax, c = cov.lmax, cov.channels
    var = cov.variance.double()
    factor = (torch.linalg.cholesky(var) if cov.multivariate
              else torch.diag_embed(var.T.sqrt()))  # (l, C, C)
    draws = []
    for gen in generators:
        z = torch.randn((2, lmax + 1, c, lmax + 1), generator=gen, dtype=torch.float64)
        coef = torch.complex(z[0], z[1]) / math.sqrt(2)  # (m, C, l)
        coef[0] = z[0, 0].to(coef.dtype)  # m = 0: real, variance 1
        ell = torch.arange(lmax + 1)
        coef = coef * (ell[None, None, :] >= torch.arange(lmax + 1)[:, None, None])  # l >= m
        colored = torch.einsum("lcd,mdl->cml", factor.to(coef.dtype), coef)
        draws.append(synthesis(colored, cov.grid))
    return torch.stack(draws)


def white_gamma(gamma: float, lmax: int, channels: int) -> torch.Tensor:
    """A point variance γ spread evenly over the (lmax + 1)² coefficients: ``(C, lmax + 1)``."""
    return torch.full((channels, lmax + 1), 4 * math.pi * gamma / (lmax + 1) ** 2,
                      dtype=torch.float64)


def gaussian_prior_gamma(prior_variance: torch.Tensor, noise_variance: torch.Tensor
                         ) -> Callable[[torch.Tensor], torch.Tensor]:
    """Γ̂_l(σ) = κ_l p_l / (σ² κ_l + p_l), exact for a Gaussian isotropic prior.

    ``prior_variance`` p_l ``(C, lmax + 1)``: the prior's coefficient variance;
    ``noise_variance`` κ_l ``(lmax + 1,)``: the coefficient variance of unit noise on
    the grid where x_σ lives (:func:`white_noise_variance`). Then x_σ's coefficient
    is a_lm + σ ε with Var ε = κ_l, and Cov[a_lm | x_σ] = σ² Γ̂_l(σ).
    """
    p, kappa = prior_variance, noise_variance

    def gamma(sigma: torch.Tensor) -> torch.Tensor:
        s2 = (sigma ** 2).to(p.dtype)[:, None, None]
        return kappa * p / (s2 * kappa + p)

    return gamma


def white_noise_variance(grid: AnyGrid, lmax: int) -> torch.Tensor:
    """κ_l ``(lmax + 1,)``: the mean variance of a real coefficient of degree l of
    unit-variance noise independent between the points of ``grid`` (the transform's
    own weights: exact for the transform the regridder uses)."""
    from dafusion.spectra import analysis_matrix

    full = analysis_matrix(grid, min(grid.nlat - 1, grid.nlon // 2 - 1))[: lmax + 1, : lmax + 1]
    per_lm = 2 * math.pi * (full ** 2).sum(axis=-1) / grid.nlon  # (m, l): 2π E|b_lm|²
    weight = np.where(np.arange(lmax + 1) == 0, 1.0, 2.0)[:, None]
    ell = np.arange(lmax + 1)
    return torch.as_tensor((weight * per_lm).sum(axis=0) / (2 * ell + 1))
