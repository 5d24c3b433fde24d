"""The EDM prior: preconditioning identities, padding, and Algorithm 1 against
closed-form Gaussian answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dafusion.config import NetworkConfig, SamplerConfig
from dafusion.obs.base import sda_log_likelihood
from dafusion.prior.edm import EDMDenoiser, edm_loss, preconditioning
from dafusion.prior.network import SongUNet, SphereConv2d
from dafusion.prior.sampler import EDMSampler, SamplingError, member_generators, sigma_steps
from fakes import GaussianDenoiser, LinearObs, sample

TINY = NetworkConfig(base_channels=8, channel_mult=[1, 2], blocks_per_level=1,
                     attention_resolutions=[[4, 8]], dropout=0.0)


def _randomise(module: torch.nn.Module, seed: int = 0) -> None:
    """Give every parameter (the zero-initialised ones included) random values."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)


# ----------------------------------------------------------------- (c) preconditioning


def test_preconditioning_identities():
    sigma = torch.logspace(-4, 2, 50, dtype=torch.float64)
    for sd in (0.5, 1.0, 2.0):
        c_skip, c_out, c_in, c_noise = preconditioning(sigma, sd)
        torch.testing.assert_close(c_skip + (c_out / sd) ** 2, torch.ones_like(sigma))
        torch.testing.assert_close(c_in**2 * (sigma**2 + sd**2), torch.ones_like(sigma))
        torch.testing.assert_close(c_noise, sigma.log() / 4)
        # σ -> 0: c_skip -> 1 and c_out ~ σ -> 0, so D(x; σ) -> x
        assert 1 - c_skip[0] < 1e-6 and c_out[0] == pytest.approx(sigma[0].item(), rel=1e-6)


def test_denoiser_tends_to_identity_as_sigma_vanishes():
    net = SongUNet(3, (8, 16), TINY)
    _randomise(net)
    denoiser = EDMDenoiser(net, sigma_data=1.0).double()
    x = torch.randn(2, 3, 8, 16, dtype=torch.float64)
    for sigma, tol in ((1e-3, 1e-2), (1e-6, 1e-5)):
        assert (denoiser(x, torch.full((2,), sigma)) - x).abs().max() < tol


def test_untrained_network_is_the_exact_gaussian_denoiser():
    """The output convolution starts at zero, so D = c_skip x: the exact
    denoiser of N(0, σ_d² I) data."""
    denoiser = EDMDenoiser(SongUNet(3, (8, 16), TINY), sigma_data=0.7)
    x, sigma = torch.randn(4, 3, 8, 16), torch.tensor([0.1, 0.5, 2.0, 30.0])
    expected = 0.49 / (0.49 + sigma**2)
    torch.testing.assert_close(denoiser(x, sigma), expected.reshape(-1, 1, 1, 1) * x)


def test_edm_loss_matches_its_definition():
    denoiser = EDMDenoiser(SongUNet(2, (8, 16), TINY), sigma_data=1.0)
    x0 = torch.randn(3, 2, 8, 16)
    loss = edm_loss(denoiser, x0, -0.5, 1.5, torch.Generator().manual_seed(1))
    gen = torch.Generator().manual_seed(1)
    sigma = (torch.randn(3, generator=gen) * 1.5 - 0.5).exp()
    noise = torch.randn(x0.shape, generator=gen)
    # untrained: D = x / (1 + σ²), so the weighted error is analytic
    err = x0 - (x0 + sigma.reshape(-1, 1, 1, 1) * noise) / (1 + sigma.reshape(-1, 1, 1, 1) ** 2)
    weight = (sigma**2 + 1) / sigma**2
    assert loss.item() == pytest.approx((weight.reshape(-1, 1, 1, 1) * err**2).mean().item(),
                                        rel=1e-5)


# ----------------------------------------------------------------- (d) padding


def test_convolution_pads_circularly_in_longitude_and_with_zeros_in_latitude():
    conv = SphereConv2d(1, 1, 3)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.zero_()
    x = torch.randn(1, 1, 6, 10)
    out = conv(x)
    shifted = conv(torch.roll(x, 1, dims=-1))
    torch.testing.assert_close(shifted, torch.roll(out, 1, dims=-1))
    # first row: zero padding above, so only two rows contribute
    expected = sum(torch.roll(x[0, 0, :2], s, dims=-1).sum(0) for s in (-1, 0, 1))
    torch.testing.assert_close(out[0, 0, 0], expected)


def test_network_is_equivariant_to_longitude_shifts():
    """Exactly equivariant for shifts by multiples of the coarsest pooling
    factor (2 here: one down-sampling), which avg-pooling requires."""
    net = SongUNet(2, (8, 16), TINY).double().eval()
    _randomise(net)
    x = torch.randn(1, 2, 8, 16, dtype=torch.float64)
    label = torch.tensor([0.3], dtype=torch.float64)
    torch.testing.assert_close(net(torch.roll(x, 2, dims=-1), label),
                               torch.roll(net(x, label), 2, dims=-1))
    flipped = net(torch.flip(x, dims=[-2]), label)  # latitude is not periodic: no symmetry
    assert not torch.allclose(flipped, torch.flip(net(x, label), dims=[-2]))


# ----------------------------------------------------------------- Algorithm 1


def _gaussian_prior(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(8, 8, generator=gen, dtype=torch.float64) * 0.4
    return torch.linspace(-1, 1, 8, dtype=torch.float64), a @ a.T + 0.3 * torch.eye(8,
                                                                                   dtype=torch.float64)


def _sample(denoiser, n, terms=(), **cfg_kwargs):
    cfg = SamplerConfig(**{"steps": 40, "sigma_max": 40.0, **cfg_kwargs})
    gens = member_generators(0, range(n))
    x = sample(cfg, denoiser, (1, 2, 4), gens, terms, dtype=torch.float64)
    return x.reshape(n, -1)


def _moments(x):
    mean = x.mean(0)
    return mean, (x - mean).T @ (x - mean) / (x.shape[0] - 1)


N_MEMBERS = 2000
DISCRETISATION = 0.02  # allowance for the 40-step Heun discretisation


def assert_moments(x, mu, cov):
    """Sample mean and covariance within 4 standard errors (+ discretisation) of
    the exact ones: se(mean_i) = sqrt(Σ_ii / n), se(cov_ij) = sqrt((Σ_ii Σ_jj + Σ_ij²) / n)."""
    n = x.shape[0]
    mean, sample_cov = _moments(x)
    var = torch.diagonal(cov)
    se_mean = (var / n).sqrt()
    se_cov = ((var[:, None] * var[None, :] + cov**2) / n).sqrt()
    assert torch.all((mean - mu).abs() < 4 * se_mean + DISCRETISATION), (mean, mu)
    assert torch.all((sample_cov - cov).abs() < 4 * se_cov + DISCRETISATION), (sample_cov, cov)


def test_a_sampler_reproduces_a_gaussian_prior():
    mu, cov = _gaussian_prior()
    assert_moments(_sample(GaussianDenoiser(mu, cov), N_MEMBERS), mu, cov)


def test_a_churn_keeps_the_prior():
    """Churn (γ = 0.125 here) re-noises and must not change the target."""
    mu, cov = _gaussian_prior()
    x = _sample(GaussianDenoiser(mu, cov), N_MEMBERS, S_churn=5.0, S_tmin=0.05, S_tmax=10.0)
    assert_moments(x, mu, cov)


def _posterior(mu, cov, index, y, sigma_y):
    a = torch.zeros(index.numel(), mu.numel(), dtype=mu.dtype)
    a[torch.arange(index.numel()), index] = 1.0
    precision = torch.linalg.inv(cov) + a.T @ a / sigma_y
    post_cov = torch.linalg.inv(precision)
    return post_cov @ (torch.linalg.solve(cov, mu) + a.T @ y / sigma_y), post_cov, a


def _block_prior():
    """N(μ, Σ) with Σ block-diagonal in pairs (0,1) (2,3) (4,5) (6,7): each observed point
    below is correlated with its unobserved partner only, so A Cov[x_0 | x_σ] Aᵀ is
    diagonal for every σ and the diagonal Γ̂(σ) of eq. 13 is exact."""
    cov = torch.zeros(8, 8, dtype=torch.float64)
    for k, (v, c) in enumerate([(1.0, 0.6), (0.5, -0.3), (2.0, 1.2), (0.8, 0.5)]):
        cov[2 * k: 2 * k + 2, 2 * k: 2 * k + 2] = torch.tensor([[v, c], [c, v]])
    return torch.linspace(-1, 1, 8, dtype=torch.float64), cov


def test_b_guided_sampler_reaches_the_exact_posterior_with_the_exact_gamma():
    """With Γ̂(σ) = A Cov[x_0 | x_σ] Aᵀ / σ² (diagonal here, see ``_block_prior``) the
    SDA likelihood is exact for a Gaussian prior and a linear operator, so Algorithm 1
    must reproduce the closed-form posterior, unobserved partners included."""
    mu, cov = _block_prior()
    index = torch.tensor([1, 4, 6])
    y, sigma_y = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64), 0.1
    post_mu, post_cov, a = _posterior(mu, cov, index, y, sigma_y)
    eye = torch.eye(8, dtype=torch.float64)

    def exact_gamma(sigma):  # (B,) -> (B, 3)
        rows = [a @ (cov - cov @ torch.linalg.solve(cov + s**2 * eye, cov)) @ a.T / s**2
                for s in sigma]
        assert all(torch.count_nonzero(r - torch.diag(torch.diagonal(r))) == 0 for r in rows)
        return torch.stack([torch.diagonal(r) for r in rows])

    term = LinearObs("linear", y, sigma_y, exact_gamma, 1.0, index)
    assert_moments(_sample(GaussianDenoiser(mu, cov), N_MEMBERS, [term]), post_mu, post_cov)


@pytest.mark.parametrize("gamma, mean_error, var_ratio", [
    (1.0, (0.15, 0.35), (1.8, 2.5)),   # too much inflation: under-fits, over-dispersed
    (0.3, (0.0, 0.06), (0.15, 0.35)),  # close mean, under-dispersed
    (0.01, (0.05, 0.25), (0.0, 0.02)),  # DPS-like: over-fits, collapses
])
def test_b_constant_gamma_is_an_approximation(gamma, mean_error, var_ratio):
    """The paper's constant Γ̂ is not exact: for N(0, I), three points observed
    with Σ_y = 0.05 (posterior mean 0.952 y, variance 0.0476), these are the
    measured ranges (relative mean error, variance / exact variance). No
    constant Γ̂ gets both right; Γ̂(σ) above does. Unobserved points keep the
    prior in every case."""
    mu, cov = torch.zeros(8, dtype=torch.float64), torch.eye(8, dtype=torch.float64)
    index = torch.tensor([0, 3, 5])
    y, sigma_y = torch.tensor([1.0, -1.5, 0.5], dtype=torch.float64), 0.05
    post_mu, post_cov, _ = _posterior(mu, cov, index, y, sigma_y)
    term = LinearObs("linear", y, sigma_y, gamma, 1.0, index)
    mean, sample_cov = _moments(_sample(GaussianDenoiser(mu, cov), N_MEMBERS, [term]))
    rel = ((mean[index] - post_mu[index]).abs() / post_mu[index].abs()).max().item()
    ratio = (torch.diagonal(sample_cov)[index] / torch.diagonal(post_cov)[index]).mean().item()
    assert mean_error[0] <= rel <= mean_error[1]
    assert var_ratio[0] <= ratio <= var_ratio[1]
    unobserved = [1, 2, 4, 6, 7]
    assert_moments(_sample(GaussianDenoiser(mu, cov), N_MEMBERS, [term])[:, unobserved],
                   mu[unobserved], cov[unobserved][:, unobserved])


def test_members_do_not_depend_on_the_batch():
    denoiser = EDMDenoiser(SongUNet(2, (8, 16), TINY), 1.0).eval()
    _randomise(denoiser.net)
    cfg = SamplerConfig(steps=6, S_churn=5.0)
    sampler = EDMSampler(cfg)
    all4 = sampler(denoiser, (2, 8, 16), member_generators(3, range(4)))
    just2 = sampler(denoiser, (2, 8, 16), member_generators(3, [2]))
    torch.testing.assert_close(just2[0], all4[2], rtol=1e-4, atol=1e-5)
    other_seed = sampler(denoiser, (2, 8, 16), member_generators(4, [2]))
    assert not torch.allclose(other_seed[0], all4[2])


def test_schedule():
    t = sigma_steps(SamplerConfig(steps=5, sigma_min=0.01, sigma_max=10.0, rho=7.0))
    assert t[0] == pytest.approx(10.0) and t[4] == pytest.approx(0.01) and t[5] == 0
    assert torch.all(torch.diff(t) < 0)


def test_sda_log_likelihood_formula():
    term = LinearObs("t", torch.tensor([1.0, 2.0]), 0.5, 0.25, 1.0, torch.tensor([0, 1]))
    x0 = torch.tensor([[0.0, 0.0, 9.0], [1.0, 1.0, 9.0]])
    ll = sda_log_likelihood(term, x0, torch.tensor([2.0, 0.0]))
    torch.testing.assert_close(ll, torch.tensor([-0.5 * (1 + 4) / 1.5, -0.5 * (0 + 1) / 0.5]))


@pytest.mark.parametrize("kwargs, message", [
    ({"sigma_y": 0.0}, "Σ_y must be > 0"),
    ({"gamma": -1.0}, "Γ must be >= 0"),
    ({"weight": -1.0}, "weight λ must be >= 0"),
    ({"y": torch.tensor([np.nan, 0.0, 0.0])}, "observations contain NaN"),
])
def test_bad_terms_are_refused(kwargs, message):
    args = {"name": "bad", "y": torch.zeros(3), "sigma_y": 0.1, "gamma": 0.1, "weight": 1.0,
            "index": torch.tensor([0, 1, 2]), **kwargs}
    with pytest.raises(ValueError, match=f"likelihood term 'bad': {message}"):
        LinearObs(**args)  # refused at construction, before any sampling


def test_nan_during_sampling_names_step_and_term():
    mu, cov = _gaussian_prior()

    class Exploding(LinearObs):
        def operator(self, x):
            return super().operator(x) * float("inf")

    term = Exploding("radiosonde", torch.zeros(3, dtype=torch.float64), 0.1, 0.1, 1.0,
                     torch.tensor([0, 1, 2]))
    with pytest.raises(SamplingError, match=r"non-finite likelihood term 'radiosonde' at "
                                            r"sigma=40 \(step 0, predictor\)"):
        _sample(GaussianDenoiser(mu, cov), 2, [term], steps=3)

    def broken(x, sigma):
        return x * float("nan")

    with pytest.raises(SamplingError, match="non-finite denoiser output at step 0"):
        _sample(broken, 2, steps=3)


def test_the_papers_network_is_expressible_in_a_config():
    """configs/prior_paper_era5.yaml builds the paper's SongUNet for 128x256x13
    (on the meta device: no memory is allocated)."""
    from pathlib import Path

    from dafusion.config import load_config

    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "prior_paper_era5.yaml")
    net_cfg = cfg.prior.network
    assert (net_cfg.base_channels, net_cfg.channel_mult, net_cfg.blocks_per_level,
            net_cfg.dropout) == (64, [1, 2, 4, 8, 16], 4, 0.1)
    with torch.device("meta"):
        net = SongUNet(len(cfg.data.channels), (128, 256), net_cfg)
    assert len(cfg.data.channels) == 13
    assert net.attention_at == {(32, 64), (16, 32), (8, 16)}
    assert sum(p.numel() for p in net.parameters()) > 100e6
    demo = load_config(None).prior.network
    with torch.device("meta"):
        small = SongUNet(9, (32, 64), demo)
    assert small.attention_at == {(8, 16)}
