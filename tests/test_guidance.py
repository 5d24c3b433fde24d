"""Guidance as a denoiser, against exact answers.

* Oracle: for a Gaussian prior and a linear operator the guided denoiser with the
  full-matrix Γ̂(σ) = A Cov[x₀ | x_σ] Aᵀ / σ² (``obs.covariance.DenseCovariance``) is
  E[x₀ | x_σ, y] in closed form (deterministic, no sampling), also with correlated
  observation errors Σ_y; the diagonal Γ̂ of eq. 13 is exact only when the
  observed values are uncorrelated given x_σ and their errors are independent.
* Algorithm 1: EDM's sampler on the guided denoiser equals the paper's posterior
  drift written out independently here, with churn and the guidance clip.
"""

from __future__ import annotations

import math

import pytest
import torch

from dafusion.config import SamplerConfig
from dafusion.obs.base import joint_log_likelihood, sda_log_likelihood
from dafusion.obs.covariance import DenseCovariance
from dafusion.prior.guidance import GuidedDenoiser
from dafusion.prior.sampler import EDMSampler, member_generators, sigma_steps
from fakes import GaussianDenoiser, LinearObs

D = torch.float64


def _dense_prior():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(8, 8, generator=gen, dtype=D) * 0.4
    return torch.linspace(-1, 1, 8, dtype=D), a @ a.T + 0.3 * torch.eye(8, dtype=D)


def _selection(index: torch.Tensor) -> torch.Tensor:
    a = torch.zeros(index.numel(), 8, dtype=D)
    a[torch.arange(index.numel()), index] = 1.0
    return a


def _posterior_mean(mu, cov, a, r, y, x, sigma):
    """E[x₀ | x_σ = x, y] for x₀ ~ N(μ, Σ), x_σ = x₀ + σ ε, y = A x₀ + N(0, R)."""
    p = torch.linalg.inv(cov) + torch.eye(8, dtype=D) / sigma**2 + a.T @ torch.linalg.solve(r, a)
    rhs = torch.linalg.solve(cov, mu) + x / sigma**2 + a.T @ torch.linalg.solve(r, y)
    return torch.linalg.solve(p, rhs)


def _gamma(cov, a, diagonal=False):
    """Γ̂(σ) = A Cov[x₀ | x_σ] Aᵀ / σ² per member, ``(B, n, n)`` (or its diagonal ``(B, n)``)."""
    eye = torch.eye(8, dtype=D)

    def gamma(sigma):
        full = torch.stack([a @ (cov - cov @ torch.linalg.solve(cov + t**2 * eye, cov)) @ a.T
                            / t**2 for t in sigma])
        return torch.diagonal(full, dim1=1, dim2=2) if diagonal else full

    return gamma


# observation errors: independent, and correlated (neighbouring instruments)
R_INDEPENDENT = 0.1 * torch.eye(3, dtype=D)
R_CORRELATED = torch.tensor([[0.10, 0.06, 0.02], [0.06, 0.10, 0.06], [0.02, 0.06, 0.10]],
                            dtype=D)


@pytest.mark.parametrize("r", [R_INDEPENDENT, R_CORRELATED], ids=["independent", "correlated"])
@pytest.mark.parametrize("sigma", [0.05, 0.5, 2.0, 20.0])
def test_guided_denoiser_is_the_posterior_mean_with_the_full_covariance(sigma, r):
    mu, cov = _dense_prior()
    index = torch.tensor([1, 4, 6])
    a = _selection(index)
    y = torch.tensor([0.5, -1.0, 2.0], dtype=D)
    x = torch.randn(3, 1, 2, 4, generator=torch.Generator().manual_seed(1), dtype=D) * sigma
    s = torch.full((3,), sigma, dtype=D)
    exact = torch.stack([_posterior_mean(mu, cov, a, r, y, xb.reshape(-1), sigma) for xb in x])

    full = LinearObs("linear", y, 0.1, 0.0, 1.0, index,
                     covariance=DenseCovariance(r, _gamma(cov, a)))
    guided = GuidedDenoiser(GaussianDenoiser(mu, cov), joint_log_likelihood([full]))
    torch.testing.assert_close(guided(x, s).reshape(3, -1), exact, rtol=0, atol=1e-12)
    # the step bound never binds on an exact Kalman step (gain < 1)
    bounded = GuidedDenoiser(GaussianDenoiser(mu, cov), joint_log_likelihood([full]),
                             bound=True)
    torch.testing.assert_close(bounded(x, s).reshape(3, -1), exact, rtol=0, atol=1e-12)

    # the diagonal of eq. 13 drops the correlations (of the observed points given x_σ,
    # and of the errors): not exact. Largest error, independent / correlated errors:
    # 6.7e-7 / 0.11 at σ = 0.05, 0.040 / 0.44 at 0.5, 0.16 / 0.083 at 2, 0.12 / 0.16 at 20
    term = LinearObs("linear", y, torch.diagonal(r), _gamma(cov, a, diagonal=True), 1.0, index)
    diagonal = GuidedDenoiser(GaussianDenoiser(mu, cov), joint_log_likelihood([term]))
    error = (diagonal(x, s).reshape(3, -1) - exact).abs().max().item()
    floor = 1e-7 if sigma == 0.05 and r is R_INDEPENDENT else 1e-2
    assert error > floor, error


def test_diagonal_gamma_is_exact_for_uncorrelated_observed_points():
    """Σ block-diagonal in pairs; observed points 1, 4, 6 lie in different blocks."""
    cov = torch.zeros(8, 8, dtype=D)
    for k, (v, c) in enumerate([(1.0, 0.6), (0.5, -0.3), (2.0, 1.2), (0.8, 0.5)]):
        cov[2 * k: 2 * k + 2, 2 * k: 2 * k + 2] = torch.tensor([[v, c], [c, v]])
    mu, index = torch.linspace(-1, 1, 8, dtype=D), torch.tensor([1, 4, 6])
    a, r = _selection(index), 0.1 * torch.eye(3, dtype=D)
    y = torch.tensor([0.5, -1.0, 2.0], dtype=D)
    eye = torch.eye(8, dtype=D)

    def diag_gamma(sig):
        return torch.stack([torch.diagonal(a @ (cov - cov @ torch.linalg.solve(
            cov + t**2 * eye, cov)) @ a.T) / t**2 for t in sig])

    term = LinearObs("linear", y, 0.1, diag_gamma, 1.0, index)
    guided = GuidedDenoiser(GaussianDenoiser(mu, cov), joint_log_likelihood([term]))
    for sigma in (0.05, 0.5, 2.0, 20.0):
        x = torch.randn(2, 1, 2, 4, generator=torch.Generator().manual_seed(2), dtype=D) * sigma
        exact = torch.stack([_posterior_mean(mu, cov, a, r, y, xb.reshape(-1), sigma)
                             for xb in x])
        got = guided(x, torch.full((2,), sigma, dtype=D)).reshape(2, -1)
        torch.testing.assert_close(got, exact, rtol=0, atol=1e-12)


def test_the_bound_stops_a_stiff_step_where_the_misfit_is_back_to_its_start():
    """Γ̂ = 0 and a tiny Σ_y make the step overshoot one observed point many times over;
    bounded, the step ends where the misfit is what it was: mirrored about y."""
    mu, cov = _dense_prior()
    term = LinearObs("one", torch.tensor([0.8], dtype=D), 1e-4, 0.0, 1.0, torch.tensor([3]))
    x = torch.randn(2, 1, 2, 4, generator=torch.Generator().manual_seed(4), dtype=D) * 2.0
    s = torch.full((2,), 2.0, dtype=D)
    prior = GaussianDenoiser(mu, cov)
    free = GuidedDenoiser(prior, joint_log_likelihood([term]))(x, s).reshape(2, -1)[:, 3]
    assert ((free - 0.8).abs() > 10).all()  # far past the observation
    start = prior(x, s).reshape(2, -1)[:, 3]
    bounded = GuidedDenoiser(prior, joint_log_likelihood([term]), bound=True)(x, s)
    torch.testing.assert_close(bounded.reshape(2, -1)[:, 3], 2 * 0.8 - start, rtol=0,
                               atol=1e-10)


def _algorithm_1(denoiser, terms, cfg, shape, gens):
    """The paper's Algorithm 1 written out with the guidance inside the drift."""
    t = sigma_steps(cfg)
    randn = lambda: torch.stack([torch.randn(shape, generator=g, dtype=D)  # noqa: E731
                                 for g in gens])

    def drift(x, t_i):
        sigma = torch.full((x.shape[0],), t_i, dtype=D)
        x_in = x.detach().requires_grad_(True)
        d = denoiser(x_in, sigma)
        log_p = sum(term.weight * sda_log_likelihood(term, d, sigma) for term in terms)
        (score,) = torch.autograd.grad(log_p.sum(), x_in)
        g = cfg.guidance_scale * t_i * score
        rms = g.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt()
        g = g * (cfg.guidance_clip / rms.clamp_min(cfg.guidance_clip))
        return (x - d.detach()) / t_i - g

    x = randn() * t[0].item()
    for i in range(cfg.steps):
        t_cur, t_next = t[i].item(), t[i + 1].item()
        churn = cfg.S_tmin <= t_cur <= cfg.S_tmax
        gamma = min(cfg.S_churn / cfg.steps, math.sqrt(2) - 1) if churn else 0.0
        t_hat = t_cur * (1 + gamma)
        if gamma > 0:
            x = x + math.sqrt(t_hat**2 - t_cur**2) * randn() * cfg.S_noise
        d_cur = drift(x, t_hat)
        x_next = x + (t_next - t_hat) * d_cur
        if t_next > 0:
            x_next = x + (t_next - t_hat) * 0.5 * (d_cur + drift(x_next, t_next))
        x = x_next.detach()
    return x


def test_sampler_on_the_guided_denoiser_is_algorithm_1():
    mu, cov = _dense_prior()
    term = LinearObs("linear", torch.tensor([0.5, -1.0, 2.0], dtype=D), 0.05, 0.2, 0.7,
                     torch.tensor([1, 4, 6]))
    cfg = SamplerConfig(steps=12, sigma_max=20.0, S_churn=4.0, S_tmin=0.05, S_tmax=5.0,
                        guidance_scale=1.3, guidance_clip=2.0)
    prior = GaussianDenoiser(mu, cov)
    expected = _algorithm_1(prior, [term], cfg, (1, 2, 4), member_generators(0, range(3)))
    guided = GuidedDenoiser(prior, joint_log_likelihood([term]), scale=cfg.guidance_scale,
                            clip=cfg.guidance_clip)
    got = EDMSampler(cfg)(guided, (1, 2, 4), member_generators(0, range(3)), dtype=D)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
