"""Forecast models: the protocol, run over every implementation."""

import numpy as np
import pytest
import xarray as xr

from dafusion.emulator.persistence import PersistenceEmulator
from dafusion.grids import EquiangularGrid, LegendreGaussGrid

GRID = LegendreGaussGrid(16, 32)
CHANNELS = ["t850", "z500"]
MODELS = [PersistenceEmulator(GRID, CHANNELS)]


def state(grid=GRID, channels=("z500", "t850", "sp"), members=2, value=1.0):
    data = np.full((members, len(channels)) + grid.shape, value)
    return xr.DataArray(data, dims=("member", "channel", "lat", "lon"),
                        coords={"channel": list(channels), "lat": grid.lat, "lon": grid.lon,
                                "time": np.datetime64("2020-01-01T00", "ns")})


@pytest.mark.parametrize("model", MODELS, ids=lambda m: type(m).__name__)
def test_forecast_has_the_promised_coordinates(model):
    out = model.forecast(state(), 2)
    assert out.dims == ("lead", "member", "channel", "lat", "lon")
    assert list(out["channel"].values) == model.channels  # reordered, extra dropped
    assert list(out["valid_time"].values.astype("datetime64[h]").astype(str)) == [
        "2020-01-01T06", "2020-01-01T12"]
    assert np.all(out["lead_time"].values == np.array([6, 12], "timedelta64[h]"))
    single = model.forecast(state().isel(member=0), 1)
    assert single.sizes["member"] == 1


@pytest.mark.parametrize("model", MODELS, ids=lambda m: type(m).__name__)
def test_bad_states_are_refused(model):
    with pytest.raises(ValueError, match="state on equiangular_32x64, the model runs on "
                                         "legendre_gauss_16x32"):
        model.forecast(state(grid=EquiangularGrid(32, 64)), 1)
    with pytest.raises(ValueError, match=r"lacks channels \['t850'\]"):
        model.forecast(state(channels=("z500",)), 1)
    with pytest.raises(ValueError, match="NaN or infinite values in the initial state"):
        model.forecast(state(value=np.nan), 1)
    with pytest.raises(ValueError, match="no 'time' coordinate"):
        model.forecast(state().drop_vars("time"), 1)


def test_persistence_repeats_the_state():
    s = state()
    s[0, 1] = 7.0
    out = PersistenceEmulator(GRID, CHANNELS).forecast(s, 3)
    assert np.all(out.sel(channel="t850").isel(member=0).values == 7.0)
    assert np.all(out.sel(channel="t850").isel(member=1).values == 1.0)
