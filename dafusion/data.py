"""The data layer: ERA5-like gridded files -> the configured channel stack.

Reads, lazily (dask), the layouts the field uses:

* WeatherBench-2 zarr/netCDF: long names (``temperature``), dims ``time, level,
  latitude, longitude`` (or ``lat, lon``), latitude ascending;
* CDS netCDF: short names (``t``, ``z``), int16 packing, latitude descending,
  ``valid_time``/``pressure_level`` in the newer CDS files;
* GRIB through cfgrib (the ``grib`` extra).

Every file is standardised once at the boundary: long variable names, dims
``time, level, latitude, longitude``, latitude ascending, longitude in [0, 360),
levels in hPa, values in canonical units (via :mod:`dafusion.units`). The
channel stack is an ``xarray.DataArray`` with dims ``(time, channel, lat, lon)``
in physical units.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import xarray as xr

from dafusion import units as unitconv
from dafusion.grids import AnyGrid, identify_grid
from dafusion.io import write_netcdf
from dafusion.variables import BY_SHORT, VARIABLES, Channel, parse_channels


class DataError(ValueError):
    """A data file that cannot be used as claimed; the message names the file."""


_DIM_ALIASES = {
    "lat": "latitude", "lon": "longitude",
    "pressure_level": "level", "isobaricInhPa": "level", "plev": "level",
}


# --------------------------------------------------------------------------- opening


def detect_format(path: str | Path) -> str:
    """'zarr', 'netcdf' or 'grib', from the directory layout or the magic bytes."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    if path.is_dir():
        if any((path / m).exists() for m in ("zarr.json", ".zgroup", ".zmetadata")):
            return "zarr"
        raise DataError(f"{path}: a directory that is not a zarr store")
    with open(path, "rb") as f:
        head = f.read(8)
    if head[:3] == b"CDF" or head[:8] == b"\x89HDF\r\n\x1a\n":
        return "netcdf"
    if head[:4] == b"GRIB":
        return "grib"
    raise DataError(f"{path}: not a netCDF, zarr or GRIB file (first bytes {head!r})")


def open_dataset(path: str | Path) -> xr.Dataset:
    """Open a gridded file lazily and standardise it (see module docstring)."""
    fmt = detect_format(path)
    try:
        if fmt == "zarr":
            consolidated = (Path(path) / ".zmetadata").exists()  # v2 consolidated stores
            ds = xr.open_zarr(path, chunks={}, decode_timedelta=False, consolidated=consolidated)
        elif fmt == "netcdf":
            ds = xr.open_dataset(path, chunks={}, decode_timedelta=False)
        else:
            ds = _open_grib(path)
    except DataError:
        raise
    except Exception as err:  # noqa: BLE001 - re-raised with the file named
        raise DataError(f"{path}: cannot be opened as {fmt}: {err}") from err
    if ds.attrs.get("dafusion_complete", 1) in (0, False):
        raise DataError(f"{path}: an incomplete world store (generation was interrupted); "
                        "finish it with 'cycler world generate --resume'")
    return standardise(ds, str(path))


def _open_grib(path: str | Path) -> xr.Dataset:
    try:
        import cfgrib  # noqa: F401
    except ImportError:
        raise DataError(f"{path}: GRIB needs the 'grib' extra "
                        "(pip install 'dafusion[grib]')") from None
    ds = xr.open_dataset(path, engine="cfgrib", chunks={},
                         backend_kwargs={"indexpath": ""})
    if "valid_time" in ds.coords:
        ds = ds.drop_vars(["time", "step"], errors="ignore").rename({"valid_time": "time"})
    return ds


def standardise(ds: xr.Dataset, source: str) -> xr.Dataset:
    """Names, dims, orientation and units to the system's conventions."""
    if "time" not in ds.variables and "valid_time" in ds.variables:
        ds = ds.rename({"valid_time": "time"})
    ds = ds.rename({k: v for k, v in _DIM_ALIASES.items() if k in ds.variables or k in ds.dims})
    for name in ("time", "latitude", "longitude"):
        if name not in ds.variables:
            raise DataError(f"{source}: no '{name}' coordinate (found {sorted(ds.variables)})")
    if "time" not in ds.dims:
        ds = ds.expand_dims("time")
    ds = ds.rename({k: BY_SHORT[k].name for k in ds.data_vars if k in BY_SHORT})
    ds = _orient(ds, source)
    _check_time(ds, source)
    return _to_canonical_units(ds, source)


def _orient(ds: xr.Dataset, source: str) -> xr.Dataset:
    lat = ds["latitude"].values
    if np.any(np.abs(lat) > 90):
        raise DataError(f"{source}: latitude outside [-90, 90] ({lat.min()}..{lat.max()})")
    lon = ds["longitude"].values
    if np.any(lon < -180) or np.any(lon > 360):
        raise DataError(f"{source}: longitude outside [-180, 360] ({lon.min()}..{lon.max()})")
    if np.any(lon < 0):
        ds = ds.assign_coords(longitude=np.mod(lon, 360.0))
    ds = ds.sortby(["latitude", "longitude"])
    if "level" in ds.coords:
        levels = ds["level"].values.astype(float)
        if levels.max() > 2000:  # Pa -> hPa
            ds = ds.assign_coords(level=levels / 100.0)
    return ds


def _check_time(ds: xr.Dataset, source: str) -> None:
    time = ds["time"].values
    if not np.issubdtype(time.dtype, np.datetime64):
        raise DataError(f"{source}: time coordinate is not decoded as dates "
                        f"(dtype {time.dtype}; check its 'units' attribute)")
    if time.size > 1 and not np.all(np.diff(time) > np.timedelta64(0, "s")):
        bad = int(np.argmin(np.diff(time) > np.timedelta64(0, "s")))
        raise DataError(f"{source}: time axis is not strictly increasing at index {bad + 1} "
                        f"({time[bad]} then {time[bad + 1]})")


def _to_canonical_units(ds: xr.Dataset, source: str) -> xr.Dataset:
    for name in ds.data_vars:
        if name not in VARIABLES:
            continue
        var = VARIABLES[name]
        have = ds[name].attrs.get("units")
        if have is None:
            continue  # WeatherBench files sometimes omit units: canonical by convention
        try:
            converted = unitconv.to_canonical(ds[name], have, var.units)
        except ValueError as err:
            raise DataError(f"{source}: variable '{name}': {err}") from None
        ds[name] = converted.assign_attrs({**ds[name].attrs, "units": var.units})
    return ds


# --------------------------------------------------------------------------- channels


@dataclasses.dataclass
class GriddedSource:
    """A gridded dataset seen through a channel list.

    ``stack(start, end)`` gives the lazy ``(time, channel, lat, lon)`` array in
    physical units; ``at(time)`` loads one valid time and checks it for NaNs.
    """

    path: str
    channels: list[Channel]
    ds: xr.Dataset
    grid: AnyGrid

    @classmethod
    def open(cls, path: str | Path, channel_names: list[str]) -> "GriddedSource":
        ds = open_dataset(path)
        try:
            channels = parse_channels(channel_names)
        except ValueError as err:
            raise DataError(f"{path}: {err}") from None
        try:
            grid = identify_grid(ds["latitude"].values, ds["longitude"].values)
        except ValueError as err:
            raise DataError(f"{path}: {err}") from None
        source = cls(str(path), channels, ds, grid)
        for ch in channels:
            source._field(ch)  # fail now, not at the first read
        return source

    def select(self, channel_names: list[str]) -> "GriddedSource":
        """The same data seen through another channel list (checked now)."""
        try:
            channels = parse_channels(channel_names)
        except ValueError as err:
            raise DataError(f"{self.path}: {err}") from None
        source = type(self)(self.path, channels, self.ds, self.grid)
        for ch in channels:
            source._field(ch)
        return source

    @property
    def times(self) -> np.ndarray:
        return self.ds["time"].values

    @property
    def channel_names(self) -> list[str]:
        return [c.name for c in self.channels]

    def _field(self, ch: Channel) -> xr.DataArray:
        name = ch.variable.name
        if name not in self.ds.data_vars:
            raise DataError(f"{self.path}: variable '{name}' (channel {ch.name}) not found; "
                            f"file has {sorted(self.ds.data_vars)}")
        field = self.ds[name]
        if ch.level is None:
            if "level" in field.dims:
                raise DataError(f"{self.path}: '{name}' has levels but channel "
                                f"{ch.name} is a surface channel")
            return field
        if "level" not in field.dims:
            raise DataError(f"{self.path}: '{name}' has no level dimension for {ch.name}")
        levels = field["level"].values
        if not np.any(np.isclose(levels, ch.level)):
            raise DataError(f"{self.path}: level {ch.level} hPa of '{name}' (channel "
                            f"{ch.name}) not found; levels are {levels.tolist()}")
        return field.sel(level=levels[np.isclose(levels, ch.level)][0], drop=True)

    def stack(self, start: str | np.datetime64 | None = None,
              end: str | np.datetime64 | None = None) -> xr.DataArray:
        """Lazy ``(time, channel, lat, lon)`` stack over [start, end] inclusive."""
        fields = [self._field(ch).sel(time=slice(start, end)) for ch in self.channels]
        da = xr.concat(fields, dim="channel", coords="minimal", compat="override",
                       join="override")
        da = da.assign_coords(channel=self.channel_names).transpose(
            "time", "channel", "latitude", "longitude")
        da = da.rename({"latitude": "lat", "longitude": "lon"})
        da = da.drop_vars([c for c in da.coords if c not in ("time", "channel", "lat", "lon")])
        da.attrs = {"channel_units": [c.units for c in self.channels], "source": self.path}
        return da.rename("state")

    def at(self, time: str | np.datetime64) -> xr.DataArray:
        """The ``(channel, lat, lon)`` state at one valid time, loaded, NaN-checked."""
        t = np.datetime64(time, "ns")
        times = self.times
        if not np.any(times == t):
            step = (f", step {np.diff(times[:2])[0].astype('timedelta64[h]')}"
                    if times.size > 1 else "")
            raise DataError(f"{self.path}: valid time {t} not in the data "
                            f"({times[0]} .. {times[-1]}{step})")
        state = self.stack(t, t).isel(time=0).load()
        bad = [c for c, v in zip(self.channel_names, state.values) if not np.all(np.isfinite(v))]
        if bad:
            raise DataError(f"{self.path}: NaN or infinite values at {t} in channels {bad}")
        return state


# --------------------------------------------------------------------------- inspect


def describe(source: GriddedSource, max_times: int = 64) -> str:
    """What the system sees: channels, units, grid, times, per-channel statistics.

    Statistics use at most ``max_times`` evenly spaced valid times (the line says so).
    """
    times = source.times
    idx = np.unique(np.linspace(0, times.size - 1, min(max_times, times.size)).astype(int))
    sample = source.stack().isel(time=idx)
    dims = ["time", "lat", "lon"]
    weights = xr.DataArray(source.grid.lat_weights, dims=["lat"])
    area_mean = sample.weighted(weights).mean(dims)
    stats = xr.Dataset({"min": sample.min(dims), "mean": area_mean,
                        "max": sample.max(dims)}).compute()
    mins, means, maxs = (stats[k].values for k in ("min", "mean", "max"))
    step = str(np.diff(times[:2])[0].astype("timedelta64[h]")) if times.size > 1 else "-"
    lines = [f"source   {source.path}",
             f"grid     {source.grid.name}  lat {source.grid.lat[0]:.4f}..{source.grid.lat[-1]:.4f}"
             f"  lon {source.grid.lon[0]:.4f}..{source.grid.lon[-1]:.4f}",
             f"times    {times.size}  {times[0]} .. {times[-1]}  step {step}",
             f"stats    over {idx.size} of {times.size} times (mean area-weighted)",
             f"{'channel':<8} {'units':<11} {'min':>12} {'mean':>12} {'max':>12}"]
    for ch, lo, mu, hi in zip(source.channels, mins, means, maxs):
        lines.append(f"{ch.name:<8} {ch.units:<11} {lo:12.5g} {mu:12.5g} {hi:12.5g}")
    return "\n".join(lines)


def available_channels(ds: xr.Dataset) -> list[str]:
    """Every channel name a standardised dataset can provide."""
    names = []
    for name in ds.data_vars:
        if name not in VARIABLES:
            continue
        var = VARIABLES[name]
        if "level" in ds[name].dims:
            names += [f"{var.short}{int(round(float(lev)))}" for lev in ds["level"].values]
        elif not var.surface:
            continue
        else:
            names.append(var.short)
    return names


# --------------------------------------------------------------------------- export


def export(source: GriddedSource, out: str | Path, *, start: str, end: str,
           every_hours: int, pack: bool = True, force: bool = False,
           attrs: dict[str, str] | None = None) -> Path:
    """Write a time window of the source's channels as WeatherBench-2-layout netCDF.

    ``pack`` stores int16 with per-variable ``scale_factor``/``add_offset`` (as the
    CDS does; resolution (max - min) / 65530) and zlib, for small shipped files.
    The written file is read back and compared before it takes its final name.
    Written to a temporary name and renamed, so a partial file never looks complete.
    """
    out = Path(out)
    if out.exists() and not force:
        raise FileExistsError(f"{out}: already exists; pass --force to overwrite")
    ds = source.ds.sel(time=slice(np.datetime64(start, "ns"), np.datetime64(end, "ns")))
    hours = ds["time"].values.astype("datetime64[h]").astype(np.int64)
    ds = ds.isel(time=np.flatnonzero(hours % every_hours == 0))
    if ds.sizes["time"] == 0:
        raise DataError(f"{source.path}: no times every {every_hours} h in {start} .. {end}")
    names = {c.variable.name for c in source.channels}
    levels = sorted({c.level for c in source.channels if c.level is not None})
    ds = ds[[n for n in ds.data_vars if n in names]]
    if levels:
        ds = ds.sel(level=levels)
    ds = ds.load()
    ds.attrs = {**{k: v for k, v in ds.attrs.items() if k != "dafusion_complete"},
                **(attrs or {})}
    encoding: dict[str, dict] = {"time": {"units": "hours since 1970-01-01", "dtype": "int64"}}
    for name in ds.data_vars:
        values = ds[name].values
        if not np.all(np.isfinite(values)):
            raise DataError(f"{source.path}: NaN or infinite values in '{name}'")
        enc: dict = {"zlib": True, "complevel": 9}
        if pack:
            lo, hi = float(values.min()), float(values.max())
            # packed values span +-32765, clear of the fill value -32767
            scale = (hi - lo) / 65530 if hi > lo else 1.0
            enc.update(dtype="int16", scale_factor=scale, add_offset=(hi + lo) / 2,
                       _FillValue=np.int16(-32767))
        encoding[name] = enc
    return write_netcdf(ds, out, force=force, encoding=encoding,
                        check=lambda tmp: _check_written(tmp, ds, encoding))


def _check_written(path: Path, expected: xr.Dataset, encoding: dict[str, dict]) -> None:
    """Read ``path`` back: every value within half a packing step of the original."""
    with xr.open_dataset(path) as back:
        for name in expected.data_vars:
            tol = encoding[name].get("scale_factor", 0.0) * 0.501
            err = np.abs(back[name].values - expected[name].values)
            if not np.all(err <= tol + 1e-6 * np.abs(expected[name].values)):
                path.unlink()
                raise DataError(f"{path}: '{name}' did not survive writing "
                                f"(max error {np.nanmax(err)}, NaNs: {int(np.isnan(err).sum())})")


def demo_truth_path() -> str:
    """The truth window shipped inside the package (see dafusion/demo/README.md)."""
    from importlib import resources

    path = resources.files("dafusion") / "demo" / "truth.nc"
    if not path.is_file():
        raise DataError(f"{path}: the shipped demo truth is missing from this installation")
    return str(path)
