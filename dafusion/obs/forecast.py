"""The emulator forecast as a coarse pseudo-observation (the paper's LUCIE term, eq. 14).

``y`` is a forecast on the emulator's own grid (Legendre-Gauss 48x96 for
LUCIE) and variables; the operator picks the forecast's channels from the
normalised analysis and maps them to that grid with ``dafusion.regrid``:
``spectral`` (default: spherical-harmonic transform and truncation, exact for
band-limited fields), ``bilinear`` or ``bicubic``.

Only channels that both the emulator and the analysis carry are used; the
others are listed in ``rejected`` (counted per grid point).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from dafusion.grids import AnyGrid
from dafusion.normalise import Normaliser
from dafusion.obs.base import validate_term
from dafusion.regrid import METHODS, make_regridder


@dataclasses.dataclass
class ForecastObs:
    """A likelihood term over an emulator forecast (normalised units)."""

    name: str
    y: torch.Tensor  # (n,) or (B, n) for one forecast per member
    sigma_y: float
    gamma: float
    weight: float
    regridder: nn.Module  # (B, C, H, W) -> (B, C, h, w)
    channel_index: list[int]  # analysis channels that the forecast carries
    channels: list[str]
    rejected: dict[str, int]
    pseudo_observation: ClassVar[bool] = True  # y is the background: no O−B

    def __post_init__(self) -> None:
        validate_term(self)

    def operator(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` -> ``(B, n)``: the shared channels on the forecast grid."""
        out = self.regridder(x[:, self.channel_index])
        return out.reshape(x.shape[0], -1)

    @classmethod
    def from_forecast(cls, forecast: np.ndarray, *, forecast_grid: AnyGrid,
                      forecast_channels: list[str], channels: list[str],
                      normaliser: Normaliser, grid: AnyGrid, regrid: str, sigma_y: float,
                      gamma: float, weight: float, name: str = "emulator") -> "ForecastObs":
        """``forecast``: ``(C_f, h, w)`` or ``(B, C_f, h, w)`` (one per member), physical."""
        if regrid not in METHODS:
            raise ValueError(f"observation source '{name}': regrid {regrid!r} is not available; "
                             f"use one of {METHODS}")
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
        idx = [channels.index(c) for c in shared]
        picked = fc[:, [forecast_channels.index(c) for c in shared]]
        normalised = normaliser.normalise_at(picked, np.array(idx)[None, :, None, None])
        y = torch.as_tensor(normalised.reshape(fc.shape[0], -1), dtype=torch.float32)
        return cls(name, y if per_member else y[0], sigma_y, gamma, weight,
                   make_regridder(grid, forecast_grid, regrid), idx, shared, rejected)

    def diagnostics(self) -> dict[str, object]:
        return {"source": self.name, "used": int(self.y.shape[-1]),
                "rejected": dict(self.rejected), "channels": list(self.channels)}
