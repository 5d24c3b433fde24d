"""Horizontal grids: equiangular (WeatherBench) and Legendre-Gauss (LUCIE/SFNO).

Conventions, the same for every grid in the system:

* latitude in degrees north, **ascending** (south -> north), as WeatherBench 2;
* longitude in degrees east in [0, 360), ascending, periodic;
* ``lat_weights`` are per-latitude area (quadrature) weights summing to 1, so a
  latitude-weighted global mean is ``(field.mean(lon) * lat_weights).sum(lat)``.

Code that needs another order (torch-harmonics wants north -> south) flips at
its own boundary.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import numpy as np
import xarray as xr


class Grid(Protocol):
    """A global lat/lon grid with quadrature weights.

    ``lat``: (nlat,) degrees north, ascending. ``lon``: (nlon,) degrees east in
    [0, 360). ``lat_weights``: (nlat,) summing to 1.
    """

    name: str

    @property
    def lat(self) -> np.ndarray: ...

    @property
    def lon(self) -> np.ndarray: ...

    @property
    def lat_weights(self) -> np.ndarray: ...


@dataclasses.dataclass(frozen=True)
class EquiangularGrid:
    """Regular lat/lon grid; ``poles=False`` is cell-centred (WeatherBench 1:
    5.625 deg = 32x64, 1.40625 deg = 128x256), ``poles=True`` includes +-90."""

    nlat: int
    nlon: int
    poles: bool = False

    def __post_init__(self) -> None:
        if self.nlat < 2 or self.nlon < 4:
            raise ValueError(f"grid {self.nlat}x{self.nlon}: too small")

    @property
    def name(self) -> str:
        return f"equiangular{'_with_poles' if self.poles else ''}_{self.nlat}x{self.nlon}"

    @property
    def shape(self) -> tuple[int, int]:
        return (self.nlat, self.nlon)

    @property
    def lat(self) -> np.ndarray:
        if self.poles:
            return np.linspace(-90.0, 90.0, self.nlat)
        dlat = 180.0 / self.nlat
        return -90.0 + dlat / 2 + dlat * np.arange(self.nlat)

    @property
    def lon(self) -> np.ndarray:
        return 360.0 / self.nlon * np.arange(self.nlon)

    @property
    def lat_weights(self) -> np.ndarray:
        """Exact cell areas: sin(upper edge) - sin(lower edge), edges clipped at the poles."""
        dlat = 180.0 / self.nlat if not self.poles else 180.0 / (self.nlat - 1)
        upper = np.deg2rad(np.minimum(self.lat + dlat / 2, 90.0))
        lower = np.deg2rad(np.maximum(self.lat - dlat / 2, -90.0))
        w = np.sin(upper) - np.sin(lower)
        return w / w.sum()


@dataclasses.dataclass(frozen=True)
class LegendreGaussGrid:
    """Gaussian grid: latitudes at the roots of P_nlat(sin lat), Gauss weights.

    LUCIE's 48x96 grid is ``LegendreGaussGrid(48, 96)``. Quadrature is exact
    for polynomials in sin(lat) up to degree 2*nlat-1.
    """

    nlat: int
    nlon: int

    def __post_init__(self) -> None:
        if self.nlat < 2 or self.nlon < 4:
            raise ValueError(f"grid {self.nlat}x{self.nlon}: too small")

    @property
    def name(self) -> str:
        return f"legendre_gauss_{self.nlat}x{self.nlon}"

    @property
    def shape(self) -> tuple[int, int]:
        return (self.nlat, self.nlon)

    @property
    def lat(self) -> np.ndarray:
        nodes, _ = np.polynomial.legendre.leggauss(self.nlat)
        return np.rad2deg(np.arcsin(nodes))

    @property
    def lon(self) -> np.ndarray:
        return 360.0 / self.nlon * np.arange(self.nlon)

    @property
    def lat_weights(self) -> np.ndarray:
        _, w = np.polynomial.legendre.leggauss(self.nlat)
        return w / w.sum()


AnyGrid = EquiangularGrid | LegendreGaussGrid

# named grids used in configs and checkpoints
NAMED: dict[str, AnyGrid] = {
    "wb_5.625deg": EquiangularGrid(32, 64),
    "wb_2.8125deg": EquiangularGrid(64, 128),
    "wb_1.40625deg": EquiangularGrid(128, 256),
    "wb2_1.5deg": EquiangularGrid(121, 240, poles=True),
    "era5_1deg": EquiangularGrid(181, 360, poles=True),
    "lucie": LegendreGaussGrid(48, 96),
}


def grid_from_name(name: str) -> AnyGrid:
    """A grid from a short name (``wb_1.40625deg``) or its ``name`` property."""
    if name in NAMED:
        return NAMED[name]
    for grid in NAMED.values():
        if grid.name == name:
            return grid
    kind, _, size = name.rpartition("_")
    try:
        nlat, nlon = (int(s) for s in size.split("x"))
    except ValueError:
        raise ValueError(f"unknown grid {name!r}; known: {sorted(NAMED)}") from None
    makers = {"equiangular": lambda: EquiangularGrid(nlat, nlon),
              "equiangular_with_poles": lambda: EquiangularGrid(nlat, nlon, True),
              "legendre_gauss": lambda: LegendreGaussGrid(nlat, nlon)}
    if kind not in makers:
        raise ValueError(f"unknown grid {name!r}; known: {sorted(NAMED)}")
    return makers[kind]()


def identify_grid(lat: np.ndarray, lon: np.ndarray, *, atol: float = 1e-3) -> AnyGrid:
    """Recognise the grid that has exactly these (ascending) coordinates.

    Raises ValueError describing the coordinates when no known kind matches.
    """
    lat, lon = np.asarray(lat, float), np.asarray(lon, float)
    candidates: list[AnyGrid] = [EquiangularGrid(lat.size, lon.size),
                                 LegendreGaussGrid(lat.size, lon.size)]
    if lat.size > 1:
        candidates.append(EquiangularGrid(lat.size, lon.size, poles=True))
    for grid in candidates:
        if np.allclose(grid.lat, lat, atol=atol) and np.allclose(grid.lon, lon, atol=atol):
            return grid
    raise ValueError(
        f"coordinates match no supported grid: {lat.size} latitudes "
        f"{lat[0]:.4f}..{lat[-1]:.4f}, {lon.size} longitudes {lon[0]:.4f}..{lon[-1]:.4f} "
        "(expected equiangular or Legendre-Gauss, latitude ascending, longitude from 0)")


def weighted_mean(field: Any, grid: Grid) -> Any:
    """Area-weighted global mean over the last two axes (lat, lon) of an array, or over
    the ``lat`` and ``lon`` dimensions of an ``xarray.DataArray`` (lazily: a dask array
    stays one): the one spatial mean of the package (metrics, skill, normalisation
    statistics, training statistics, prior quality)."""
    if isinstance(field, xr.DataArray):
        w = xr.DataArray(grid.lat_weights / grid.lat_weights.sum(), dims=["lat"])
        return (field * w).sum("lat").mean("lon")
    field = np.asarray(field)
    if field.shape[-2:] != (grid.lat.size, grid.lon.size):
        raise ValueError(f"field shape {field.shape} does not end in grid shape "
                         f"{(grid.lat.size, grid.lon.size)} of {grid.name}")
    w = grid.lat_weights / grid.lat_weights.sum()
    return np.einsum("...ij,i->...", field, w) / field.shape[-1]
