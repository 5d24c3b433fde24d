"""Forecast models: the protocol, run over every implementation, and the SFNO emulator's
arithmetic (LUCIE's normalisation and explicit Euler) with fake networks."""

import numpy as np
import pytest
import torch
import xarray as xr

import fakes
from dafusion.emulator.model import LOG_SCALE, EmulatorStats, SFNOEmulator
from dafusion.emulator.persistence import PersistenceEmulator
from dafusion.grids import EquiangularGrid, LegendreGaussGrid
from fakes import Constant

GRID = LegendreGaussGrid(16, 32)
CHANNELS = ["t850", "z500"]


def tiny_sfno(**kwargs):
    """``fakes.tiny_sfno`` with this module's two channels and two layers."""
    return fakes.tiny_sfno(**{"channels": CHANNELS, "num_layers": 2, "grid": GRID, **kwargs})


MODELS = [PersistenceEmulator(GRID, CHANNELS), tiny_sfno()]


def state(grid=GRID, channels=("z500", "t850", "sp"), members=2, value=1.0):
    data = np.full((members, len(channels)) + grid.shape, value)
    return xr.DataArray(data, dims=("member", "channel", "lat", "lon"),
                        coords={"channel": list(channels), "lat": grid.lat, "lon": grid.lon,
                                "time": np.datetime64("2020-01-01T00", "ns")})


@pytest.mark.parametrize("model", MODELS, ids=lambda m: type(m).__name__)
def test_forecast_has_the_promised_coordinates(model):
    out = model.forecast(state(), 2)
    assert out.dims == ("lead", "member", "channel", "lat", "lon")
    assert list(out["channel"].values) == model.output_channels
    assert model.output_channels[:len(model.channels)] == model.channels
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


def test_explicit_euler_with_tendency_std():
    """x_k = x_0 + k * out * std_dx (LUCIE adds the de-normalised tendency, no mean)."""
    model = tiny_sfno()
    model.net = Constant([1.0, -2.0])
    out = model.forecast(state(value=5.0), 3)
    std_dx = model.stats.tendency_std  # t850 0.5, z500 1.0
    for k in range(3):
        np.testing.assert_allclose(out.isel(lead=k).sel(channel="t850").values,
                                   5.0 + (k + 1) * 1.0 * std_dx[0], rtol=1e-6)
        np.testing.assert_allclose(out.isel(lead=k).sel(channel="z500").values,
                                   5.0 + (k + 1) * -2.0 * std_dx[1], rtol=1e-6)


def test_network_sees_normalised_inputs_and_forcing():
    seen = []

    class Spy(torch.nn.Module):
        def forward(self, x):
            seen.append(x.clone())
            return torch.zeros(x.shape[0], 3, *x.shape[2:])

    oro = np.full(GRID.shape, 250.0)
    model = tiny_sfno(diagnostics=["tp6"], forcing=["orography"], static={"orography": oro})
    model.stats.forcing_mean[:] = 50.0
    model.stats.forcing_std[:] = 100.0
    model = SFNOEmulator(model.meta, model.stats, static={"orography": oro})
    model.net = Spy()
    model.forecast(state(value=4.0), 1)
    x = seen[0]
    # t850: (4 - 1) / 2; z500: (4 - 2) / 3; orography (250 - 50) / 100
    np.testing.assert_allclose(x[:, 0].numpy(), 1.5)
    np.testing.assert_allclose(x[:, 1].numpy(), 2.0 / 3.0, rtol=1e-6)
    np.testing.assert_allclose(x[:, 2].numpy(), 2.0)


def test_diagnostics_denormalised_and_log_inverted_not_fed_back():
    model = tiny_sfno(diagnostics=["tp6", "t2m"], log=["tp6"])
    model.net = Constant([0.0, 0.0, 1.0, 1.0])
    out = model.forecast(state(value=3.0), 2)
    raw = 1.0 * 0.2 + 0.3
    np.testing.assert_allclose(out.sel(channel="tp6").values, (np.exp(raw) - 1) * LOG_SCALE,
                               rtol=1e-6)
    np.testing.assert_allclose(out.sel(channel="t2m").values, raw, rtol=1e-6)
    np.testing.assert_allclose(out.sel(channel="t850").values, 3.0)  # zero tendency


@pytest.mark.parametrize("order", ["north_to_south", "south_to_north"])
def test_latitude_order_of_the_network(order):
    class Ramp(torch.nn.Module):  # tendency = row index in the network's own order
        def forward(self, x):
            rows = torch.arange(x.shape[2], dtype=torch.float32).reshape(1, 1, -1, 1)
            return rows.expand(x.shape[0], 2, -1, x.shape[3]).clone()

    model = tiny_sfno(lat_order=order)
    model.net = Ramp()
    out = model.forecast(state(value=0.0), 1).isel(lead=0, member=0).sel(channel="z500")
    rows = np.arange(GRID.nlat)
    expected = rows[::-1] if order == "north_to_south" else rows  # our lat ascends
    np.testing.assert_allclose(out.values[:, 0], expected * model.stats.tendency_std[1])


def test_non_finite_forecast_stops_at_its_step():
    model = tiny_sfno()
    model.stats.tendency_std[:] = 1.0
    model = SFNOEmulator(model.meta, model.stats)
    model.net = Constant([1e38, 0.0])
    # float32: 1e38, 2e38, 3e38, then 4e38 overflows to inf at step 4
    with pytest.raises(FloatingPointError, match=r"non-finite at step 4 \(lead 24 h, valid "
                                                 r"2020-01-02T00:00\) in channels \['t850'\]"):
        model.forecast(state(value=0.0), 6)


def test_statistics_are_checked():
    meta = tiny_sfno().meta
    with pytest.raises(ValueError, match=r"tendency_std has values <= 0"):
        EmulatorStats(np.ones(2), np.ones(2), np.array([1.0, 0.0]), np.zeros(0), np.ones(0),
                      np.zeros(0), np.zeros(0)).check(meta, "x")
    with pytest.raises(ValueError, match=r"mean has shape \(3,\), expected \(2,\)"):
        EmulatorStats(np.ones(3), np.ones(2), np.ones(2), np.zeros(0), np.ones(0),
                      np.zeros(0), np.zeros(0)).check(meta, "x")
    with pytest.raises(ValueError, match=r"forcing \['orography'\] needs its static field"):
        tiny_sfno(forcing=["orography"])
