"""Shared fixtures: small gridded files in the layouts the data layer reads, and the
files of a tiny cycle (``fakes``: truth, prior and emulator checkpoints, made once per
session by ``fakes.setup``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from dafusion.grids import EquiangularGrid

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


def real_file(*parts: str) -> Path:
    """A file of the shared real-data samples, or skip with the reason."""
    path = REAL.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real-data sample {'/'.join(parts)} absent (../shared/data/real is "
                    "only present in the project's development checkout)")
    return path


def analytic_fields(times: np.ndarray, grid: EquiangularGrid, levels: list[int]) -> dict:
    """Smooth, exactly known fields: value = base + amplitude * sin(lat) * cos(lon) + t."""
    lat = np.deg2rad(grid.lat)[:, None]
    lon = np.deg2rad(grid.lon)[None, :]
    hours = ((times - times[0]) / np.timedelta64(1, "h")).astype(float)
    pattern = np.sin(lat) * np.cos(lon)
    out = {}
    bases = {"temperature": (250.0, 20.0), "geopotential": (50000.0, 3000.0),
             "u_component_of_wind": (5.0, 10.0), "v_component_of_wind": (0.0, 5.0)}
    for name, (base, amp) in bases.items():
        lev = 0.5 + np.asarray(levels, float)[None, :, None, None] / 1000.0
        if name == "geopotential":  # hydrostatic: R * 260 K * ln(1000 hPa / p), 500 ~ 51,700
            lev = 287.0 * 260.0 * np.log(1000.0 / np.asarray(levels, float))[
                None, :, None, None] / base
        out[name] = (base * lev + amp * pattern[None, None] + hours[:, None, None, None]
                     * 0.01).astype(np.float32)
    out["surface_pressure"] = (100000.0 + 500.0 * pattern[None] + 0 * hours[:, None, None]
                               ).astype(np.float32)
    return out


@pytest.fixture(scope="session")
def fakes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """The folder of a tiny cycle's files and the ``--set`` overrides that use them
    (read only: tests write their runs elsewhere)."""
    import fakes as cycle_fakes

    tmp = tmp_path_factory.mktemp("fakes")
    return tmp, cycle_fakes.setup(tmp)


@pytest.fixture
def wb2_dataset() -> xr.Dataset:
    """A WeatherBench-2-layout dataset, 32x64, 6-hourly over two days."""
    grid = EquiangularGrid(32, 64)
    times = np.datetime64("2020-01-01T00", "ns") + np.arange(8) * np.timedelta64(6, "h")
    levels = [500, 850]
    fields = analytic_fields(times, grid, levels)
    units = {"temperature": "K", "geopotential": "m**2 s**-2",
             "u_component_of_wind": "m s**-1", "v_component_of_wind": "m s**-1"}
    data = {k: (("time", "level", "latitude", "longitude"), fields[k], {"units": u})
            for k, u in units.items()}
    data["surface_pressure"] = (("time", "latitude", "longitude"),
                                fields["surface_pressure"], {"units": "Pa"})
    return xr.Dataset(data, coords={"time": times, "level": levels,
                                    "latitude": grid.lat, "longitude": grid.lon})


@pytest.fixture
def wb2_zarr(tmp_path: Path, wb2_dataset: xr.Dataset) -> Path:
    path = tmp_path / "wb2.zarr"
    wb2_dataset.to_zarr(path)
    return path


@pytest.fixture
def wb2_netcdf(tmp_path: Path, wb2_dataset: xr.Dataset) -> Path:
    path = tmp_path / "wb2.nc"
    wb2_dataset.to_netcdf(path)
    return path


@pytest.fixture
def cds_netcdf(tmp_path: Path, wb2_dataset: xr.Dataset) -> Path:
    """The same data as the CDS writes it: short names, int16 packing, latitude
    descending, ``valid_time``/``pressure_level``, longitude -180..180."""
    ds = wb2_dataset.rename({"temperature": "t", "geopotential": "z",
                             "u_component_of_wind": "u", "v_component_of_wind": "v",
                             "surface_pressure": "sp", "time": "valid_time",
                             "level": "pressure_level"})
    ds = ds.isel(latitude=slice(None, None, -1))
    ds = ds.assign_coords(longitude=((ds.longitude + 180) % 360) - 180).sortby("longitude")
    encoding = {}
    for name in ("t", "z", "u", "v", "sp"):
        lo, hi = float(ds[name].min()), float(ds[name].max())
        encoding[name] = {"dtype": "int16", "scale_factor": (hi - lo) / 65000,
                          "add_offset": (hi + lo) / 2, "_FillValue": np.int16(-32767)}
    path = tmp_path / "cds.nc"
    ds.to_netcdf(path, encoding=encoding)
    return path
