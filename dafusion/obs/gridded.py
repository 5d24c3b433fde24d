"""Coarse gridded observations (the paper's LR) as a likelihood term.

The observation is a coarse equiangular field of every channel; the operator
coarsens the analysis the same way the observation was made:

* ``bicubic``: the fine field interpolated bicubically at the coarse cell
  centres (the paper coarsens 128x256 to 16x32 "with bicubic interpolation");
* ``area``: the area-weighted mean over the fine cells inside each coarse
  cell (conservative; needs an integer refinement ratio).

For the OSSE, :meth:`GriddedObs.from_truth` makes the coarse field from the
truth with the same operator, plus Gaussian noise of a stated std.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np
import torch

from dafusion.grids import EquiangularGrid
from dafusion.obs.base import Covariance, validate_term
from dafusion.regrid import PointRegridder


@dataclasses.dataclass
class Coarsening:
    """``(B, C, H, W)`` on ``fine`` -> ``(B, C, h, w)`` on ``coarse``."""

    fine: EquiangularGrid
    coarse: EquiangularGrid
    method: str = "bicubic"

    def __post_init__(self) -> None:
        if self.method == "area":
            ry, rx = self.fine.nlat // self.coarse.nlat, self.fine.nlon // self.coarse.nlon
            if (self.fine.nlat != ry * self.coarse.nlat or self.fine.nlon != rx * self.coarse.nlon
                    or self.fine.poles or self.coarse.poles):
                raise ValueError(f"area coarsening {self.fine.name} -> {self.coarse.name}: "
                                 "needs cell-centred grids with an integer ratio")
        elif self.method != "bicubic":
            raise ValueError(f"coarsening {self.method!r}: use 'bicubic' or 'area'")
        self._bicubic = PointRegridder(self.fine, self.coarse, "bicubic") \
            if self.method == "bicubic" else None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self._bicubic is not None:  # bicubic at the coarse cell centres
            return self._bicubic(x)
        b, c = x.shape[:2]
        h, w = self.coarse.shape
        ry, rx = self.fine.nlat // h, self.fine.nlon // w
        area = torch.as_tensor(self.fine.lat_weights, dtype=x.dtype, device=x.device)
        weighted = (x * area[:, None]).reshape(b, c, h, ry, w, rx).sum(dim=(3, 5))
        return weighted / area.reshape(h, ry).sum(dim=1)[:, None] / rx


@dataclasses.dataclass
class GriddedObs:
    """A likelihood term (``obs.base.LikelihoodTerm``) over a coarse field."""

    name: str
    y: torch.Tensor  # (C, h, w) normalised
    sigma_y: float
    gamma: float
    weight: float
    coarsening: Coarsening
    covariance: Covariance | None = None
    pseudo_observation: ClassVar[bool] = False

    def __post_init__(self) -> None:
        validate_term(self)
        if tuple(self.y.shape[-2:]) != self.coarsening.coarse.shape:
            raise ValueError(f"observation source '{self.name}': y has shape "
                             f"{tuple(self.y.shape)}, coarse grid is {self.coarsening.coarse.name}")

    def operator(self, x: torch.Tensor) -> torch.Tensor:
        return self.coarsening(x)

    @classmethod
    def from_truth(cls, truth: torch.Tensor, coarsening: Coarsening, *, noise_std: float,
                   generator: torch.Generator, sigma_y: float, gamma: float,
                   weight: float, name: str = "gridded") -> GriddedObs:
        """``truth (C, H, W)`` normalised -> coarsened + N(0, noise_std²) (normalised units).

        The paper's values for its LR data (section 3.4): Σ_y = 0.1, Γ̂ = 5e-3.
        """
        coarse = coarsening(truth[None])[0]
        noise = torch.randn(coarse.shape, generator=generator, dtype=coarse.dtype) * noise_std
        return cls(name, coarse + noise, sigma_y, gamma, weight, coarsening)

    def locations(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(lat, lon, channel index)`` of every value of ``y`` (flattened ``(C, h, w)``)."""
        coarse, c = self.coarsening.coarse, self.y.shape[0]
        lat, lon = np.meshgrid(coarse.lat, coarse.lon, indexing="ij")
        return (np.tile(lat.ravel(), c), np.tile(lon.ravel(), c),
                np.repeat(np.arange(c), lat.size))

    def diagnostics(self) -> dict[str, object]:
        return {"source": self.name, "used": int(self.y.numel()), "rejected": {}}
