"""EDM preconditioning and loss (Karras et al. 2022, Table 1; paper eqs. 5-6).

    D_θ(x; σ) = c_skip(σ) x + c_out(σ) F_θ(c_in(σ) x; c_noise(σ))          (5)
    c_skip = σ_d² / (σ² + σ_d²)      c_out = σ σ_d / sqrt(σ² + σ_d²)
    c_in   = 1 / sqrt(σ² + σ_d²)     c_noise = ln(σ) / 4
    L = E_{σ, n} [ λ(σ) ‖x_0 − D_θ(x_0 + σ n; σ)‖² ],  λ(σ) = 1 / c_out²   (6)
    ln σ ~ N(P_mean, P_std²)

All tensors are normalised ``(batch, channel, lat, lon)``; σ is ``(batch,)``.
"""

from __future__ import annotations

import torch
from torch import nn


def preconditioning(sigma: torch.Tensor, sigma_data: float) -> tuple[torch.Tensor, ...]:
    """(c_skip, c_out, c_in, c_noise) for noise levels ``sigma``."""
    s2, d2 = sigma**2, sigma_data**2
    c_skip = d2 / (s2 + d2)
    c_out = sigma * sigma_data / (s2 + d2).sqrt()
    c_in = 1 / (s2 + d2).sqrt()
    c_noise = sigma.log() / 4
    return c_skip, c_out, c_in, c_noise


class EDMDenoiser(nn.Module):
    """D_θ(x; σ) of eq. (5) around a raw network ``F(x_in, c_noise)``."""

    def __init__(self, net: nn.Module, sigma_data: float):
        super().__init__()
        if not sigma_data > 0:
            raise ValueError(f"sigma_data must be > 0, got {sigma_data}")
        self.net = net
        self.sigma_data = float(sigma_data)
        self.autocast: torch.dtype | None = None  # e.g. bfloat16: F_θ only (execution.py)
        self.channels_last = False

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1)
        sigma = sigma.expand(x.shape[0]) if sigma.numel() == 1 else sigma
        c_skip, c_out, c_in, c_noise = (c.reshape(-1, 1, 1, 1)
                                        for c in preconditioning(sigma, self.sigma_data))
        x_in = c_in * x
        if self.channels_last:
            x_in = x_in.contiguous(memory_format=torch.channels_last)
        with torch.autocast(x.device.type, dtype=self.autocast or torch.bfloat16,
                            enabled=self.autocast is not None):
            f = self.net(x_in, c_noise.reshape(-1))
        # the preconditioning, the skip connection and everything after stay in x's dtype
        return c_skip * x + c_out * f.to(x.dtype).contiguous()


def edm_loss(denoiser: nn.Module, x0: torch.Tensor, P_mean: float, P_std: float,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Eq. (6) for one batch: mean over batch and elements of λ(σ)‖x_0 − D(x_0 + σn; σ)‖².

    ``denoiser`` is an EDMDenoiser, or a DistributedDataParallel wrapping one.
    """
    sigma_data = getattr(denoiser, "module", denoiser).sigma_data
    b = x0.shape[0]
    rnd = torch.randn(b, generator=generator, device=x0.device, dtype=x0.dtype)
    sigma = (rnd * P_std + P_mean).exp()
    noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    weight = (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2
    denoised = denoiser(x0 + sigma.reshape(-1, 1, 1, 1) * noise, sigma)
    return (weight.reshape(-1, 1, 1, 1) * (denoised - x0) ** 2).mean()
