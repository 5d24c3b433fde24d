"""Zero-shot likelihood guidance as a denoiser (paper eqs. 13-14, Algorithm 1).

Algorithm 1 moves along the posterior drift
``d = (x − D(x; σ)) / σ − λ_g σ s``, with the likelihood score
``s = ∇ₓ log p(y | x_σ) ≈ ∇ₓ Σ_k λ_k log N(y_k | M_k(D(x; σ)), Σ_y,k + σ² Γ̂_k)``
taken through D by autograd. Since ``d = (x − [D + σ · λ_g σ s]) / σ``, the
guidance is exactly a denoiser

    D̃(x; σ) = D(x; σ) + σ · clip(λ_g σ s)

and the sampler is EDM's stochastic sampler run on D̃. For a Gaussian prior and a
linear operator with the exact (full-matrix) Γ̂(σ) = A Cov[x₀ | x_σ] Aᵀ / σ², D̃ is
exactly E[x₀ | x_σ, y] (Tweedie's formula applied to the posterior); with the
diagonal Γ̂ of ``obs.base.sda_log_likelihood`` it is exact only when the observed
values are uncorrelated given x_σ (see ``tests/test_guidance.py``).

``clip`` caps each member's RMS guidance drift ``λ_g σ s`` at ``guidance_clip``
(0 = off): the paper's "gradient clipping", made a per-member RMS cap here.

``bound`` (``prior.sampler.guidance_bound``) never lets the guidance step
δ = σ · λ_g σ s increase the misfit it descends: along δ the weighted misfit
−Σ_k λ_k log p_k(D + α δ) is a parabola in α (linear operators), with its minimum
at α* = b / a (b and a from the log-likelihood at α = −1, 0, 1) and back at its
starting value at 2 α*; the step is scaled by min(1, max(2 α*, 0)). For a
Gaussian prior with the exact Γ̂ the step is a Kalman update whose gain is below
1, so α* >= 1 and the bound changes nothing (``tests/test_guidance.py``); with a
network whose Jacobian disagrees with Γ̂ (at large σ, or with strong, correlated
observations) it stops the growing oscillation that makes a stiff guidance
diverge. (Stopping at α* itself was measured too: it also prevents divergence
but makes the first analysis 15 % worse in z500.) Two extra likelihood
evaluations, no network.

``identity_jacobian_below`` (σ_J, ``prior.sampler.identity_jacobian_below``) takes
the likelihood gradient at the denoised state, ``s = ∇_x̂ log p(y | x̂)`` at
x̂ = D(x; σ), for σ < σ_J: the network's Jacobian ∂D/∂x is taken as I, so the
evaluation is one forward pass, without the backward that costs as much again.
Tweedie's formula gives ∂D/∂x = Cov[x₀ | x_σ] / σ², which tends to I as σ → 0;
for a Gaussian prior N(μ, C) it is C (C + σ² I)⁻¹, so the guidance step is wrong by
the factor σ² / (λ + σ²) in an eigen-direction of prior variance λ: small where the
noise is far below the field's variance at the observed scales. The closed form of
the resulting sampler is in ``tests/test_warm_start.py``; what it costs in skill,
``docs/speed.md``. (Reusing the predictor's gradient in the corrector instead, which
saves the same backward passes, was measured too: 5-11 % worse RMSE on the demo.)
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from dafusion.prior.base import Denoiser

LogLikelihood = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x̂₀, σ) -> (B,)


class GuidedDenoiser:
    """D̃(x; σ) = D(x; σ) + σ · clip(λ_g σ ∇ₓ log p(y | D(x; σ))); see the module docstring.

    ``log_likelihood(x0, sigma)``: ``(B, C, H, W), (B,) -> (B,)``, e.g.
    ``obs.base.joint_log_likelihood(terms)``; ``scale``: λ_g; ``clip``: RMS cap (0 = off);
    ``bound``: never overshoot the observations along the step;
    ``identity_jacobian_below``: σ below which ∂D/∂x is taken as I (no backward pass).
    """

    def __init__(self, denoiser: Denoiser, log_likelihood: LogLikelihood, *,
                 scale: float = 1.0, clip: float = 0.0, bound: bool = False,
                 identity_jacobian_below: float = 0.0, micro_batch: int = 0,
                 split: Callable[[int, int], LogLikelihood] | None = None):
        self.denoiser, self.log_likelihood = denoiser, log_likelihood
        self.scale, self.clip, self.bound = scale, clip, bound
        self.identity_jacobian_below = identity_jacobian_below
        self.micro_batch, self.split = micro_batch, split

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """The whole batch at once, or ``micro_batch`` members at a time (the network's
        activations for the gradient are held for one chunk only; ``split(a, b)`` gives
        the log-likelihood of members a..b-1, e.g. per-member pseudo-observations)."""
        if not self.micro_batch or x.shape[0] <= self.micro_batch:
            return self._guided(x, sigma, self.log_likelihood)
        if self.split is None:
            raise ValueError("micro-batched guidance needs split(start, stop)")
        chunks = [(a, min(a + self.micro_batch, x.shape[0]))
                  for a in range(0, x.shape[0], self.micro_batch)]
        return torch.cat([self._guided(x[a:b], sigma[a:b], self.split(a, b))
                          for a, b in chunks])

    def _guided(self, x: torch.Tensor, sigma: torch.Tensor,
                log_likelihood: LogLikelihood) -> torch.Tensor:
        with torch.enable_grad():
            if self.through_network(sigma):  # s = ∇_x log p(y | D(x; σ)), Algorithm 1
                wrt = x.detach().requires_grad_(True)
                denoised = self.denoiser(wrt, sigma)
            else:  # ∂D/∂x = I: s = ∇_x̂ log p(y | x̂) at x̂ = D(x; σ), no backward pass
                with torch.no_grad():
                    denoised = self.denoiser(x, sigma)
                wrt = denoised = denoised.detach().requires_grad_(True)
            log_p = log_likelihood(denoised, sigma)
            (score,) = torch.autograd.grad(log_p.sum(), wrt)
        if not bool(torch.isfinite(score).all()):
            raise FloatingPointError(f"non-finite likelihood gradient at "
                                     f"sigma={float(sigma.max()):.4g}")
        s = sigma.reshape((-1,) + (1,) * (x.dim() - 1)).to(x.dtype)
        step = s * self._clipped(self.scale * s * score)
        denoised = denoised.detach()
        if self.bound:
            step = step * self.step_fraction(denoised, step, sigma, log_p.detach(),
                                             log_likelihood)
        return denoised + step

    def through_network(self, sigma: torch.Tensor) -> bool:
        """Whether the likelihood gradient at ``sigma`` goes back through the network."""
        return float(sigma.max()) >= self.identity_jacobian_below

    def step_fraction(self, denoised: torch.Tensor, step: torch.Tensor, sigma: torch.Tensor,
                      log_p: torch.Tensor, log_likelihood: LogLikelihood | None = None
                      ) -> torch.Tensor:
        """min(1, max(2 α*, 0)) per member: α* is the minimum of the misfit along ``step``,
        2 α* the step at which the misfit is back at its value at α = 0."""
        log_likelihood = log_likelihood or self.log_likelihood
        with torch.no_grad():
            up = log_likelihood(denoised + step, sigma)
            down = log_likelihood(denoised - step, sigma)
        curvature, slope = 2 * log_p - up - down, (up - down) / 2  # a and b
        alpha = torch.where(curvature > 0, slope / curvature.clamp_min(1e-300),
                            torch.ones_like(slope))
        return (2 * alpha).clamp(0.0, 1.0).reshape((-1,) + (1,) * (step.dim() - 1)).to(step.dtype)

    def _clipped(self, guidance: torch.Tensor) -> torch.Tensor:
        """Limit each member's RMS guidance drift to ``clip`` (0 = off)."""
        if self.clip <= 0:
            return guidance
        rms = guidance.pow(2).mean(dim=tuple(range(1, guidance.dim())), keepdim=True).sqrt()
        return guidance * (self.clip / rms.clamp_min(self.clip))
