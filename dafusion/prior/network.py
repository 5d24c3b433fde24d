"""A SongUNet-style U-Net for the sphere, written for this project.

As in Song et al. (2021) / Karras et al. (2022): residual blocks conditioned on
a noise-level embedding (adaptive scale and shift after the first
normalisation), self-attention at configured resolutions, dropout, base
channels x channel multipliers, blocks per level, skip connections from every
encoder block to the decoder. Every spatial convolution pads **circularly in
longitude** (the last axis) and with **zeros in latitude** (paper section 3.4).
GroupNorm only: no statistic is shared between batch members, so a member's
output never depends on the rest of the batch.

Input and output: ``(batch, channels, nlat, nlon)``; ``noise_label (batch,)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from dafusion.config import NetworkConfig


class SphereConv2d(nn.Conv2d):
    """Conv2d with circular padding in longitude and zero padding in latitude."""

    def __init__(self, c_in: int, c_out: int, kernel: int, init_zero: bool = False):
        super().__init__(c_in, c_out, kernel, padding=0)
        self.pad = kernel // 2
        if init_zero:
            nn.init.zeros_(self.weight)
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad:
            x = F.pad(x, (self.pad, self.pad, 0, 0), mode="circular")
            x = F.pad(x, (0, 0, self.pad, self.pad), mode="constant", value=0.0)
        return super().forward(x)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(32, channels // 4) if channels >= 4 else 1, channels, eps=1e-6)


class PositionalEmbedding(nn.Module):
    """Sinusoidal embedding of the scalar noise label (Transformer / DDPM style)."""

    def __init__(self, dim: int, max_positions: int = 10000):
        super().__init__()
        self.dim, self.max_positions = dim, max_positions

    def forward(self, label: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freqs = torch.arange(half, dtype=torch.float32, device=label.device) / half
        freqs = (1 / self.max_positions) ** freqs
        angles = label[:, None] * freqs[None, :].to(label.dtype)
        return torch.cat([angles.cos(), angles.sin()], dim=1)


class Attention(nn.Module):
    """Multi-head self-attention over all grid points, with a residual connection."""

    def __init__(self, channels: int, head_channels: int = 64):
        super().__init__()
        self.heads = max(1, channels // head_channels)
        self.norm = _norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).unbind(1)
        out = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2),
                                             v.transpose(-1, -2))
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv, noise-conditioned scale/shift, dropout, conv; optional
    2x down- or up-sampling; optional attention after the residual sum."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, dropout: float,
                 resample: str = "", attention: bool = False):
        super().__init__()
        self.resample = resample
        self.norm0 = _norm(c_in)
        self.conv0 = SphereConv2d(c_in, c_out, 3)
        self.affine = nn.Linear(emb_dim, 2 * c_out)
        self.norm1 = _norm(c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv1 = SphereConv2d(c_out, c_out, 3, init_zero=True)
        self.skip = nn.Conv2d(c_in, c_out, 1) if (c_in != c_out or resample) else None
        self.attn = Attention(c_out) if attention else None

    def _resample(self, x: torch.Tensor) -> torch.Tensor:
        if self.resample == "down":
            return F.avg_pool2d(x, 2)
        if self.resample == "up":
            return F.interpolate(x, scale_factor=2, mode="nearest")
        return x

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv0(self._resample(F.silu(self.norm0(x))))
        scale, shift = self.affine(emb)[:, :, None, None].chunk(2, dim=1)
        h = F.silu(torch.addcmul(shift, self.norm1(h), scale + 1))
        h = self.conv1(self.dropout(h))
        skip = self._resample(x)
        if self.skip is not None:
            skip = self.skip(skip)
        out = (h + skip) * math.sqrt(0.5)
        return self.attn(out) if self.attn is not None else out


class SongUNet(nn.Module):
    """The raw network F_θ of eq. (5): ``F(x_in, c_noise) -> (batch, C, H, W)``."""

    def __init__(self, channels: int, shape: tuple[int, int], cfg: NetworkConfig):
        super().__init__()
        levels = len(cfg.channel_mult)
        if shape[0] % 2 ** (levels - 1) or shape[1] % 2 ** (levels - 1):
            raise ValueError(f"grid {shape[0]}x{shape[1]} cannot be halved {levels - 1} times "
                             f"(prior.network.channel_mult has {levels} levels)")
        emb_dim = 4 * cfg.base_channels
        attn = {tuple(r) for r in cfg.attention_resolutions}
        self.embed = nn.Sequential(PositionalEmbedding(cfg.base_channels),
                                   nn.Linear(cfg.base_channels, emb_dim), nn.SiLU(),
                                   nn.Linear(emb_dim, emb_dim), nn.SiLU())
        self.conv_in = SphereConv2d(channels, cfg.base_channels, 3)
        self.attention_at: set[tuple[int, int]] = set()  # resolutions with self-attention
        self.down, skips = nn.ModuleList(), [cfg.base_channels]
        c, (h, w) = cfg.base_channels, shape
        for level, mult in enumerate(cfg.channel_mult):
            if level > 0:
                self.down.append(ResBlock(c, c, emb_dim, cfg.dropout, "down"))
                h, w = h // 2, w // 2
                skips.append(c)
            if (h, w) in attn:
                self.attention_at.add((h, w))
            for _ in range(cfg.blocks_per_level):
                self.down.append(ResBlock(c, cfg.base_channels * mult, emb_dim, cfg.dropout,
                                          attention=(h, w) in attn))
                c = cfg.base_channels * mult
                skips.append(c)
        self.mid = nn.ModuleList([ResBlock(c, c, emb_dim, cfg.dropout, attention=True),
                                  ResBlock(c, c, emb_dim, cfg.dropout)])
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for _ in range(cfg.blocks_per_level + 1):
                c_out = cfg.base_channels * mult
                self.up.append(ResBlock(c + skips.pop(), c_out, emb_dim, cfg.dropout,
                                        attention=(h, w) in attn))
                c = c_out
            if level > 0:
                self.up.append(ResBlock(c, c, emb_dim, cfg.dropout, "up"))
                h, w = h * 2, w * 2
        self.norm_out = _norm(c)
        self.conv_out = SphereConv2d(c, channels, 3, init_zero=True)
        # recompute each block's activations in the backward pass instead of keeping them
        # (less memory for a guided gradient, about one more forward of compute)
        self.checkpointing = False

    def forward(self, x: torch.Tensor, noise_label: torch.Tensor) -> torch.Tensor:
        emb = self.embed(noise_label)
        h = self.conv_in(x)
        stack = [h]
        for block in self.down:
            h = self._block(block, h, emb)
            stack.append(h)
        for block in self.mid:
            h = self._block(block, h, emb)
        for block in self.up:
            if block.resample != "up":
                h = torch.cat([h, stack.pop()], dim=1)
            h = self._block(block, h, emb)
        return self.conv_out(F.silu(self.norm_out(h)))

    def _block(self, block: nn.Module, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        if self.checkpointing and torch.is_grad_enabled():
            return torch.utils.checkpoint.checkpoint(block, h, emb, use_reentrant=False)
        return block(h, emb)
