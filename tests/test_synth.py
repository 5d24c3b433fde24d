import numpy as np
import pytest
import torch
from conftest import real_file

from dafusion.config import SynthObsConfig
from dafusion.data import GriddedSource
from dafusion.grids import EquiangularGrid
from dafusion.interp import interpolate
from dafusion.normalise import Normaliser
from dafusion.obs.igra import read_station_list
from dafusion.obs.stations import StationObs
from dafusion.obs.synth import Network, land_network, station_list_network, synthesise


def bilinear(field, grid, lat, lon):
    return interpolate(field, grid, lat, lon, "bilinear")


def test_land_network_is_seeded_on_land_and_northern_heavy():
    from global_land_mask import globe

    net = land_network(200, 0.75, seed=3)
    assert net.lat.size == 200 and np.sum(net.lat > 0) == 150
    assert np.all(globe.is_land(net.lat, np.where(net.lon > 180, net.lon - 360, net.lon)))
    again = land_network(200, 0.75, seed=3)
    assert np.array_equal(net.lat, again.lat) and np.array_equal(net.lon, again.lon)
    assert not np.array_equal(net.lat, land_network(200, 0.75, seed=4).lat)


def test_bilinear_is_exact_for_fields_linear_in_the_cell():
    grid = EquiangularGrid(32, 64)
    field = np.add.outer(2.0 * grid.lat, 0.0 * grid.lon) + 3.0  # linear in latitude
    lat = np.array([-80.0, 0.0, 33.3, 87.0])
    assert bilinear(field, grid, lat, np.array([0.0, 100.0, 359.9, 200.0])) == \
        pytest.approx(2.0 * lat + 3.0)


def test_bilinear_is_periodic_across_the_date_line():
    grid = EquiangularGrid(32, 64)
    field = np.tile(np.cos(np.deg2rad(grid.lon)), (32, 1))
    got = bilinear(field, grid, np.zeros(3), np.array([357.1875, -2.8125, 2.8125]))
    # halfway between 354.375 and 0 (cos = 0.99518 and 1): the linear mean
    expected = (np.cos(np.deg2rad(354.375)) + 1.0) / 2
    assert got == pytest.approx([expected, expected, (1.0 + np.cos(np.deg2rad(5.625))) / 2])


def test_bilinear_clamps_beyond_the_outermost_rows():
    grid = EquiangularGrid(32, 64)
    field = np.add.outer(grid.lat, np.zeros(64))
    assert bilinear(field, grid, np.array([89.9, -90.0]), np.array([10.0, 10.0])) == \
        pytest.approx([87.1875, -87.1875])


def test_synthesise_observes_the_truth_with_the_stated_noise(wb2_zarr):
    source = GriddedSource.open(wb2_zarr, ["t850", "z500", "sp"])
    net = Network(np.array(["A", "B"]), np.array([10.0, -30.0]), np.array([20.0, 300.0]))
    tiny = {"temperature": 1e-9, "geopotential": 1e-9, "surface_pressure": 1e-9}
    exact = synthesise(source, net, SynthObsConfig(error_std=tiny, method="bilinear"))
    assert len(exact) == 4 * 3 * 2  # 00 and 12 UTC on two days x three channels x two stations
    truth = bilinear(source.at("2020-01-01T12").values, source.grid, net.lat, net.lon)
    rows = exact.time == np.datetime64("2020-01-01T12", "ns")
    assert exact.value[rows] == pytest.approx(truth.ravel(), abs=1e-6)
    assert list(exact.level[rows][:2]) == [850.0, 850.0] and np.isnan(exact.level[rows][-1])
    # the default operator is the likelihood's (bicubic): the stated error is the whole error
    cubic = synthesise(source, net, SynthObsConfig(error_std=tiny))
    assert not np.allclose(cubic.value, exact.value, rtol=0, atol=1e-3)
    norm = Normaliser.fit(source.stack().load(), source.grid)
    t = np.datetime64("2020-01-01T12", "ns")
    term = StationObs.from_table(cubic, channels=["t850", "z500", "sp"], normaliser=norm,
                                 grid=source.grid, time=t, window_hours=1, method="bicubic",
                                 sigma_y=None, gamma=0.1, weight=1.0)
    state = torch.as_tensor(norm.normalise(source.stack().sel(time=t).values))[None]
    assert term.operator(state)[0].numpy() == pytest.approx(term.y.numpy(), abs=1e-5)
    cfg = SynthObsConfig(error_std={"temperature": 1.5, "geopotential": 80.0,
                                    "surface_pressure": 100.0})
    noisy = synthesise(source, net, cfg)
    assert np.array_equal(noisy.error_std[exact.variable == "geopotential"], [80.0] * 8)
    assert not np.allclose(noisy.value, exact.value)
    again = synthesise(source, net, cfg, start="2020-01-01T12", end="2020-01-01T12")
    assert again.equals(noisy.subset(noisy.time == np.datetime64("2020-01-01T12", "ns")))


def test_noise_has_the_configured_std(wb2_zarr):
    source = GriddedSource.open(wb2_zarr, ["t850"])
    n = 4000
    net = Network(np.arange(n).astype(str), np.zeros(n), np.full(n, 45.0))
    obs = synthesise(source, net, SynthObsConfig(error_std={"temperature": 2.0}, hours=[0],
                                                 method="bilinear"))
    truth = bilinear(source.at("2020-01-01T00").values, source.grid, net.lat, net.lon)[0]
    resid = obs.value[: n] - truth
    assert np.std(resid) == pytest.approx(2.0, rel=0.05) and abs(np.mean(resid)) < 0.1


def test_missing_error_std_is_named(wb2_zarr):
    source = GriddedSource.open(wb2_zarr, ["u850"])
    net = Network(np.array(["A"]), np.zeros(1), np.zeros(1))
    with pytest.raises(ValueError,
                       match=r"obs.error_std: no error std for \['u_component_of_wind'\]"):
        synthesise(source, net, SynthObsConfig(error_std={"temperature": 1.0}))


@pytest.mark.real_data
def test_real_igra2_station_list_survives_its_defects():
    stations = read_station_list(real_file("igra2", "igra2-station-list.txt"))
    assert stations.skipped["blank id"] == 2
    assert stations.skipped["missing coordinates"] > 50
    assert stations.lat.size + sum(stations.skipped.values()) == 2923
    barrow = stations.station_id == "USM00070026"
    assert stations.lat[barrow] == pytest.approx([71.2889])
    assert stations.lon[barrow] == pytest.approx([360 - 156.7833])
    net = station_list_network(str(real_file("igra2", "igra2-station-list.txt")), 100, seed=0)
    assert net.lat.size == 100 and set(net.station_id) <= set(stations.station_id)


def test_station_list_errors(tmp_path):
    path = tmp_path / "list.txt"
    path.write_text("garbage line\n\n")
    with pytest.raises(ValueError, match="list.txt: no usable station lines"):
        read_station_list(path)
