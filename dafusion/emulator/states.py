"""Truth states on an emulator's grid: the initial state of a forecast (and of a cycle's
emulator modes) and the verifying states of its skill and error statistics."""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from dafusion.data import GriddedSource
from dafusion.emulator.base import ForecastModel
from dafusion.grids import AnyGrid
from dafusion.regrid import make_regridder


def on_grid(source: GriddedSource, times: np.ndarray, grid: AnyGrid, channels: list[str],
            method: str = "spectral") -> xr.DataArray:
    """Truth states at ``times`` regridded to ``grid``: ``(time, channel, lat, lon)``."""
    times = np.asarray(times, "datetime64[ns]")
    missing = [str(t)[:16] for t in times if t not in set(source.times)]
    if missing:
        raise ValueError(f"{source.path}: no truth at {missing[:5]}"
                         f"{' ...' if len(missing) > 5 else ''} (data covers "
                         f"{str(source.times[0])[:16]} .. {str(source.times[-1])[:16]})")
    values = source.stack().sel(time=times, channel=channels).values
    if source.grid != grid:
        values = make_regridder(source.grid, grid, method)(
            torch.as_tensor(values, dtype=torch.float64)).numpy()
    return xr.DataArray(values, dims=("time", "channel", "lat", "lon"),
                        coords={"time": times, "channel": channels, "lat": grid.lat,
                                "lon": grid.lon})


def initial_state(source: GriddedSource, time: str | np.datetime64, model: ForecastModel,
                  method: str = "spectral") -> xr.DataArray:
    """The truth at ``time`` on the model's grid, ``(member=1, channel, lat, lon)``."""
    state = on_grid(source, np.array([np.datetime64(time, "ns")]), model.grid, model.channels,
                    method)
    return state.isel(time=0).expand_dims("member")
