"""Algorithm 1 of the paper: stochastic posterior sampler for data fusion.

EDM's stochastic Heun sampler (Karras et al. 2022, Algorithm 2) whose drift is
the posterior drift ``d_pos = (x − D_θ(x; t)) / t − λ_g · t · s_l`` with the
likelihood score ``s_l = ∇_x Σ_k λ_k log p_k(y_k | x)`` of eqs. 13-14, taken
through D_θ by autograd. With no terms it is the unconditional sampler, on the
same code path.

The ensemble is one batch; member m draws all its noise from its own
generator seeded with ``(seed, m)``, so its result does not depend on the batch
size or on the other members (the network has no batch coupling).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch

from dafusion.config import SamplerConfig
from dafusion.prior.base import Denoiser, LikelihoodTerm, check_term, sda_log_likelihood


class SamplingError(FloatingPointError):
    """NaN or infinity during sampling; the message says at which step and where."""


def sigma_steps(cfg: SamplerConfig) -> torch.Tensor:
    """t_0 > ... > t_{N-1} = σ_min, t_N = 0 (Karras et al. eq. 5), float64."""
    n = cfg.steps
    i = torch.arange(n, dtype=torch.float64)
    lo, hi = cfg.sigma_min ** (1 / cfg.rho), cfg.sigma_max ** (1 / cfg.rho)
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


class PosteriorSampler:
    """Algorithm 1. ``sampler(denoiser, shape, generators, terms)`` -> ``(B, C, H, W)``."""

    def __init__(self, cfg: SamplerConfig,
                 callback: Callable[[int, torch.Tensor], None] | None = None):
        self.cfg = cfg
        self.t = sigma_steps(cfg)
        self.callback = callback

    def __call__(self, denoiser: Denoiser, shape: tuple[int, int, int],
                 generators: list[torch.Generator], terms: Sequence[LikelihoodTerm] = (),
                 dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu") -> torch.Tensor:
        cfg, t = self.cfg, self.t
        device = torch.device(device)
        if len(generators) < 1:
            raise ValueError("sampler: no members (one generator per member)")
        for term in terms:
            check_term(term)
        x = _randn(shape, generators, dtype, device) * t[0].item()           # line 3
        for i in range(cfg.steps):                                          # line 4
            t_cur, t_next = t[i].item(), t[i + 1].item()
            churn = cfg.S_tmin <= t_cur <= cfg.S_tmax and cfg.S_churn > 0
            gamma = min(cfg.S_churn / cfg.steps, math.sqrt(2) - 1) if churn else 0.0  # 5
            t_hat = t_cur + gamma * t_cur                                   # line 6
            if gamma > 0:                                                   # lines 7-8
                eps = _randn(shape, generators, dtype, device) * cfg.S_noise
                x = x + math.sqrt(t_hat**2 - t_cur**2) * eps
            d_pred, s_pred = self._drift(denoiser, x, t_hat, terms, None, i, "predictor")
            x_next = x + (t_next - t_hat) * d_pred                          # lines 9-12
            if t_next > 0:                                                  # lines 13-17
                reuse = None if cfg.reevaluate_guidance else s_pred
                d_corr, _ = self._drift(denoiser, x_next, t_next, terms, reuse, i, "corrector")
                x_next = x + (t_next - t_hat) * 0.5 * (d_pred + d_corr)
            x = x_next                                                      # line 19
            _check(x, f"state after step {i}")
            if self.callback is not None:
                self.callback(i, x)
        return x

    def _drift(self, denoiser: Denoiser, x: torch.Tensor, t: float,
               terms: Sequence[LikelihoodTerm], s_given: torch.Tensor | None, step: int,
               stage: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """d_pos = (x − D(x; t)) / t − λ_g t s_l, and s_l (lines 9-11 / 14-16)."""
        sigma = torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)
        guided = bool(terms) and s_given is None
        with torch.enable_grad() if guided else torch.no_grad():
            x_in = x.detach().requires_grad_(guided)
            denoised = denoiser(x_in, sigma)
            _check(denoised, f"denoiser output at step {step} ({stage}, sigma={t:.4g})")
            score = s_given
            if guided:
                log_p = sum(term.weight * _checked_term(term, denoised, sigma, step, stage)
                            for term in terms)
                (score,) = torch.autograd.grad(log_p.sum(), x_in)
                _check(score, f"likelihood gradient at step {step} ({stage})")
        drift = (x - denoised.detach()) / t
        if score is None:
            return drift, None
        guidance = self.cfg.guidance_scale * t * score
        return drift - self._clip(guidance), score

    def _clip(self, guidance: torch.Tensor) -> torch.Tensor:
        """Limit each member's RMS guidance drift to ``guidance_clip`` (0 = off)."""
        if self.cfg.guidance_clip <= 0:
            return guidance
        rms = guidance.pow(2).mean(dim=tuple(range(1, guidance.dim())), keepdim=True).sqrt()
        return guidance * (self.cfg.guidance_clip / rms.clamp_min(self.cfg.guidance_clip))


def _checked_term(term: LikelihoodTerm, denoised: torch.Tensor, sigma: torch.Tensor,
                  step: int, stage: str) -> torch.Tensor:
    log_p = sda_log_likelihood(term, denoised, sigma)
    _check(log_p, f"likelihood term '{term.name}' at step {step} ({stage})")
    return log_p


def _check(value: torch.Tensor, where: str) -> None:
    if not torch.isfinite(value).all():
        bad = (~torch.isfinite(value)).reshape(value.shape[0], -1).any(dim=1)
        members = torch.nonzero(bad).flatten().tolist()
        raise SamplingError(f"non-finite {where}, members {members}")
