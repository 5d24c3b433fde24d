"""EDM's stochastic Heun sampler (Karras et al. 2022, Algorithm 2) — Algorithm 1 of the
paper when its denoiser is ``guidance.GuidedDenoiser``.

The line numbers in the comments are Algorithm 1's. With the plain denoiser it is
the unconditional sampler; with the guided one the drift ``(x − D̃(x; t)) / t`` is
the paper's posterior drift ``(x − D(x; t)) / t − λ_g t s`` (eqs. 13-14).

A warm start (``prior.sampler.start = background``) replaces line 3's x_0 = σ_max ε
by x_0 = b + σ_start ε, b the member's background, and runs the same loop on a
schedule from σ_start: an SDEdit-like start (Meng et al. 2022; DAISI starts from the
forecast too). What it samples, for a Gaussian prior and linear observations
(``tests/test_warm_start.py``): with S_churn = 0 the probability-flow ODE of the
posterior p(x | y) = N(m, P) is linear, x = m + A (x_0 − m) with
A = P^½ (P + σ_start² I)^-½, so the members are N(m + A (b − m), σ_start² P (P +
σ_start² I)^-1). Their covariance is that of the posterior that also takes b as an
observation with error variance σ_start², whose mean is m + K (b − m) with
K = P (P + σ_start² I)^-1 = A²: the warm start pulls the mean towards b by A, not
K (A ≥ K in every eigen-direction). It is exact only in the limit σ_start → ∞
(Algorithm 1's start), where A → 0.

The ensemble is one batch; member m draws all its noise from its own
generator seeded with ``(seed, m)``, so its result does not depend on the batch
size or on the other members (the network has no batch coupling).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from dafusion.config import SamplerConfig
from dafusion.normalise import Normaliser
from dafusion.prior.base import Denoiser


class SamplingError(FloatingPointError):
    """NaN or infinity during sampling; the message says at which step and where."""


def sigma_steps(cfg: SamplerConfig) -> torch.Tensor:
    """t_0 > ... > t_{N-1} = σ_min, t_N = 0 (Karras et al. eq. 5), float64; t_0 is
    σ_max, or σ_start for a warm start (``cfg.start == "background"``)."""
    n = cfg.steps
    i = torch.arange(n, dtype=torch.float64)
    top = cfg.sigma_start if cfg.start == "background" else cfg.sigma_max
    lo, hi = cfg.sigma_min ** (1 / cfg.rho), top ** (1 / cfg.rho)
    t = (hi + i / max(n - 1, 1) * (lo - hi)) ** cfg.rho
    return torch.cat([t, torch.zeros(1, dtype=torch.float64)])


def member_seeds(seed: int, members: Sequence[int]) -> list[int]:
    """The torch seed of each member's generator, from (seed, member index)."""
    return [int(np.random.SeedSequence([int(seed), int(m)]).generate_state(1, np.uint64)[0])
            % 2**63 for m in members]


def member_generators(seed: int, members: Sequence[int], device: torch.device | str = "cpu"
                      ) -> list[torch.Generator]:
    """One generator per member, seeded with :func:`member_seeds`."""
    return [torch.Generator(device=device).manual_seed(s) for s in member_seeds(seed, members)]


def _randn(shape: tuple[int, ...], gens: list[torch.Generator], dtype: torch.dtype,
           device: torch.device) -> torch.Tensor:
    return torch.stack([torch.randn(shape, generator=g, dtype=dtype, device=device)
                        for g in gens])


class EDMSampler:
    """EDM's stochastic sampler: ``sampler(denoiser, shape, generators)`` -> ``(B, C, H, W)``.

    Guidance enters through the denoiser (``guidance.GuidedDenoiser``), which is
    Algorithm 1 of the paper exactly; the sampler has no guidance options.
    """

    def __init__(self, cfg: SamplerConfig,
                 callback: Callable[[int, torch.Tensor], None] | None = None):
        self.cfg = cfg
        self.t = sigma_steps(cfg)
        self.callback = callback

    def __call__(self, denoiser: Denoiser, shape: tuple[int, int, int],
                 generators: list[torch.Generator], dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu",
                 start: torch.Tensor | None = None) -> torch.Tensor:
        """``start (B, C, H, W)`` or ``(1, C, H, W)``: the warm start's backgrounds b
        (normalised; needed when ``cfg.start == "background"``): x_0 = b + t_0 ε."""
        cfg, t = self.cfg, self.t
        device = torch.device(device)
        if len(generators) < 1:
            raise ValueError("sampler: no members (one generator per member)")
        if (start is not None) != (cfg.start == "background"):
            raise ValueError(f"sampler: prior.sampler.start is {cfg.start!r}, "
                             f"{'but no' if start is None else 'but a'} background was given")
        x = _randn(shape, generators, dtype, device) * t[0].item()           # line 3
        if start is not None:  # the warm start: the background noised to σ_start
            x = start.to(dtype=dtype, device=device) + x
        for i in range(cfg.steps):                                          # line 4
            t_cur, t_next = t[i].item(), t[i + 1].item()
            churn = cfg.S_tmin <= t_cur <= cfg.S_tmax and cfg.S_churn > 0
            gamma = min(cfg.S_churn / cfg.steps, math.sqrt(2) - 1) if churn else 0.0  # 5
            t_hat = t_cur + gamma * t_cur                                   # line 6
            if gamma > 0:                                                   # lines 7-8
                eps = _randn(shape, generators, dtype, device) * cfg.S_noise
                x = x + math.sqrt(t_hat**2 - t_cur**2) * eps
            d_cur = self._drift(denoiser, x, t_hat, i, "predictor")
            x_next = x + (t_next - t_hat) * d_cur                           # lines 9-12
            if t_next > 0:                                                  # lines 13-17
                d_next = self._drift(denoiser, x_next, t_next, i, "corrector")
                x_next = x + (t_next - t_hat) * 0.5 * (d_cur + d_next)
            x = x_next                                                      # line 19
            _check(x, f"state after step {i}")
            if self.callback is not None:
                self.callback(i, x)
        return x

    @staticmethod
    def _drift(denoiser: Denoiser, x: torch.Tensor, t: float, step: int,
               stage: str) -> torch.Tensor:
        """d = (x − D(x; t)) / t (lines 9-11 / 14-16; D may be guided)."""
        sigma = torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)
        with torch.no_grad():
            try:
                denoised = denoiser(x, sigma)
            except FloatingPointError as err:
                raise SamplingError(f"{err} (step {step}, {stage})") from None
        _check(denoised, f"denoiser output at step {step} ({stage}, sigma={t:.4g})")
        return (x - denoised) / t


def _check(value: torch.Tensor, where: str) -> None:
    if not torch.isfinite(value).all():
        bad = (~torch.isfinite(value)).reshape(value.shape[0], -1).any(dim=1)
        members = torch.nonzero(bad).flatten().tolist()
        raise SamplingError(f"non-finite {where}, members {members}")


def unconditional_samples(denoiser: Denoiser, normaliser: Normaliser, shape: tuple[int, int, int],
                          cfg: SamplerConfig, members: int, seed: int = 0,
                          device: torch.device | str = "cpu",
                          progress: Callable[..., Any] | None = None) -> np.ndarray:
    """``members`` unconditional samples ``(M, C, H, W)`` in physical units (float64)."""
    from dafusion.progress import null_progress

    with (progress or null_progress)(cfg.steps, "sampling") as bar:
        sampler = EDMSampler(cfg, callback=lambda i, x: bar.update(1))
        x = sampler(denoiser, shape, member_generators(seed, range(members), device),
                    device=device)
    return normaliser.denormalise(x.detach().cpu().numpy().astype(np.float64))
