import numpy as np
import pytest
from click.testing import CliRunner

from dafusion.cli import main
from dafusion.obs.table import read_table


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_help_lists_the_commands():
    result = run("--help")
    assert result.exit_code == 0
    for command in ("config", "data", "obs", "world"):
        assert f"  {command} " in result.output


def test_config_errors_exit_1_with_the_key_path(tmp_path):
    result = run("config", "show", "--set", "world.layers=ten")
    assert result.exit_code == 1
    assert "Error: <defaults>: world.layers: expected int, got 'ten'" in result.output


def test_data_inspect(wb2_zarr):
    result = run("data", "inspect", wb2_zarr)
    assert result.exit_code == 0, result.output
    assert "equiangular_32x64" in result.output and "z850" in result.output
    result = run("data", "inspect", wb2_zarr, "--channels", "t850,q700")
    assert result.exit_code == 1 and "specific_humidity" in result.output


def test_data_export_then_inspect(tmp_path, wb2_zarr):
    out = tmp_path / "small.nc"
    result = run("data", "export", wb2_zarr, "--out", out, "--start", "2020-01-01",
                 "--end", "2020-01-02T00", "--every", "12", "--channels", "t850,z500,sp")
    assert result.exit_code == 0, result.output
    from dafusion.data import GriddedSource

    back = GriddedSource.open(out, ["t850", "z500", "sp"])
    assert list(back.times.astype("datetime64[h]").astype(str)) == [
        "2020-01-01T00", "2020-01-01T12", "2020-01-02T00"]
    again = run("data", "export", wb2_zarr, "--out", out, "--start", "2020-01-01",
                "--end", "2020-01-02", "--channels", "t850")
    assert again.exit_code == 1 and "already exists" in again.output


def test_obs_synth_writes_a_table_that_reads_back(tmp_path, wb2_zarr):
    out = tmp_path / "obs.nc"
    args = ["obs", "synth", "--truth", wb2_zarr, "--out", out, "--set", "obs.n_stations=20",
            "--set", "data.channels=[t850,z500,sp]"]
    result = run(*args)
    assert result.exit_code == 0, result.output
    table = read_table(out)
    assert len(table) == 4 * 3 * 20 and np.unique(table.station_id).size == 20
    # what was written is exactly what the library synthesises with that configuration
    import xarray as xr

    from dafusion.config import load_config
    from dafusion.data import GriddedSource
    from dafusion.obs.synth import land_network, synthesise

    cfg = load_config(None, ["obs.n_stations=20", "data.channels=[t850,z500,sp]"])
    network = land_network(20, cfg.obs.northern_fraction, cfg.obs.seed)
    expected = synthesise(GriddedSource.open(wb2_zarr, cfg.data.channels), network, cfg.obs)
    assert table.equals(expected)
    assert "n_stations: 20" in xr.open_dataset(out).attrs["dafusion_config"]
    again = run(*args)
    assert again.exit_code == 1 and "already exists; pass --force" in again.output
    forced = run(*args, "--force", "--set", "obs.seed=1")
    assert forced.exit_code == 0 and not read_table(out).equals(table)


def test_obs_synth_with_a_real_station_list(tmp_path, wb2_zarr):
    from conftest import real_file

    stations = real_file("igra2", "igra2-station-list.txt")
    out = tmp_path / "obs.nc"
    result = run("obs", "synth", "--truth", wb2_zarr, "--out", out, "--station-list", stations,
                 "--set", "obs.n_stations=30", "--set", "data.channels=[t500]")
    assert result.exit_code == 0, result.output
    assert np.unique(read_table(out).station_id).size == 30


@pytest.mark.parametrize("args, message", [
    (["data", "inspect", "nowhere.nc"], "nowhere.nc: no such file"),
    (["obs", "synth", "--truth", "nowhere.zarr", "--out", "x.nc"], "nowhere.zarr: no such file"),
])
def test_bad_paths(tmp_path, args, message):
    result = run(*args)
    assert result.exit_code == 1 and message in result.output


def test_data_normaliser_uses_the_training_period(tmp_path, wb2_zarr):
    from dafusion.data import GriddedSource
    from dafusion.normalise import Normaliser

    out = tmp_path / "norm.nc"
    result = run("data", "normaliser", "--data", wb2_zarr, "--out", out,
                 "--set", "data.channels=[t850,sp]", "--set", "data.train_start=2020-01-01",
                 "--set", "data.train_end=2020-01-01T18:00")
    assert result.exit_code == 0, result.output
    norm = Normaliser.load(out)
    source = GriddedSource.open(wb2_zarr, ["t850", "sp"])
    expected = Normaliser.fit(source.stack("2020-01-01", "2020-01-01T18"), source.grid)
    assert norm.channels == ("t850", "sp")
    np.testing.assert_allclose(norm.mean, expected.mean, rtol=1e-12)
    empty = run("data", "normaliser", "--data", wb2_zarr, "--out", tmp_path / "n2.nc",
                "--set", "data.train_start=1990-01-01", "--set", "data.train_end=1990-02-01")
    assert empty.exit_code == 1 and "no times in the training period" in empty.output
