"""The interface of the prior layer: the denoiser.

Everything here is in normalised units. Guidance by observations is a denoiser
too (``guidance.GuidedDenoiser``), so the sampler only ever sees denoisers.
"""

from __future__ import annotations

from typing import Protocol

import torch


class Denoiser(Protocol):
    """D_θ(x; σ): ``x (B, C, H, W)`` noisy normalised state, ``sigma (B,)`` -> the
    denoised estimate of x_0, same shape as ``x``."""

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor: ...
