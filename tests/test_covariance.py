"""Correlated observation errors (``obs.covariance``) against independent computations.

The spectral covariance is checked against the dense grid covariance written with
the addition theorem, K(p, q) = Σ_l (2l + 1)/4π · v_l · P_l(cos γ_pq) (scipy's
Legendre polynomials; no transform of the project): for a residual r = K z in the
range of K, the Mahalanobis norm rᵀ K⁺ r is exactly zᵀ K z.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.special
import torch

from dafusion.grids import grid_from_name
from dafusion.obs.base import sda_log_likelihood
from dafusion.obs.covariance import (
    DenseCovariance,
    SpectralCovariance,
    gaussian_prior_gamma,
    white_gamma,
)
from fakes import LinearObs

GRID = grid_from_name("legendre_gauss_16x32")
LMAX = 15


def _addition_theorem(spectrum: np.ndarray) -> np.ndarray:
    """The grid covariance ``(N, N)`` of an isotropic field with coefficient variance v_l."""
    lat, lon = np.meshgrid(np.deg2rad(GRID.lat), np.deg2rad(GRID.lon), indexing="ij")
    lat, lon = lat.ravel(), lon.ravel()
    cos = (np.sin(lat)[:, None] * np.sin(lat)[None] + np.cos(lat)[:, None] * np.cos(lat)[None]
           * np.cos(lon[:, None] - lon[None]))
    cos = np.clip(cos, -1.0, 1.0)
    return sum((2 * ell + 1) / (4 * np.pi) * v * scipy.special.eval_legendre(ell, cos)
               for ell, v in enumerate(spectrum))


def _spectra(channels: int) -> np.ndarray:
    ell = np.arange(LMAX + 1)
    return np.stack([(1.0 + c) / (1.0 + ell) ** (2 + c) for c in range(channels)])


def test_the_spectral_norm_is_the_dense_norm_of_the_addition_theorem():
    v = _spectra(2)
    rng = np.random.default_rng(0)
    k = [_addition_theorem(vc) for vc in v]
    z = rng.standard_normal((3, 2, GRID.nlat * GRID.nlon))
    r = np.stack([np.stack([k[c] @ z[b, c] for c in range(2)]) for b in range(3)])
    expected = np.array([sum(z[b, c] @ k[c] @ z[b, c] for c in range(2)) for b in range(3)])
    cov = SpectralCovariance(GRID, torch.as_tensor(v), torch.zeros(2, LMAX + 1))
    got = cov.mahalanobis(torch.as_tensor(r.reshape(3, -1)), torch.ones(3, dtype=torch.float64))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-9)
    # the marginal variance is the diagonal of K
    np.testing.assert_allclose(cov.point_variance().numpy(), [np.diag(kc).mean() for kc in k],
                               rtol=1e-12)
    np.testing.assert_allclose([np.diag(kc).std() for kc in k], 0.0, atol=1e-12)


def test_the_multivariate_spectral_norm_is_the_dense_norm_of_the_addition_theorem():
    """Channels correlated per degree: K[(c, p), (c', q)] = Σ_l (2l+1)/4π V_l[c, c'] P_l(cos γ)."""
    v = _spectra(2)
    rho = 0.8 * np.exp(-np.arange(LMAX + 1) / 5.0)  # the channels' correlation per degree
    cross = np.zeros((LMAX + 1, 2, 2))
    cross[:, 0, 0], cross[:, 1, 1] = v[0], v[1]
    cross[:, 0, 1] = cross[:, 1, 0] = rho * np.sqrt(v[0] * v[1])
    blocks = [[_addition_theorem(cross[:, i, j]) for j in range(2)] for i in range(2)]
    k = np.block(blocks)
    z = np.random.default_rng(3).standard_normal((2, k.shape[0]))
    expected = np.einsum("bi,ij,bj->b", z, k, z)
    cov = SpectralCovariance(GRID, torch.as_tensor(cross), torch.zeros(2, LMAX + 1))
    got = cov.mahalanobis(torch.as_tensor(z @ k), torch.ones(2, dtype=torch.float64))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-8)
    # and with rho = 0 it is the channels-independent norm
    indep = SpectralCovariance(GRID, torch.as_tensor(v), torch.zeros(2, LMAX + 1))
    cross[:, 0, 1] = cross[:, 1, 0] = 0.0
    multi = SpectralCovariance(GRID, torch.as_tensor(cross), torch.zeros(2, LMAX + 1))
    r = torch.as_tensor(z)
    torch.testing.assert_close(multi.mahalanobis(r, torch.ones(2, dtype=torch.float64)),
                               indep.mahalanobis(r, torch.ones(2, dtype=torch.float64)))


@pytest.mark.parametrize("sigma", [0.1, 1.0, 10.0])
def test_the_gaussian_prior_gamma_is_the_exact_posterior_covariance(sigma):
    """Σ_y + σ²Γ̂ with Γ̂_l = κ p_l/(σ²κ + p_l) is R + Cov[x₀ | x_σ] for x₀ ~ N(0, P) and
    x_σ = x₀ + σ ε, P and Cov ε = K_κ isotropic (the matrices from the addition theorem)."""
    v, p = _spectra(1)[0] * 0.1, 1.0 / (1.0 + np.arange(LMAX + 1)) ** 1.5
    kappa = 4 * np.pi / 512 * (1.0 + 0.01 * np.arange(LMAX + 1))
    big_r, big_p, noise = _addition_theorem(v), _addition_theorem(p), _addition_theorem(kappa)
    n = big_p.shape[0]
    posterior = big_p - big_p @ np.linalg.pinv(big_p + sigma**2 * noise, rcond=1e-12,
                                               hermitian=True) @ big_p
    total = big_r + posterior
    z = np.random.default_rng(1).standard_normal((2, n))
    r = z @ total  # total is symmetric: rows are total @ z_b
    expected = np.einsum("bi,ij,bj->b", z, total, z)
    cov = SpectralCovariance(GRID, torch.as_tensor(v)[None],
                             gaussian_prior_gamma(torch.as_tensor(p)[None], torch.as_tensor(kappa)))
    got = cov.mahalanobis(torch.as_tensor(r), torch.full((2,), sigma, dtype=torch.float64))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-8)


def test_the_white_noise_variance_is_that_of_noise_on_the_grid():
    """κ_l against the sample variance of transformed white noise (Monte Carlo, 8000
    draws: 1.6 % standard error at l = 0)."""
    from dafusion.obs.covariance import white_noise_variance
    from dafusion.spectra import analysis_matrix, coefficient_power

    for grid in (GRID, grid_from_name("equiangular_32x64")):
        full = analysis_matrix(grid, min(grid.nlat - 1, grid.nlon // 2 - 1))
        noise = torch.randn(8000, *grid.shape, generator=torch.Generator().manual_seed(0),
                            dtype=torch.float64)
        power = coefficient_power(noise, torch.as_tensor(full[:LMAX + 1, :LMAX + 1])).mean(0)
        sample = power.sum(0) / (2 * torch.arange(LMAX + 1) + 1)
        np.testing.assert_allclose(white_noise_variance(grid, LMAX).numpy(), sample.numpy(),
                                   rtol=0.05)


@pytest.mark.parametrize("multivariate", [False, True])
def test_a_sampled_error_has_the_norm_of_its_normals(multivariate):
    """Σ_y-coloured draws: the Mahalanobis norm is the sum of the squared normals drawn
    (exact), and the sample variance per degree is Σ_y's (Monte Carlo)."""
    from dafusion.obs.covariance import sample_spectral
    from dafusion.spectra import analysis_matrix, coefficient_power

    v = _spectra(2)
    if multivariate:
        var = np.zeros((LMAX + 1, 2, 2))
        var[:, 0, 0], var[:, 1, 1] = v[0], v[1]
        var[:, 0, 1] = var[:, 1, 0] = 0.6 * np.sqrt(v[0] * v[1])
    else:
        var = v
    cov = SpectralCovariance(GRID, torch.as_tensor(var), torch.zeros(2, LMAX + 1))
    gens = [torch.Generator().manual_seed(k) for k in range(3)]
    draws = sample_spectral(cov, gens)
    expected = []
    for k in range(3):
        z = torch.randn((2, LMAX + 1, 2, LMAX + 1), generator=torch.Generator().manual_seed(k),
                        dtype=torch.float64)
        used = (torch.arange(LMAX + 1)[None, :] >= torch.arange(LMAX + 1)[:, None])  # (m, l)
        total = (z[0] ** 2 * used[:, None]).sum() + (z[1, 1:] ** 2 * used[1:, None]).sum()
        expected.append(float(total))
    got = cov.mahalanobis(draws.reshape(3, -1), torch.ones(3, dtype=torch.float64))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-9)
    many = sample_spectral(cov, [torch.Generator().manual_seed(k) for k in range(400)])
    power = coefficient_power(many, torch.as_tensor(analysis_matrix(GRID, LMAX))).sum(-2)
    sample = power.mean(0) / (2 * torch.arange(LMAX + 1) + 1)  # (C, l)
    np.testing.assert_allclose(sample[:, :4].numpy(), v[:, :4], rtol=0.2)
    np.testing.assert_allclose(sample[:, 4:].numpy(), v[:, 4:], rtol=0.08)


def test_a_white_gamma_has_the_stated_point_variance():
    gamma = white_gamma(0.3, LMAX, 2)
    cov = SpectralCovariance(GRID, gamma, torch.zeros(2, LMAX + 1))
    np.testing.assert_allclose(cov.point_variance().numpy(), [0.3, 0.3], rtol=1e-12)


def test_dense_covariance_is_the_gaussian_log_density():
    """−½ rᵀ (Σ_y + σ²Γ̂)⁻¹ r against scipy's multivariate normal (same normalisation)."""
    from scipy.stats import multivariate_normal

    sigma_y = torch.tensor([[0.2, 0.05], [0.05, 0.1]], dtype=torch.float64)
    gamma = torch.tensor([[1.0, 0.3], [0.3, 0.5]], dtype=torch.float64)
    term = LinearObs("pair", torch.tensor([0.3, -0.4], dtype=torch.float64), 0.1, 0.0, 1.0,
                     torch.tensor([0, 3]), covariance=DenseCovariance(sigma_y, gamma))
    x0 = torch.arange(8, dtype=torch.float64).reshape(1, 1, 2, 4) / 10
    sigma = torch.tensor([0.7], dtype=torch.float64)
    total = (sigma_y + 0.49 * gamma).numpy()
    mvn = multivariate_normal(mean=[0.0, 0.3], cov=total)
    expected = mvn.logpdf([0.3, -0.4]) - mvn.logpdf([0.0, 0.3])  # the constant cancels
    got = sda_log_likelihood(term, x0, sigma) - sda_log_likelihood(
        term, torch.tensor([0.3, 0, 0, -0.4, 0, 0, 0, 0], dtype=torch.float64)
        .reshape(1, 1, 2, 4), sigma)
    np.testing.assert_allclose(got.numpy(), [expected], rtol=1e-12)


def test_a_covariance_that_is_not_positive_definite_is_refused_naming_the_term():
    with pytest.raises(ValueError, match="'radiosondes'.*positive definite"):
        DenseCovariance(torch.tensor([[1.0, 2.0], [2.0, 1.0]]), 0.0, name="radiosondes")
    with pytest.raises(ValueError, match="'emulator'.*> 0"):
        SpectralCovariance(GRID, torch.zeros(1, LMAX + 1), 0.0, name="emulator")
