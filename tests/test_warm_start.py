"""The warm start (``prior.sampler.start = background``) and the identity Jacobian
(``prior.sampler.identity_jacobian_below``) against closed forms.

For a Gaussian prior N(μ, Σ) and linear observations y = A x + N(0, R) the guided
denoiser with the exact Γ̂ is E[x₀ | x_σ, y] (``test_guidance.py``), so the sampler
integrates the probability-flow ODE of the posterior N(m, P). Started from
x_0 = b + σ_s ε that ODE is linear: x = m + S (x_0 − m), S = P^½ (P + σ_s² I)^-½, and
the members are N(m + S (b − m), σ_s² P (P + σ_s² I)^-1) — computed here from
eigendecompositions, independently of the sampler.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from dafusion.config import SamplerConfig
from dafusion.obs.base import joint_log_likelihood
from dafusion.obs.covariance import DenseCovariance
from dafusion.prior.guidance import GuidedDenoiser
from dafusion.prior.sampler import EDMSampler, member_generators, sigma_steps
from fakes import GaussianDenoiser, LinearObs

D = torch.float64
N = 4000  # members: Monte-Carlo standard errors about 1.6 % of a standard deviation


def _problem():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(8, 8, generator=gen, dtype=D) * 0.4
    mu, cov = torch.linspace(-1, 1, 8, dtype=D), a @ a.T + 0.3 * torch.eye(8, dtype=D)
    index = torch.tensor([1, 4, 6])
    sel = torch.zeros(3, 8, dtype=D)
    sel[torch.arange(3), index] = 1.0
    r = 0.1 * torch.eye(3, dtype=D)
    y = torch.tensor([0.5, -1.0, 2.0], dtype=D)
    return mu, cov, index, sel, r, y


def _sym(mat: torch.Tensor, f) -> torch.Tensor:
    lam, vec = torch.linalg.eigh(mat)
    return vec @ torch.diag(f(lam)) @ vec.T


def _term(mu, cov, index, sel, r, y):
    eye = torch.eye(8, dtype=D)

    def gamma(sigma):  # A Cov[x₀ | x_σ] Aᵀ / σ², one matrix for the batch's single σ
        t = float(sigma[0])
        one = sel @ (cov - cov @ torch.linalg.solve(cov + t**2 * eye, cov)) @ sel.T / t**2
        return one.expand(sigma.shape[0], 3, 3)

    return LinearObs("linear", y, 0.1, 0.0, 1.0, index, covariance=DenseCovariance(r, gamma))


@pytest.mark.parametrize("sigma_start", [0.5, 2.0])
def test_warm_started_ode_sampler_gives_the_closed_form(sigma_start):
    mu, cov, index, sel, r, y = _problem()
    precision = torch.linalg.inv(cov) + sel.T @ torch.linalg.solve(r, sel)
    p = torch.linalg.inv(precision)
    m = p @ (torch.linalg.solve(cov, mu) + sel.T @ torch.linalg.solve(r, y))
    b = torch.tensor([1.0, -0.5, 0.3, 2.0, 0.0, -1.2, 0.8, 0.4], dtype=D)  # a background
    s2 = sigma_start**2
    shrink = _sym(p, lambda lam: (lam / (lam + s2)).sqrt())  # S = P^½ (P + σ_s²)^-½
    mean, covariance = m + shrink @ (b - m), s2 * _sym(p, lambda lam: 1.0 / (lam + s2)) @ p

    cfg = SamplerConfig(steps=40, start="background", sigma_start=sigma_start)
    assert sigma_steps(cfg)[0].item() == pytest.approx(sigma_start)
    guided = GuidedDenoiser(GaussianDenoiser(mu, cov),
                            joint_log_likelihood([_term(mu, cov, index, sel, r, y)]))
    x = EDMSampler(cfg)(guided, (1, 2, 4), member_generators(0, range(N)), dtype=D,
                        start=b.reshape(1, 1, 2, 4)).reshape(N, 8)
    got_mean, got_cov = x.mean(0), torch.cov(x.T)
    std = covariance.diagonal().sqrt()
    se_mean = std / N**0.5
    se_cov = ((covariance.diagonal()[:, None] * covariance.diagonal()[None]
               + covariance**2) / N).sqrt()
    assert ((got_mean - mean).abs() < 4 * se_mean).all(), (got_mean - mean) / se_mean
    assert ((got_cov - covariance).abs() < 4 * se_cov).all(), (got_cov - covariance) / se_cov

    # what differs from the posterior that takes b as an observation with error σ_s²:
    # the same covariance, the mean pulled towards b by S instead of K = S²
    bayes = m + _sym(p, lambda lam: lam / (lam + s2)) @ (b - m)
    assert (bayes - mean).abs().max() > 20 * se_mean.max()
    # and from the posterior p(x | y) itself (Algorithm 1's start, σ_s -> ∞)
    assert torch.trace(covariance) < torch.trace(p)


def test_the_noise_start_is_unchanged_and_a_background_is_required():
    mu, cov, *_ = _problem()
    prior = GaussianDenoiser(mu, cov)
    cfg = SamplerConfig(steps=6, sigma_max=20.0)
    with pytest.raises(ValueError, match="start is 'noise', but a background was given"):
        EDMSampler(cfg)(prior, (1, 2, 4), member_generators(0, range(2)), dtype=D,
                        start=torch.zeros(1, 1, 2, 4, dtype=D))
    warm = SamplerConfig(steps=6, start="background", sigma_start=1.0)
    with pytest.raises(ValueError, match="start is 'background', but no background"):
        EDMSampler(warm)(prior, (1, 2, 4), member_generators(0, range(2)), dtype=D)
    # the warm start's first state is b + σ_start ε with Algorithm 1's member noise
    gens = member_generators(0, range(2))
    noise = torch.stack([torch.randn((1, 2, 4), generator=g, dtype=D)
                         for g in member_generators(0, range(2))])
    b = torch.arange(8, dtype=D).reshape(1, 1, 2, 4)
    first = []

    class Probe:
        def __call__(self, x, sigma):
            first.append(x.clone())
            return prior(x, sigma)

    EDMSampler(warm)(Probe(), (1, 2, 4), gens, dtype=D, start=b)
    torch.testing.assert_close(first[0], b + 1.0 * noise, rtol=0, atol=1e-15)


def test_a_cycle_starts_each_member_from_its_own_background(monkeypatch):
    """reinit members: member m's start is its emulator state on the analysis grid,
    normalised (what the classical methods take as background), the climatological
    mean where the emulator has no channel; plain mode is refused before any cycle."""
    import numpy as np

    import fakes as cycle_fakes
    from dafusion.cycler import analysis
    from dafusion.cycler.rundir import RunError

    exp = cycle_fakes.experiment("run.mode=reinit", "run.reinit=members", "run.members=3",
                                 "prior.sampler.start=background",
                                 "prior.sampler.sigma_start=1.5")
    mode, method = exp.mode(), analysis.analysis_method(exp)
    mode.advance(0, np.stack([exp.truth.at(exp.times[0]).values + k for k in range(3)]))
    seen = {}
    real = EDMSampler.__call__

    def record(self, denoiser, shape, generators, dtype=torch.float32, device="cpu",
               start=None):
        seen["start"] = start.clone()
        return real(self, denoiser, shape, generators, dtype, device, start)

    monkeypatch.setattr(EDMSampler, "__call__", record)
    method(1, [], mode)
    expected = exp.normaliser.normalise(mode.background_members(1))
    assert seen["start"].shape == (3, *expected.shape[1:])
    torch.testing.assert_close(seen["start"], torch.as_tensor(expected, dtype=torch.float32),
                               rtol=0, atol=0)
    assert sigma_steps(exp.cfg.prior.sampler)[0].item() == pytest.approx(1.5, rel=1e-15)
    with pytest.raises(RunError, match="prior.sampler.start=background starts each analysis "
                                       "from the emulator's forecast; mode plain has none"):
        cycle_fakes.experiment("run.mode=plain", "prior.sampler.start=background")


# --------------------------------------------------------- the identity Jacobian


def _affine_denoiser(mu, cov, sel, r, y, sigma, identity_jacobian):
    """D̃(x; σ) = G x + h in closed form: the posterior's Tweedie mean, or with
    ∂D/∂x taken as I, D + K_σ (y − A D) with K_σ = σ² Aᵀ (R + σ² Γ̂)⁻¹ (float64)."""
    eye = torch.eye(8, dtype=D)
    if not identity_jacobian:
        precision = torch.linalg.inv(cov) + sel.T @ torch.linalg.solve(r, sel)
        p = torch.linalg.inv(precision)
        m = p @ (torch.linalg.solve(cov, mu) + sel.T @ torch.linalg.solve(r, y))
        g = p @ torch.linalg.inv(p + sigma**2 * eye)
        return g, m - g @ m
    jac = cov @ torch.linalg.inv(cov + sigma**2 * eye)
    gamma = sel @ (cov - jac @ cov) @ sel.T / sigma**2
    gain = sigma**2 * sel.T @ torch.linalg.inv(r + sigma**2 * gamma)
    keep = eye - gain @ sel
    return keep @ jac, keep @ (mu - jac @ mu) + gain @ y


def _affine_sampler(mu, cov, sel, r, y, cfg, below):
    """x_N = F x_0 + f: the same Heun steps as the sampler (S_churn = 0) on the
    closed-form D̃, composed as matrices."""
    eye = torch.eye(8, dtype=D)
    t = sigma_steps(cfg).tolist()
    f_mat, f_vec = eye.clone(), torch.zeros(8, dtype=D)

    def drift(sigma):  # d(x) = U x + u = (x − G x − h) / σ
        g, h = _affine_denoiser(mu, cov, sel, r, y, sigma, sigma < below)
        return (eye - g) / sigma, -h / sigma

    for t_cur, t_next in zip(t[:-1], t[1:]):
        u1, v1 = drift(t_cur)
        step, shift = eye + (t_next - t_cur) * u1, (t_next - t_cur) * v1
        if t_next > 0:
            u2, v2 = drift(t_next)
            step = eye + (t_next - t_cur) / 2 * (u1 + u2 @ (eye + (t_next - t_cur) * u1))
            shift = (t_next - t_cur) / 2 * (v1 + u2 @ ((t_next - t_cur) * v1) + v2)
        f_mat, f_vec = step @ f_mat, step @ f_vec + shift
    return f_mat, f_vec


@pytest.mark.parametrize("sigma", [0.05, 0.4, 3.0])
def test_the_identity_jacobian_evaluation_is_the_closed_form(sigma):
    """Below ``identity_jacobian_below`` the guided denoiser is D + K_σ (y − A D) with
    the likelihood gradient taken at D (no backward pass through the network); at and
    above it, Algorithm 1's (here the exact posterior mean)."""
    mu, cov, index, sel, r, y = _problem()
    guided = GuidedDenoiser(GaussianDenoiser(mu, cov),
                            joint_log_likelihood([_term(mu, cov, index, sel, r, y)]),
                            identity_jacobian_below=0.5)
    x = torch.randn(5, 1, 2, 4, generator=torch.Generator().manual_seed(1), dtype=D) * 2
    g, h = _affine_denoiser(mu, cov, sel, r, y, sigma, sigma < 0.5)
    got = guided(x, torch.full((5,), sigma, dtype=D)).reshape(5, 8)
    torch.testing.assert_close(got, x.reshape(5, 8) @ g.T + h, rtol=1e-12, atol=1e-12)


def test_the_identity_jacobian_sampler_against_its_closed_form_and_the_exact_one():
    """4000 members of a warm-started sampler with the identity Jacobian below σ = 0.5
    match the closed form of that scheme; what it changes against Algorithm 1's
    guidance (the same steps, the exact Jacobian) is measured here and stated."""
    mu, cov, index, sel, r, y = _problem()
    b = torch.tensor([1.0, -0.5, 0.3, 2.0, 0.0, -1.2, 0.8, 0.4], dtype=D)
    cfg = SamplerConfig(steps=12, start="background", sigma_start=2.0, rho=7.0)
    f_mat, f_vec = _affine_sampler(mu, cov, sel, r, y, cfg, below=0.5)
    mean, covariance = f_mat @ b + f_vec, 4.0 * f_mat @ f_mat.T

    guided = GuidedDenoiser(GaussianDenoiser(mu, cov),
                            joint_log_likelihood([_term(mu, cov, index, sel, r, y)]),
                            identity_jacobian_below=0.5)
    x = EDMSampler(cfg)(guided, (1, 2, 4), member_generators(0, range(N)), dtype=D,
                        start=b.reshape(1, 1, 2, 4)).reshape(N, 8)
    std = covariance.diagonal().sqrt()
    se_mean = std / N**0.5
    se_cov = ((covariance.diagonal()[:, None] * covariance.diagonal()[None]
               + covariance**2) / N).sqrt()
    assert ((x.mean(0) - mean).abs() < 4 * se_mean).all(), (x.mean(0) - mean) / se_mean
    got_cov = torch.cov(x.T)
    assert ((got_cov - covariance).abs() < 4 * se_cov).all(), (got_cov - covariance) / se_cov

    # the affine composition with the exact Jacobian and many steps is the continuous
    # closed form of test_warm_started_ode_sampler_gives_the_closed_form (Heun: O(h²))
    fine = dataclasses.replace(cfg, steps=400)
    e_mat, e_vec = _affine_sampler(mu, cov, sel, r, y, fine, below=0.0)
    precision = torch.linalg.inv(cov) + sel.T @ torch.linalg.solve(r, sel)
    p = torch.linalg.inv(precision)
    m = p @ (torch.linalg.solve(cov, mu) + sel.T @ torch.linalg.solve(r, y))
    shrink = _sym(p, lambda lam: (lam / (lam + 4.0)).sqrt())
    torch.testing.assert_close(e_mat @ b + e_vec, m + shrink @ (b - m), rtol=0, atol=1e-4)
    # against the exact Jacobian on the same 12 steps
    e_mat, e_vec = _affine_sampler(mu, cov, sel, r, y, cfg, below=0.0)
    exact_mean, exact_cov = e_mat @ b + e_vec, 4.0 * e_mat @ e_mat.T

    def shift(below):  # the largest mean difference, in posterior standard deviations
        f_mat, f_vec = _affine_sampler(mu, cov, sel, r, y, cfg, below)
        return float(((f_mat @ b + f_vec - exact_mean).abs()
                      / exact_cov.diagonal().sqrt()).max())

    # each evaluation's guidance is off by σ² (C + σ²)⁻¹, weighted by σ in the drift:
    # the accumulated shift falls like σ_J⁴ (at least 4x per halving of σ_J here), and is
    # no longer small once σ_J² reaches the prior's variances (0.31 .. 5.1 here)
    shifts = [shift(below) for below in (0.5, 0.25, 0.125, 0.0625)]
    assert all(a > 4 * b for a, b in zip(shifts, shifts[1:])), shifts
    assert shift(2.01) > 10 * shifts[0]  # everywhere, from σ_start = 2 on
