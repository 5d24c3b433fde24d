"""The spherical Fourier neural operator of LUCIE (Guan et al. 2024).

Written here on torch-harmonics 0.8's spherical-harmonic transforms
(``RealSHT``/``InverseRealSHT``, Legendre-Gauss quadrature, orthonormal,
Condon-Shortley phase on). The module tree and parameter names follow the
Modulus-style SFNO that LUCIE's public checkpoint was saved from, so that
checkpoint's ``state_dict`` loads without renaming (torch-harmonics 0.8's own
``examples.models.SphericalFourierNeuralOperator`` has other names and no
SiLU)::

    encoder.0 (1x1 conv, bias) -> act -> encoder.2 (1x1 conv, no bias)
    + pos_embed                              (1, E, nlat, nlon)
    blocks.i:  n   = norm0(x)                  instance norm, affine
               y   = ISHT(W_l · SHT(n)) + b     filter.filter.{weight, bias}
               y   = act(y + inner_skip(n))     1x1 conv
               y   = mlp(norm1(y)) + n          mlp.fwd.{0,2}; the outer skip is n
    decoder.0 (1x1 conv on [x, input] when big_skip) -> act -> decoder.2 (no bias)

``W_l`` is complex, one (E x E) matrix per degree l ("dhconv", a
Driscoll-Healy convolution: rotation-equivariant) or per (l, m) ("diagonal"),
stored as real tensors with a trailing dimension 2. The transforms keep
``int(nlat * f)`` degrees and ``int((nlon // 2 + 1) * f)`` orders for the
hard-thresholding fraction ``f``.

Arrays are in the network's latitude order: colatitude ascending (north to
south), torch-harmonics' convention; the emulator wrapper flips our
south-to-north arrays when the configuration says so.
"""

from __future__ import annotations

import torch
import torch_harmonics as th
from torch import nn

from dafusion.config import SFNOConfig

ACTIVATIONS = {"silu": nn.SiLU, "gelu": nn.GELU, "relu": nn.ReLU}


def spectral_modes(nlat: int, nlon: int, fraction: float) -> tuple[int, int]:
    """(degrees kept, orders kept) for a hard-thresholding fraction."""
    return int(nlat * fraction), int((nlon // 2 + 1) * fraction)


class SpectralConv(nn.Module):
    """``ISHT(W · SHT(x)) + bias`` with ``W`` per degree (dhconv) or per (l, m)."""

    def __init__(self, sht: th.RealSHT, isht: th.InverseRealSHT, channels: int,
                 operator_type: str):
        super().__init__()
        self.sht, self.isht, self.operator_type = sht, isht, operator_type
        shape = [channels, channels, sht.lmax] + ([sht.mmax] if operator_type == "diagonal"
                                                  else [])
        self.weight = nn.Parameter(torch.randn(*shape, 2) * (0.5 / channels ** 0.5))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        coef = self.sht(x.float())  # (b, c, l, m) complex
        w = torch.view_as_complex(self.weight)
        if self.operator_type == "dhconv":
            coef = torch.einsum("bilm,iol->bolm", coef, w)
        else:
            coef = torch.einsum("bilm,iolm->bolm", coef, w)
        return (self.isht(coef) + self.bias).to(dtype)


class _Filter(nn.Module):
    """Holds the spectral convolution as ``filter`` (the checkpoint's ``filter.filter``)."""

    def __init__(self, conv: SpectralConv):
        super().__init__()
        self.filter = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.filter(x)


class _MLP(nn.Module):
    def __init__(self, channels: int, hidden: int, act: type[nn.Module]):
        super().__init__()
        self.fwd = nn.Sequential(nn.Conv2d(channels, hidden, 1), act(),
                                 nn.Conv2d(hidden, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fwd(x)


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "instance_norm":
        return nn.InstanceNorm2d(channels, eps=1e-6, affine=True, track_running_stats=False)
    return nn.Identity()


class SFNOBlock(nn.Module):
    def __init__(self, sht: th.RealSHT, isht: th.InverseRealSHT, cfg: SFNOConfig):
        super().__init__()
        act = ACTIVATIONS[cfg.activation]
        e = cfg.embed_dim
        self.norm0 = _norm(cfg.normalization, e)
        self.filter = _Filter(SpectralConv(sht, isht, e, cfg.operator_type))
        self.inner_skip = nn.Conv2d(e, e, 1)
        self.act_layer = act()
        self.norm1 = _norm(cfg.normalization, e)
        self.mlp = _MLP(e, int(e * cfg.mlp_ratio), act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.norm0(x)
        y = self.act_layer(self.filter(n) + self.inner_skip(n))
        return self.mlp(self.norm1(y)) + n


def _pointwise_stack(c_in: int, hidden: int, c_out: int, layers: int,
                     act: type[nn.Module]) -> nn.Sequential:
    modules: list[nn.Module] = []
    for _ in range(layers):
        modules += [nn.Conv2d(c_in, hidden, 1), act()]
        c_in = hidden
    modules.append(nn.Conv2d(c_in, c_out, 1, bias=False))
    return nn.Sequential(*modules)


class SFNO(nn.Module):
    """``(batch, in_chans, nlat, nlon) -> (batch, out_chans, nlat, nlon)`` on a
    Legendre-Gauss grid, north to south."""

    def __init__(self, in_chans: int, out_chans: int, shape: tuple[int, int], cfg: SFNOConfig):
        super().__init__()
        nlat, nlon = shape
        self.in_chans, self.out_chans, self.shape, self.cfg = in_chans, out_chans, shape, cfg
        lmax, mmax = spectral_modes(nlat, nlon, cfg.hard_thresholding_fraction)
        if lmax < 1 or mmax < 1:
            raise ValueError(f"SFNO on {nlat}x{nlon}: hard_thresholding_fraction "
                             f"{cfg.hard_thresholding_fraction} keeps no modes")
        sht = th.RealSHT(nlat, nlon, lmax=lmax, mmax=mmax, grid="legendre-gauss")
        isht = th.InverseRealSHT(nlat, nlon, lmax=lmax, mmax=mmax, grid="legendre-gauss")
        act = ACTIVATIONS[cfg.activation]
        e = cfg.embed_dim
        self.encoder = _pointwise_stack(in_chans, e, e, cfg.encoder_layers, act)
        if cfg.pos_embed:
            self.pos_embed = nn.Parameter(torch.randn(1, e, nlat, nlon) * 0.02)
        # one transform pair shared by every block (the same grid throughout)
        self.blocks = nn.ModuleList(SFNOBlock(sht, isht, cfg) for _ in range(cfg.num_layers))
        self.decoder = _pointwise_stack(e + in_chans * cfg.big_skip, e, out_chans,
                                        cfg.encoder_layers, act)
        with torch.no_grad():  # start close to "no tendency": persistence
            self.decoder[-1].weight.mul_(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1:] != (self.in_chans, *self.shape):
            raise ValueError(f"SFNO: input {tuple(x.shape)}, expected (batch, {self.in_chans}, "
                             f"{self.shape[0]}, {self.shape[1]})")
        skip = x
        x = self.encoder(x)
        if self.cfg.pos_embed:
            x = x + self.pos_embed
        for block in self.blocks:
            x = block(x)
        if self.cfg.big_skip:
            x = torch.cat((x, skip), dim=1)
        return self.decoder(x)
