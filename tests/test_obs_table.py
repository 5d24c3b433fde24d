import numpy as np
import pytest

from dafusion.obs.table import ObservationTable, ObsTableError, read_table, write_table


def make_table(n: int = 6) -> ObservationTable:
    return ObservationTable(
        time=np.datetime64("2020-01-01T00", "ns") + np.arange(n) * np.timedelta64(12, "h"),
        lat=np.linspace(-80, 80, n), lon=np.linspace(-170, 350, n),
        level=[850.0, 500.0, np.nan, 850.0, 500.0, np.nan][:n],
        variable=["temperature", "geopotential", "surface_pressure"] * (n // 3),
        value=np.linspace(200, 300, n), error_std=np.ones(n),
        station_id=[f"S{i}" for i in range(n)], source=["synthetic"] * n,
        qc=np.zeros(n, dtype=np.int8))


def test_write_read_identical(tmp_path):
    table = make_table()
    assert table.lon.min() >= 0 and table.lon[0] == 190.0  # -170 -> 190
    write_table(table, tmp_path / "obs.nc")
    back = read_table(tmp_path / "obs.nc")
    assert back.equals(table)
    assert back.variable.dtype.kind == "U" and back.qc.dtype == np.int8


def test_no_silent_overwrite(tmp_path):
    write_table(make_table(), tmp_path / "obs.nc")
    with pytest.raises(FileExistsError, match="pass --force"):
        write_table(make_table(3), tmp_path / "obs.nc")
    assert len(read_table(tmp_path / "obs.nc")) == 6
    write_table(make_table(3), tmp_path / "obs.nc", force=True)
    assert len(read_table(tmp_path / "obs.nc")) == 3


@pytest.mark.parametrize("column, value, message", [
    ("lat", 91.0, "column lat, row 1: invalid value 91.0"),
    ("value", np.nan, "column value, row 1: invalid value nan"),
    ("error_std", 0.0, "column error_std, row 1"),
    ("variable", "temprature", "column variable, row 1: invalid value 'temprature'"),
    ("level", np.nan, "column level, row 1: invalid value nan \\(NaN for surface"),
    ("qc", 9, "column qc, row 1"),
])
def test_validation_names_column_and_row(tmp_path, column, value, message):
    table = make_table()
    getattr(table, column)[1] = value
    with pytest.raises(ObsTableError, match=message):
        write_table(table, tmp_path / "bad.nc")
    assert not (tmp_path / "bad.nc").exists()


def test_surface_level_must_be_nan(tmp_path):
    table = make_table()
    table.level[2] = 1000.0
    with pytest.raises(ObsTableError, match="column level, row 2"):
        write_table(table, tmp_path / "bad.nc")


def test_reading_a_foreign_file(tmp_path):
    import xarray as xr

    xr.Dataset({"x": ("obs", [1.0])}).to_netcdf(tmp_path / "other.nc")
    with pytest.raises(ObsTableError, match="other.nc: not an observation table, lacks columns"):
        read_table(tmp_path / "other.nc")
    (tmp_path / "text.nc").write_text("nope")
    with pytest.raises(ObsTableError, match="text.nc: not a readable netCDF"):
        read_table(tmp_path / "text.nc")


def test_window_and_concat():
    table = make_table()
    win = table.window(np.datetime64("2020-01-02T00"), np.timedelta64(12, "h"))
    assert list(win.station_id) == ["S1", "S2", "S3"]
    both = ObservationTable.concat([win, win])
    assert len(both) == 6 and both.subset(np.arange(6) < 3).equals(win)
