"""Persistence: tomorrow is today. A baseline for skill and a test double."""

from __future__ import annotations

import dataclasses

import numpy as np
import xarray as xr

from dafusion.emulator.base import check_state, forecast_array
from dafusion.grids import AnyGrid


@dataclasses.dataclass
class PersistenceEmulator:
    """``ForecastModel`` that repeats the initial state at every step."""

    grid: AnyGrid
    channels: list[str]
    time_step: np.timedelta64 = dataclasses.field(default_factory=lambda: np.timedelta64(6, "h"))

    @property
    def output_channels(self) -> list[str]:
        return list(self.channels)

    def forecast(self, state: xr.DataArray, n_steps: int) -> xr.DataArray:
        if n_steps < 1:
            raise ValueError(f"persistence forecast: n_steps must be >= 1, got {n_steps}")
        state = check_state(self, state, "persistence forecast")
        values = np.broadcast_to(state.values, (n_steps,) + state.shape).copy()
        return forecast_array(values, state, self.time_step)
