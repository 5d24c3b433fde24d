"""The likelihood-term contract: what an observation source is (paper eqs. 13-14).

An observation source *is* a likelihood term, in normalised units (the
normaliser converted its observations and error variances once):

* ``name``; ``y``: observations, ``obs_shape`` or ``(B, *obs_shape)`` per member;
* ``sigma_y``: Σ_y, the observation error variance, broadcastable to ``y``;
* ``gamma``: Γ̂ of eq. 13, broadcastable to ``y``: a constant as in the paper, or a
  function of σ ``(B,) -> broadcastable``;
* ``weight``: λ_k, the term's weight in the sum of eq. 14;
* ``covariance``: None (independent errors: ``sigma_y`` and ``gamma`` are the whole
  error model) or an object whose ``mahalanobis(residual, sigma)`` is
  rᵀ (Σ_y + σ² Γ̂)⁻¹ r with correlations (``obs.covariance``: dense, spectral); then
  ``sigma_y`` and ``gamma`` are its diagonal, for diagnostics and the background check;
* ``operator(x)``: the differentiable M_k, ``(B, C, H, W) -> (B, *obs_shape)``;
* ``diagnostics()``: ``{"source", "used", "rejected": {reason: count}, ...}``;
* ``locations()``: ``(lat, lon, channel index)`` of every value of ``y`` (flattened,
  one member's), or None for a term whose values have no place (an integral, say):
  the classical methods (``dafusion.baselines``) localise with it and refuse None,
  the adaptive emulator error reads the stations' channels from it;
* ``pseudo_observation``: True when ``y`` is itself the background (the emulator
  forecast), which has no O−B; False for observations.

Every term declares all of these (nothing is optional, nothing is looked up by name).

A source checks itself once, at construction, with :func:`validate_term`; its
settings come from the configuration only (``run.sources``). The guidance is
:func:`joint_log_likelihood` of the enabled sources, handed to
``dafusion.prior.guidance.GuidedDenoiser``. A new observation type is one new
file in ``obs/`` with a class that has these attributes (no base class).

Sources: ``stations.StationObs`` (radiosondes, IGRA2, synthetic),
``gridded.GriddedObs`` (coarse fields, the paper's LR), ``forecast.ForecastObs``
(the emulator forecast as a pseudo-observation); ``qc.background_check`` keeps
any of them minus the observations that fail the check.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Sequence
from typing import Protocol, Union

import numpy as np
import torch

Gamma = Union[float, torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]
Locations = tuple[np.ndarray, np.ndarray, np.ndarray]  # lat (°N), lon (°E), channel index


class Covariance(Protocol):
    """Σ_y + σ² Γ̂(σ) with correlations; see ``obs.covariance``."""

    def mahalanobis(self, residual: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor: ...


class LikelihoodTerm(Protocol):
    """One observation source of the guidance; see the module docstring."""

    name: str
    y: torch.Tensor
    sigma_y: float | torch.Tensor
    gamma: Gamma
    weight: float
    covariance: Covariance | None
    pseudo_observation: bool

    def operator(self, x: torch.Tensor) -> torch.Tensor: ...

    def diagnostics(self) -> dict[str, object]: ...

    def locations(self) -> Locations | None: ...


def sda_log_likelihood(term: LikelihoodTerm, x0: torch.Tensor,
                       sigma: torch.Tensor) -> torch.Tensor:
    """log N(y | M(x̂_0), Σ_y + σ² Γ̂) up to a constant, per member: ``(B,)``.

    Eq. (13): −½ rᵀ (Σ_y + σ² Γ̂)⁻¹ r with r = y − M(D_θ(x; σ)): through the term's
    ``covariance`` when it has one, else every value independent (diagonal Σ_y
    and Γ̂). The paper writes the score "∝" this quantity; we keep the Gaussian ½,
    so that with λ_g = 1 and an exact Γ̂ the guidance is exact (the paper's code
    may omit it: ``prior.sampler.guidance_scale = 2`` is that convention).
    """
    pred = term.operator(x0)
    if term.covariance is not None:
        residual = (term.y - pred).reshape(pred.shape[0], -1)
        return -0.5 * term.covariance.mahalanobis(residual, sigma)
    s2 = (sigma**2).reshape((-1,) + (1,) * (pred.dim() - 1))
    gamma = term.gamma(sigma) if callable(term.gamma) else term.gamma
    variance = term.sigma_y + s2 * gamma
    misfit = (term.y - pred) ** 2 / variance
    return -0.5 * misfit.reshape(misfit.shape[0], -1).sum(dim=1)


def joint_log_likelihood(terms: Sequence[LikelihoodTerm]
                         ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``(x̂_0, σ) -> Σ_k λ_k log p_k`` per member (eq. 14); names a non-finite term."""
    terms = list(terms)

    def log_likelihood(x0: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        total = torch.zeros(x0.shape[0], dtype=x0.dtype, device=x0.device)
        for term in terms:
            log_p = sda_log_likelihood(term, x0, sigma)
            if not bool(torch.isfinite(log_p).all()):
                raise FloatingPointError(f"non-finite likelihood term '{term.name}' at "
                                         f"sigma={float(sigma.max()):.4g}")
            total = total + term.weight * log_p
        return total

    return log_likelihood


def members_of(term: LikelihoodTerm, start: int, stop: int, members: int) -> LikelihoodTerm:
    """The term as members ``start:stop`` of an ensemble of ``members`` see it: a term whose
    ``y`` has a leading member axis (perturbed pseudo-observations) gives those rows;
    any other term is the same for every member."""
    y = term.y
    if members > 1 and y.dim() >= 2 and y.shape[0] == members:
        if dataclasses.is_dataclass(term):
            return dataclasses.replace(term, y=y[start:stop])
        part = copy.copy(term)
        part.y = y[start:stop]
        return part
    return term


def validate_term(term: LikelihoodTerm) -> None:
    """Raise ValueError naming the term if Σ_y <= 0, Γ̂ < 0, λ < 0 or y is not finite."""
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
