"""Regridding between the analysis grid and the emulator grid.

``SpectralRegridder``: a spherical-harmonic transform on the source grid,
triangular truncation at ``lmax`` (by default the largest degree both grids
hold), synthesis on the destination grid. It is one fixed linear map per
zonal wavenumber m, so it is exact for band-limited fields, differentiable,
and runs as an FFT plus a small batched matrix product:

    regrid(x) = irfft_m( R_m · rfft(x)_m ),   R_m = S_m(dst) · A_m(src)

The analysis A_m is Gauss quadrature on a Legendre-Gauss grid (exact) and a
weighted least-squares fit of the Legendre functions on any other grid, with
every degree the grid holds (nlat unknowns per m at most), truncated after: on
a cell-centred equiangular grid (WeatherBench) no quadrature is exact, while
the fit is exact for every field the grid can represent. (This
is why the transform is written here rather than taken from torch-harmonics
0.8, whose equiangular grid includes the poles.)

``PointRegridder``: bilinear or bicubic interpolation at the destination
nodes (``dafusion.interp``), the cheap alternative.

Shared by the emulator layer (initial states, forecasts) and the observation
layer (the emulator forecast as a pseudo-observation), hence a top-level module.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from dafusion.grids import AnyGrid
from dafusion.interp import PointInterpolation
from dafusion.spectra import analysis_matrix, legendre


def max_degree(grid: AnyGrid) -> int:
    """The largest degree a grid holds: Gauss exactness (LG), fit size (others), Nyquist."""
    return min(grid.nlat - 1, grid.nlon // 2 - 1)


class SpectralRegridder(nn.Module):
    """``(..., src.nlat, src.nlon) -> (..., dst.nlat, dst.nlon)``; see the module docstring."""

    def __init__(self, src: AnyGrid, dst: AnyGrid, lmax: int | None = None):
        super().__init__()
        limit = min(max_degree(src), max_degree(dst))
        self.lmax = limit if lmax is None else lmax
        if not 0 <= self.lmax <= limit:
            raise ValueError(f"lmax {lmax}: {src.name} -> {dst.name} holds degrees 0..{limit}")
        self.src, self.dst = src, dst
        synthesis = legendre(self.lmax, np.sin(np.deg2rad(dst.lat)))  # (m, l, lat_dst)
        # analyse with every degree the source holds, then truncate: a least-squares
        # fit with fewer degrees would alias the higher ones into the kept ones
        keep = slice(0, self.lmax + 1)
        analysis = analysis_matrix(src, max_degree(src))[keep, keep]
        maps = np.einsum("mld,mls->mds", synthesis, analysis)
        self.register_buffer("maps", torch.as_tensor(maps))  # (m, lat_dst, lat_src)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != self.src.shape:
            raise ValueError(f"regrid: input ends in {tuple(x.shape[-2:])}, expected "
                             f"{self.src.shape} ({self.src.name})")
        coef = torch.fft.rfft(x, dim=-1, norm="forward")[..., : self.lmax + 1]  # (..., lat, m)
        maps = self.maps.to(dtype=x.real.dtype if not x.is_complex() else x.dtype)
        out = torch.einsum("mds,...sm->...dm", maps.to(coef.dtype), coef)
        return torch.fft.irfft(out, n=self.dst.nlon, dim=-1, norm="forward")


class PointRegridder(nn.Module):
    """Bilinear or bicubic interpolation of every channel at the destination nodes."""

    def __init__(self, src: AnyGrid, dst: AnyGrid, method: str = "bilinear"):
        super().__init__()
        self.src, self.dst = src, dst
        lat, lon = np.meshgrid(dst.lat, dst.lon, indexing="ij")
        self.interp = PointInterpolation.build(src, lat.ravel(), lon.ravel(),
                                               np.zeros(lat.size, int), method)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-2]
        flat = x.reshape(-1, 1, *x.shape[-2:])
        return self.interp.apply(flat).reshape(*lead, *self.dst.shape)


METHODS = ("spectral", "bilinear", "bicubic")


def make_regridder(src: AnyGrid, dst: AnyGrid, method: str = "spectral") -> nn.Module:
    """One of ``METHODS``: ``spectral`` (default), ``bilinear`` or ``bicubic``."""
    if method == "spectral":
        return SpectralRegridder(src, dst)
    if method in ("bilinear", "bicubic"):
        return PointRegridder(src, dst, method)
    raise ValueError(f"regrid method {method!r}: use one of {METHODS}")
