import dask.array
import numpy as np
import pytest
import xarray as xr
from conftest import analytic_fields, real_file

from dafusion.data import DataError, GriddedSource, available_channels, describe, open_dataset
from dafusion.grids import EquiangularGrid

CHANNELS = ["t850", "t500", "u850", "v500", "z500", "sp"]
ERA5 = ("era5", "era5_an_t_z_500_850hPa_1deg_global_2007010112")


def _expected(time_index: int) -> np.ndarray:
    grid = EquiangularGrid(32, 64)
    times = np.datetime64("2020-01-01T00", "ns") + np.arange(8) * np.timedelta64(6, "h")
    f = analytic_fields(times, grid, [500, 850])
    return np.stack([f["temperature"][time_index, 1], f["temperature"][time_index, 0],
                     f["u_component_of_wind"][time_index, 1],
                     f["v_component_of_wind"][time_index, 0],
                     f["geopotential"][time_index, 0], f["surface_pressure"][time_index]])


@pytest.mark.parametrize("fixture", ["wb2_zarr", "wb2_netcdf", "cds_netcdf"])
def test_layouts_give_the_same_channel_stack(request, fixture):
    source = GriddedSource.open(request.getfixturevalue(fixture), CHANNELS)
    assert source.grid == EquiangularGrid(32, 64)
    state = source.at("2020-01-01T06")
    assert state.dims == ("channel", "lat", "lon")
    assert list(state["channel"].values) == CHANNELS
    assert np.all(np.diff(state["lat"].values) > 0)
    expected = _expected(1)
    if fixture == "cds_netcdf":  # int16 packing: half a step of (variable range) / 65000
        ds = request.getfixturevalue("wb2_dataset")
        names = ["temperature", "temperature", "u_component_of_wind", "v_component_of_wind",
                 "geopotential", "surface_pressure"]
        half_step = np.array([float(ds[n].max() - ds[n].min()) / 65000 / 2 for n in names])
        float32_eps = np.abs(expected).max(axis=(1, 2)) * 2.0**-23
        error = np.abs(state.values - expected).max(axis=(1, 2))
        assert np.all(error <= half_step + 2 * float32_eps)
    else:
        np.testing.assert_allclose(state.values, expected, rtol=1e-6)


def test_stack_is_lazy_and_windowed(wb2_zarr):
    source = GriddedSource.open(wb2_zarr, CHANNELS)
    stack = source.stack("2020-01-01T06", "2020-01-01T18")
    assert isinstance(stack.data, dask.array.Array)
    assert stack.sizes == {"time": 3, "channel": 6, "lat": 32, "lon": 64}
    assert stack.attrs["channel_units"][0] == "K"


def test_lat_lon_dim_names_are_accepted(tmp_path, wb2_dataset):
    path = tmp_path / "latlon.nc"
    wb2_dataset.rename({"latitude": "lat", "longitude": "lon"}).to_netcdf(path)
    np.testing.assert_allclose(GriddedSource.open(path, CHANNELS).at("2020-01-01T06").values,
                               _expected(1), rtol=1e-6)


def test_geopotential_height_in_metres_is_converted(tmp_path, wb2_dataset):
    ds = wb2_dataset.copy()
    ds["geopotential"] = (ds["geopotential"] / 9.80665).assign_attrs(units="m")
    path = tmp_path / "gpm.nc"
    ds.to_netcdf(path)
    z500 = GriddedSource.open(path, ["z500"]).at("2020-01-01T06").values[0]
    np.testing.assert_allclose(z500, _expected(1)[4], rtol=1e-6)


@pytest.mark.parametrize("channels, message", [
    (["q850"], "variable 'specific_humidity' \\(channel q850\\) not found"),
    (["t700"], "level 700 hPa of 'temperature' \\(channel t700\\) not found; levels are"),
    (["bogus"], "unknown channel 'bogus'"),
])
def test_missing_channels_are_clear_errors(wb2_zarr, channels, message):
    with pytest.raises(DataError, match=message):
        GriddedSource.open(wb2_zarr, channels)


def test_missing_time_is_a_clear_error(wb2_zarr):
    source = GriddedSource.open(wb2_zarr, CHANNELS)
    with pytest.raises(DataError, match="valid time 2020-01-05T00:00:00.000000000 not in the data "
                                        r"\(2020-01-01T00.* step 6 h\)"):
        source.at("2020-01-05")


def test_nans_are_detected_at_read(tmp_path, wb2_dataset):
    ds = wb2_dataset.copy(deep=True)
    ds["temperature"][2, 0, 5, 5] = np.nan
    path = tmp_path / "nan.nc"
    ds.to_netcdf(path)
    source = GriddedSource.open(path, CHANNELS)
    source.at("2020-01-01T06")  # clean time is fine
    with pytest.raises(DataError,
                       match=r"nan.nc: NaN or infinite values at 2020-01-01T12.* \['t500'\]"):
        source.at("2020-01-01T12")


def test_non_monotonic_time(tmp_path, wb2_dataset):
    path = tmp_path / "shuffled.nc"
    wb2_dataset.isel(time=[0, 2, 1, 3]).to_netcdf(path)
    with pytest.raises(DataError,
                       match="shuffled.nc: time axis is not strictly increasing at index 2"):
        open_dataset(path)


def test_out_of_range_coordinates(tmp_path, wb2_dataset):
    path = tmp_path / "lat.nc"
    wb2_dataset.assign_coords(latitude=wb2_dataset.latitude * 2).to_netcdf(path)
    with pytest.raises(DataError, match="lat.nc: latitude outside"):
        open_dataset(path)


def test_not_a_data_file(tmp_path):
    path = tmp_path / "notes.nc"
    path.write_text("hello")
    with pytest.raises(DataError, match="notes.nc: not a netCDF, zarr or GRIB file"):
        open_dataset(path)
    with pytest.raises(DataError, match="no such file"):
        open_dataset(tmp_path / "absent.nc")
    (tmp_path / "dir").mkdir()
    with pytest.raises(DataError, match="a directory that is not a zarr store"):
        open_dataset(tmp_path / "dir")


def test_incomplete_world_store_is_refused(tmp_path, wb2_dataset):
    path = tmp_path / "partial.zarr"
    wb2_dataset.assign_attrs(dafusion_complete=0).to_zarr(path)
    with pytest.raises(DataError, match="incomplete world store"):
        open_dataset(path)


def test_describe_and_available_channels(wb2_zarr):
    ds = open_dataset(wb2_zarr)
    assert sorted(available_channels(ds)) == sorted(
        ["t500", "t850", "z500", "z850", "u500", "u850", "v500", "v850", "sp"])
    text = describe(GriddedSource.open(wb2_zarr, ["t850", "sp"]))
    assert "equiangular_32x64" in text and "  step 6 h\n" in text
    line = [ln for ln in text.splitlines() if ln.startswith("sp ")][0]
    assert line.split()[1] == "Pa"


@pytest.mark.real_data
def test_real_era5_netcdf_in_physical_units():
    source = GriddedSource.open(real_file(*ERA5[:1], ERA5[1] + ".nc"),
                                ["t850", "t500", "z850", "z500"])
    assert source.grid == EquiangularGrid(181, 360, poles=True)
    state = source.at("2007-01-01T12")
    t850, t500, z850, z500 = state.values
    assert 230 < t850.min() and t850.max() < 310  # K, not degC or packed ints
    assert 45000 < z500.min() and z500.max() < 60000  # m2 s-2, not metres
    assert 8000 < z850.min() and z850.max() < 17000
    assert np.all(t500 < t850 + 5)
    assert state["lat"].values[0] == -90.0  # flipped from the file's 90 -> -90
    # The file's first row is the North Pole: a single value along the row
    assert np.ptp(t850[-1]) < 1e-3


@pytest.mark.real_data
def test_real_era5_grib_matches_netcdf():
    pytest.importorskip("cfgrib", reason="GRIB needs the 'grib' extra")
    channels = ["t850", "t500", "z850", "z500"]
    nc = GriddedSource.open(real_file(ERA5[0], ERA5[1] + ".nc"), channels).at("2007-01-01T12")
    grib = GriddedSource.open(real_file(ERA5[0], ERA5[1] + ".grib"), channels).at("2007-01-01T12")
    diff = np.abs(nc.values - grib.values).max(axis=(1, 2))
    assert np.all(diff[:2] < 7e-4)  # K: the netCDF's int16 packing (README: 6e-4)
    assert np.all(diff[2:] < 0.5)  # m2 s-2 (README: 0.4)


def test_packed_export_keeps_extremes_and_resolution(tmp_path, wb2_zarr):
    from dafusion.data import export

    source = GriddedSource.open(wb2_zarr, CHANNELS)
    out = export(source, tmp_path / "packed.nc", start="2020-01-01", end="2020-01-02T18",
                 every_hours=6)
    back = GriddedSource.open(out, CHANNELS).stack().values
    original = source.stack().values
    assert np.all(np.isfinite(back))  # the extremes must not collide with the fill value
    ds = xr.open_dataset(out)
    span = {n: float(source.ds[n].max() - source.ds[n].min()) for n in ds.data_vars}
    for name in ds.data_vars:  # the packing step is (variable range) / 65530
        assert ds[name].encoding["scale_factor"] == pytest.approx(span[name] / 65530, rel=1e-6)
    half_step = np.array([span[c.variable.name] / 65530 / 2 for c in source.channels])
    error = np.abs(back - original).max(axis=(0, 2, 3))
    assert original.dtype == np.float32  # packed exactly: within half a step of the data
    assert np.all(error <= half_step * (1 + 1e-9)), error / half_step
    with pytest.raises(FileExistsError):
        export(source, out, start="2020-01-01", end="2020-01-02", every_hours=6)
