"""The interface of the forecast step.

A forecast model declares its grid, its channels and its time step, and
forecasts from a state in physical units whose coordinates say what it is:
an ``xarray.DataArray`` with dims ``(member, channel, lat, lon)`` (``member``
optional), coordinates ``channel``, ``lat``, ``lon`` and a scalar ``time``
(the valid time of the initial state). The result has dims
``(lead, member, channel, lat, lon)`` with coordinates ``lead_time``
(timedelta) and ``valid_time``; lead 1 is one time step after the start.
Forcing (insolation, orography) is the model's own business: it knows the
valid time of every step.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import xarray as xr

from dafusion.grids import AnyGrid, identify_grid


class ForecastModel(Protocol):
    """grid, channels (the configuration's names, e.g. ``t850``), time_step."""

    grid: AnyGrid
    channels: list[str]  # the state it starts from (prognostic)
    output_channels: list[str]  # what it forecasts: the prognostic ones, then diagnostics
    time_step: np.timedelta64

    def forecast(self, state: xr.DataArray, n_steps: int) -> xr.DataArray:
        """``(member, channel, lat, lon)`` at ``state.time`` -> ``(lead, member, channel,
        lat, lon)``, physical units."""
        ...


def check_state(model: ForecastModel, state: xr.DataArray, where: str) -> xr.DataArray:
    """The state with a ``member`` dim, after checking grid, channels, time and values.

    Raises ValueError naming ``where`` and what does not fit.
    """
    if "member" not in state.dims:
        state = state.expand_dims("member")
    if set(state.dims) != {"member", "channel", "lat", "lon"}:
        raise ValueError(f"{where}: state dims {state.dims}, expected (member, channel, lat, lon)")
    state = state.transpose("member", "channel", "lat", "lon")
    try:
        grid = identify_grid(state["lat"].values, state["lon"].values)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
    if grid != model.grid:
        raise ValueError(f"{where}: state on {grid.name}, the model runs on {model.grid.name}")
    have = [str(c) for c in state["channel"].values]
    missing = [c for c in model.channels if c not in have]
    if missing:
        raise ValueError(f"{where}: state lacks channels {missing} (has {have})")
    if "time" not in state.coords:
        raise ValueError(f"{where}: state has no 'time' coordinate (its valid time)")
    state = state.sel(channel=model.channels)
    if not np.all(np.isfinite(state.values)):
        raise ValueError(f"{where}: NaN or infinite values in the initial state")
    return state


def forecast_array(values: np.ndarray, state: xr.DataArray, time_step: np.timedelta64,
                   channels: list[str] | None = None) -> xr.DataArray:
    """Wrap ``values (lead, member, channel, lat, lon)`` with the forecast coordinates
    (``channels``: the output channels, by default the state's)."""
    n = values.shape[0]
    lead = (np.arange(1, n + 1) * time_step).astype("timedelta64[ns]")
    start = np.datetime64(state["time"].values, "ns")
    return xr.DataArray(values, dims=("lead", "member", "channel", "lat", "lon"),
                        coords={"lead_time": ("lead", lead), "valid_time": ("lead", start + lead),
                                "member": state["member"].values,
                                "channel": (list(channels) if channels is not None
                                            else state["channel"].values),
                                "lat": state["lat"].values, "lon": state["lon"].values},
                        attrs=dict(state.attrs))
