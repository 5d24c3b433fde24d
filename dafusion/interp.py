"""Point interpolation on a lat/lon grid as a sparse linear operator.

An interpolation is precomputed once as (channel, lat index, lon index,
weight) for each of ``k`` neighbours of every point; applying it to a state
``x (B, C, H, W)`` is a gather and a weighted sum, so it is exactly linear,
differentiable and cheap inside the guidance. Longitude is periodic (the date
line is an ordinary cell boundary); in latitude the stencil is clamped to the
outermost rows (the value beyond the last row is that row's: a cell-centred
grid has no row at the pole).

* ``bilinear``: 2x2 neighbours, exact for fields linear in the grid indices;
* ``bicubic``: 4x4 neighbours with Keys' cubic convolution kernel (a = -0.5,
  the kernel of bicubic image interpolation), exact for quadratics away from
  the clamped rows.

Coordinates are in *normalised grid coordinates* (fractional indices), as the
paper's operator.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from dafusion.grids import AnyGrid


def _keys(t: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys' cubic convolution kernel."""
    t = np.abs(t)
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return np.where(t <= 1, near, np.where(t < 2, far, 0.0))


def fractional_indices(grid: AnyGrid, lat: np.ndarray, lon: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Fractional (lat, lon) indices of points; lat clamped to the grid's rows."""
    glat = grid.lat
    fi = np.interp(np.asarray(lat, float), glat, np.arange(glat.size))
    fj = np.mod(np.asarray(lon, float) - grid.lon[0], 360.0) / (360.0 / grid.nlon)
    return fi, fj


@dataclasses.dataclass
class PointInterpolation:
    """``apply(x)``: ``(B, C, H, W) -> (B, n_points)``, each point on its own channel."""

    channel: torch.Tensor  # (n,) long
    rows: torch.Tensor  # (n, k) long
    cols: torch.Tensor  # (n, k) long
    weights: torch.Tensor  # (n, k)

    @classmethod
    def build(cls, grid: AnyGrid, lat: np.ndarray, lon: np.ndarray, channel: np.ndarray,
              method: str = "bicubic") -> PointInterpolation:
        if method not in ("bilinear", "bicubic"):
            raise ValueError(f"interpolation {method!r}: use 'bilinear' or 'bicubic'")
        fi, fj = fractional_indices(grid, lat, lon)
        i0, j0 = np.floor(fi).astype(int), np.floor(fj).astype(int)
        offsets = np.array([0, 1]) if method == "bilinear" else np.array([-1, 0, 1, 2])
        rows_1d = i0[:, None] + offsets[None, :]  # (n, s)
        cols_1d = j0[:, None] + offsets[None, :]
        if method == "bilinear":
            wi = 1 - np.abs(fi[:, None] - rows_1d)
            wj = 1 - np.abs(fj[:, None] - cols_1d)
        else:
            wi, wj = _keys(fi[:, None] - rows_1d), _keys(fj[:, None] - cols_1d)
        rows_1d = np.clip(rows_1d, 0, grid.nlat - 1)
        cols_1d = np.mod(cols_1d, grid.nlon)
        s = offsets.size
        rows = np.repeat(rows_1d, s, axis=1)
        cols = np.tile(cols_1d, (1, s))
        weights = (wi[:, :, None] * wj[:, None, :]).reshape(len(fi), s * s)
        return cls(torch.as_tensor(np.asarray(channel), dtype=torch.long),
                   torch.as_tensor(rows), torch.as_tensor(cols),
                   torch.as_tensor(weights, dtype=torch.float64))

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        device = x.device
        values = x[:, self.channel.to(device)[:, None], self.rows.to(device),
                   self.cols.to(device)]  # (B, n, k)
        return (values * self.weights.to(device=device, dtype=x.dtype)).sum(dim=-1)


def interpolate(field: np.ndarray, grid: AnyGrid, lat: np.ndarray, lon: np.ndarray,
                method: str = "bilinear") -> np.ndarray:
    """``field (..., nlat, nlon)`` at points ``(lat, lon)`` in degrees -> ``(..., npts)``,
    float64: the one array-level wrapper of :class:`PointInterpolation`."""
    field = np.asarray(field, dtype=np.float64)
    lat = np.atleast_1d(np.asarray(lat, dtype=np.float64))
    op = PointInterpolation.build(grid, lat, np.asarray(lon, dtype=np.float64),
                                  np.zeros(lat.size, int), method)
    flat = torch.as_tensor(field.reshape(-1, 1, *field.shape[-2:]))
    return op.apply(flat).numpy().reshape(*field.shape[:-2], lat.size)
