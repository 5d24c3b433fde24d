"""Interfaces of the prior layer.

The analysis is a posterior sample: an unconditional EDM prior guided by a list
of likelihood terms (paper eqs. 13-14). Everything here is in normalised units
(the normaliser converted observations and error variances once).
"""

from __future__ import annotations

from typing import Callable, Protocol, Union

import torch

Gamma = Union[float, torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]


class Denoiser(Protocol):
    """D_θ(x; σ): ``x (B, C, H, W)`` noisy normalised state, ``sigma (B,)`` -> the
    denoised estimate of x_0, same shape as ``x``."""

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor: ...


class LikelihoodTerm(Protocol):
    """One observation source of the guidance (eq. 13), in normalised units.

    ``y``: observations, shape ``obs_shape`` or ``(B, *obs_shape)`` (per member).
    ``sigma_y``: observation error variance Σ_y, broadcastable to ``y``.
    ``gamma``: Γ̂ of eq. 13, broadcastable to ``y``; a constant as in the paper,
    or a function of σ ``(B,) -> broadcastable`` (exact for Gaussian priors).
    ``weight``: λ_k, the term's weight in the sum (eq. 14).
    ``operator(x)``: the differentiable M_k, ``(B, C, H, W) -> (B, *obs_shape)``.
    """

    name: str
    y: torch.Tensor
    sigma_y: float | torch.Tensor
    gamma: Gamma
    weight: float

    def operator(self, x: torch.Tensor) -> torch.Tensor: ...


def sda_log_likelihood(term: LikelihoodTerm, x0: torch.Tensor,
                       sigma: torch.Tensor) -> torch.Tensor:
    """log N(y | M(x̂_0), Σ_y + σ² Γ̂) up to a constant, per member: ``(B,)``.

    Eq. (13): −½ ‖y − M(D_θ(x; σ))‖² / (Σ_y + σ² Γ̂). The paper writes the score
    "∝" this quantity; we keep the Gaussian ½, so that with λ_g = 1 and an exact
    Γ̂ the guided sampler targets the exact Bayesian posterior.
    """
    pred = term.operator(x0)
    s2 = (sigma**2).reshape((-1,) + (1,) * (pred.dim() - 1))
    gamma = term.gamma(sigma) if callable(term.gamma) else term.gamma
    variance = term.sigma_y + s2 * gamma
    misfit = (term.y - pred) ** 2 / variance
    return -0.5 * misfit.reshape(misfit.shape[0], -1).sum(dim=1)


def check_term(term: LikelihoodTerm) -> None:
    """Raise ValueError naming the term if Σ_y <= 0, Γ < 0, λ < 0 or y is not finite."""
    sigma_y = torch.as_tensor(term.sigma_y)
    if not bool((sigma_y > 0).all()):
        raise ValueError(f"likelihood term '{term.name}': Σ_y must be > 0 "
                         f"(min {sigma_y.min().item():g})")
    if not callable(term.gamma) and not bool((torch.as_tensor(term.gamma) >= 0).all()):
        raise ValueError(f"likelihood term '{term.name}': Γ must be >= 0")
    if not term.weight >= 0:
        raise ValueError(f"likelihood term '{term.name}': weight λ must be >= 0, "
                         f"got {term.weight}")
    if not bool(torch.isfinite(term.y).all()):
        raise ValueError(f"likelihood term '{term.name}': observations contain NaN/inf")
