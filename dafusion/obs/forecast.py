"""The emulator forecast as a coarse pseudo-observation (the paper's LUCIE term, eq. 14).

``y`` is a forecast on the emulator's own grid (Legendre-Gauss 48x96 for
LUCIE) and variables; the operator maps the normalised analysis to that grid
and picks the forecast's channels. The regridding is named by ``regrid``:

* ``bilinear`` / ``bicubic``: point interpolation of the analysis at the
  emulator grid's nodes (``obs.interp``), available now;
* the spectral (spherical-harmonic) regridder arrives with the emulator layer
  and will be selected here by name.

Only channels that both the emulator and the analysis carry are used; the
others are listed in ``rejected`` (counted per grid point).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from dafusion.grids import AnyGrid
from dafusion.normalise import Normaliser
from dafusion.obs.interp import PointInterpolation

REGRIDDERS = ("bilinear", "bicubic")


@dataclasses.dataclass
class ForecastObs:
    """A likelihood term over an emulator forecast (normalised units)."""

    name: str
    y: torch.Tensor  # (n,) or (B, n) for one forecast per member
    sigma_y: float
    gamma: float
    weight: float
    interpolation: PointInterpolation
    channels: list[str]
    rejected: dict[str, int]

    def operator(self, x: torch.Tensor) -> torch.Tensor:
        return self.interpolation.apply(x)

    @classmethod
    def from_forecast(cls, forecast: np.ndarray, *, forecast_grid: AnyGrid,
                      forecast_channels: list[str], channels: list[str],
                      normaliser: Normaliser, grid: AnyGrid, regrid: str = "bilinear",
                      sigma_y: float = 0.1, gamma: float = 5e-3, weight: float = 1.0,
                      name: str = "emulator") -> "ForecastObs":
        """``forecast``: ``(C_f, h, w)`` or ``(B, C_f, h, w)`` (one per member), physical."""
        if regrid not in REGRIDDERS:
            raise ValueError(f"observation source '{name}': regrid {regrid!r} is not available; "
                             f"use one of {REGRIDDERS}")
        if not sigma_y > 0 or gamma < 0 or weight < 0:
            raise ValueError(f"observation source '{name}': need sigma_y > 0, gamma >= 0, "
                             f"weight >= 0 (got {sigma_y}, {gamma}, {weight})")
        normaliser.check_channels(channels, f"observation source '{name}'")
        forecast = np.asarray(forecast, dtype=np.float64)
        per_member = forecast.ndim == 4
        fc = forecast if per_member else forecast[None]
        if fc.shape[1:] != (len(forecast_channels),) + forecast_grid.shape:
            raise ValueError(f"observation source '{name}': forecast shape {forecast.shape} does "
                             f"not match {len(forecast_channels)} channels on "
                             f"{forecast_grid.name}")
        if not np.all(np.isfinite(fc)):
            raise ValueError(f"observation source '{name}': forecast contains NaN/inf")
        shared = [c for c in forecast_channels if c in channels]
        if not shared:
            raise ValueError(f"observation source '{name}': no channel in common between the "
                             f"forecast {forecast_channels} and the analysis {channels}")
        npts = forecast_grid.nlat * forecast_grid.nlon
        rejected = {f"channel {c} not in state": npts for c in forecast_channels
                    if c not in channels}
        lat, lon = np.meshgrid(forecast_grid.lat, forecast_grid.lon, indexing="ij")
        idx = [channels.index(c) for c in shared]
        interp = PointInterpolation.build(grid, np.tile(lat.ravel(), len(shared)),
                                          np.tile(lon.ravel(), len(shared)),
                                          np.repeat(idx, npts), regrid)
        picked = fc[:, [forecast_channels.index(c) for c in shared]]
        normalised = (picked - normaliser.mean[idx][None, :, None, None]) \
            / normaliser.std[idx][None, :, None, None]
        y = torch.as_tensor(normalised.reshape(fc.shape[0], -1), dtype=torch.float32)
        return cls(name, y if per_member else y[0], sigma_y, gamma, weight, interp, shared,
                   rejected)

    def diagnostics(self) -> dict[str, object]:
        return {"source": self.name, "used": int(self.y.shape[-1]),
                "rejected": dict(self.rejected), "channels": list(self.channels)}
