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

import contextlib
import dataclasses
from pathlib import Path
from typing import Iterator, TypeVar

import numpy as np
import xarray as xr

from dafusion import integrity
from dafusion import units as unitconv
from dafusion.grids import AnyGrid, identify_grid
from dafusion.io import write_netcdf
from dafusion.variables import BY_SHORT, VARIABLES, Channel, parse_channel, parse_channels


XarrayObject = TypeVar("XarrayObject", xr.Dataset, xr.DataArray)


class DataError(ValueError):
    """A data file that cannot be used as claimed; the message names the file."""


_DIM_ALIASES = {
    "lat": "latitude", "lon": "longitude",
    "pressure_level": "level", "isobaricInhPa": "level", "plev": "level",
}


# --------------------------------------------------------------------------- opening

ENSEMBLE_DIMS = ("number", "member", "realization", "ensemble")


def is_url(path: str | Path) -> bool:
    """An fsspec URL (``gs://``, ``s3://``, ``memory://`` ...); ``file://`` is a path."""
    text = str(path)
    return "://" in text and not text.startswith("file://")


def _local(path: str | Path) -> Path:
    text = str(path)
    return Path(text[len("file://"):] if text.startswith("file://") else text)


def detect_format(path: str | Path) -> str:
    """'zarr', 'netcdf' or 'grib', from the directory layout or the magic bytes."""
    if is_url(path):
        return _detect_remote(str(path))
    path = _local(path)
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


def _detect_remote(url: str) -> str:
    try:
        import fsspec

        fs, root = fsspec.core.url_to_fs(url)
        found = any(fs.exists(f"{root.rstrip('/')}/{m}")
                    for m in ("zarr.json", ".zgroup", ".zmetadata"))
    except ImportError as err:
        raise DataError(f"{url}: this URL needs a filesystem package ({err}); for object "
                        "storage install the 'cloud' extra (pip install 'dafusion[cloud]')"
                        ) from None
    except Exception as err:  # noqa: BLE001 - any filesystem failure, re-raised with the URL
        raise DataError(f"{url}: cannot be reached: {err}") from None
    if not found:
        raise DataError(f"{url}: not a zarr store (no zarr.json, .zgroup or .zmetadata); "
                        "only zarr is read from URLs")
    return "zarr"


def open_dataset(path: str | Path, member: int | None = None) -> xr.Dataset:
    """Open a gridded file lazily, check its integrity and standardise it (see the module
    docstring). ``member`` selects one member of an ensemble file (dims ``number``,
    ``member``, ``realization`` or ``ensemble``); an ensemble without it is an error."""
    fmt = detect_format(path)
    remote = is_url(path)
    if not remote and fmt != "zarr":
        try:
            integrity.check_file(_local(path), fmt)
        except integrity.IntegrityError as err:
            raise DataError(str(err)) from None
    try:
        with _quiet_readers():
            if fmt == "zarr":
                ds = _open_zarr(path, remote)
            elif fmt == "netcdf":
                ds = xr.open_dataset(_local(path), chunks={}, decode_timedelta=False)
            else:
                ds = _open_grib(_local(path))
    except DataError:
        raise
    except Exception as err:  # noqa: BLE001 - re-raised with the file named
        raise DataError(f"{path}: cannot be opened as {fmt}: {err}") from err
    if ds.attrs.get("dafusion_complete", 1) in (0, False):
        raise DataError(f"{path}: an incomplete world store (generation was interrupted); "
                        "finish it with 'cycler world generate --resume'")
    if fmt == "zarr" and not remote:  # remote stores: checked per window, see stack()
        _check_chunks(str(path), list(ds.variables))
    return standardise(ds, str(path), member)


def _open_zarr(path: str | Path, remote: bool) -> xr.Dataset:
    consolidated = None if remote else (_local(path) / ".zmetadata").exists()
    store = str(path) if remote else _local(path)
    return xr.open_zarr(store, chunks={}, decode_timedelta=False, consolidated=consolidated)


def _check_chunks(path: str, names: list[str], time_slice: slice | None = None) -> None:
    missing = integrity.zarr_missing_chunks(path, names, time_slice)
    if missing:
        listing = ", ".join(f"'{k}' ({n})" for k, n in sorted(missing.items()))
        raise DataError(f"{path}: chunks missing from the zarr store: {listing}; they would "
                        "read as fill values (an incomplete copy or an interrupted write)")


@contextlib.contextmanager
def _quiet_readers() -> Iterator[list[str]]:
    """Collect what cfgrib logs and the readers warn instead of printing tracebacks."""
    import logging
    import warnings

    caught: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            caught.append(record.getMessage().splitlines()[0])

    logger = logging.getLogger("cfgrib")
    handler, propagate = _Collect(), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", FutureWarning)
            yield caught
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _open_grib(path: Path) -> xr.Dataset:
    """Every hypercube of a GRIB file (cfgrib splits one per level type, and per level
    when variables differ in their levels), merged into one dataset."""
    try:
        import cfgrib
    except ImportError:
        raise DataError(f"{path}: GRIB needs the 'grib' extra "
                        "(pip install 'dafusion[grib]')") from None
    cubes = cfgrib.open_datasets(str(path), backend_kwargs={"indexpath": ""}, chunks={})
    if not cubes:
        raise DataError(f"{path}: no readable GRIB field")
    pieces: dict[str, list[xr.DataArray]] = {}
    for cube in cubes:
        if "valid_time" in cube.coords and cube["valid_time"].ndim <= 1:
            if cube["valid_time"].ndim == 1:  # valid times become the indexed time axis
                cube = cube.swap_dims({cube["valid_time"].dims[0]: "valid_time"})
            cube = cube.drop_vars(["time", "step"], errors="ignore")
            cube = cube.rename({"valid_time": "time"})
        cube = _levels_as_dimension(cube.rename(
            {k: v for k, v in _DIM_ALIASES.items() if k in cube.variables}))
        for name, da in cube.data_vars.items():
            pieces.setdefault(str(name), []).append(da)
    return _assemble(pieces, str(path))


def _levels_as_dimension(ds: xr.Dataset) -> xr.Dataset:
    """A scalar ``level`` coordinate (one pressure level per file or cube) becomes a
    dimension of length one of the pressure-level variables."""
    if "level" not in ds.coords or ds["level"].ndim != 0:
        return ds
    level = ds["level"].values[()]
    attrs = ds["level"].attrs
    ds = ds.drop_vars("level")
    for name in list(ds.data_vars):
        var = VARIABLES.get(str(name)) or BY_SHORT.get(str(name))
        if var is not None and not var.surface:
            ds[name] = ds[name].expand_dims(level=[level])
    if "level" in ds.coords:
        ds["level"].attrs = attrs
    return ds


def _assemble(pieces: dict[str, list[xr.DataArray]], source: str) -> xr.Dataset:
    """One variable per name, its pieces (one per level set) joined along ``level``;
    each variable remembers the levels it really has (``dafusion_levels``)."""
    out = {}
    for name, das in pieces.items():
        if len(das) > 1 and all("level" in d.dims for d in das):
            levels = np.concatenate([d["level"].values for d in das])
            if np.unique(levels).size != levels.size:
                raise DataError(f"{source}: '{name}' appears twice at level(s) "
                                f"{sorted(set(levels[np.unique(levels, return_counts=True)[1] > 1]))}")
            da = xr.concat(das, dim="level", coords="minimal", compat="override",
                           join="outer").sortby("level")
        elif len(das) > 1:
            raise DataError(f"{source}: '{name}' appears in {len(das)} incompatible groups "
                            "of fields (different level types or grids)")
        else:
            da = das[0]
        if "level" in da.dims:
            da.attrs["dafusion_levels"] = [float(v) for v in da["level"].values]
        out[name] = da
    try:
        return xr.merge(list(out.values()), join="outer", compat="override",
                        combine_attrs="drop_conflicts")
    except Exception as err:  # noqa: BLE001 - re-raised with the file named
        raise DataError(f"{source}: its fields do not share one grid and time axis: "
                        f"{err}") from None


def _channel_named(ds: xr.Dataset) -> xr.Dataset:
    """Variables named like channels (``z500``, ``t850``, as some WeatherBench files
    store single levels) become their variable at that level."""
    renamed: dict[str, list[xr.DataArray]] = {}
    keep = []
    for name in ds.data_vars:
        try:
            ch = parse_channel(str(name))
        except ValueError:
            keep.append(name)
            continue
        if ch.level is None or "level" in ds[name].dims:
            keep.append(name)
            continue
        da = ds[name].drop_vars("level", errors="ignore").expand_dims(level=[float(ch.level)])
        renamed.setdefault(ch.variable.name, []).append(da.rename(ch.variable.name))
    if not renamed:
        return ds
    pieces = {str(k): [ds[k]] for k in keep}
    for name, das in renamed.items():
        pieces.setdefault(name, []).extend(das)
    return _assemble(pieces, ds.encoding.get("source", "the file")).assign_attrs(ds.attrs)


def _select_member(ds: xr.Dataset, source: str, member: int | None) -> xr.Dataset:
    dims = [d for d in ENSEMBLE_DIMS if d in ds.dims]
    scalar = [d for d in ENSEMBLE_DIMS if d in ds.coords and d not in ds.dims]
    ds = ds.drop_vars(scalar)
    if not dims:
        if member is not None:
            raise DataError(f"{source}: a member ({member}) was asked for, but the file has "
                            f"no ensemble dimension ({', '.join(ENSEMBLE_DIMS)})")
        return ds
    if len(dims) > 1:
        raise DataError(f"{source}: more than one ensemble dimension: {dims}")
    dim = dims[0]
    values = ds[dim].values if dim in ds.coords else np.arange(ds.sizes[dim])
    if member is None:
        if ds.sizes[dim] == 1:
            return ds.isel({dim: 0}, drop=True)
        raise DataError(f"{source}: an ensemble of {ds.sizes[dim]} members (dimension "
                        f"'{dim}', values {values.tolist()}); choose one with --member N "
                        "(data.member in a configuration)")
    if member not in values.tolist():
        raise DataError(f"{source}: member {member} not in dimension '{dim}' "
                        f"(values {values.tolist()})")
    return ds.isel({dim: int(np.flatnonzero(values == member)[0])}, drop=True)


def standardise(ds: xr.Dataset, source: str, member: int | None = None) -> xr.Dataset:
    """Names, dims, orientation and units to the system's conventions."""
    if "time" not in ds.variables and "valid_time" in ds.variables:
        ds = ds.rename({"valid_time": "time"})
    ds = ds.rename({k: v for k, v in _DIM_ALIASES.items() if k in ds.variables or k in ds.dims})
    for name in ("time", "latitude", "longitude"):
        if name not in ds.variables:
            raise DataError(f"{source}: no '{name}' coordinate (found {sorted(ds.variables)})")
    if "time" not in ds.dims:
        ds = ds.expand_dims("time")
    ds = _select_member(ds, source, member)
    ds = ds.rename({k: BY_SHORT[k].name for k in ds.data_vars if k in BY_SHORT})
    ds.encoding["source"] = source
    ds = _channel_named(_levels_as_dimension(ds))
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
    _check_global(lat, lon, source)
    if np.any(lon < 0):
        ds = ds.assign_coords(longitude=np.mod(lon, 360.0))
    ds = ds.sortby(["latitude", "longitude"])
    if "level" in ds.coords and ds["level"].size:
        levels = ds["level"].values.astype(float)
        if levels.max() > 2000:  # Pa -> hPa
            ds = ds.assign_coords(level=levels / 100.0)
            for name in ds.data_vars:
                if "dafusion_levels" in ds[name].attrs:
                    ds[name].attrs["dafusion_levels"] = [
                        v / 100.0 for v in ds[name].attrs["dafusion_levels"]]
    return ds


def _check_global(lat: np.ndarray, lon: np.ndarray, source: str) -> None:
    """The system analyses the whole sphere: a regional box is refused as such."""
    if lat.size < 2 or lon.size < 2:
        raise DataError(f"{source}: {lat.size} latitude(s) x {lon.size} longitude(s) is not "
                        "a global grid")
    dlat = float(np.median(np.abs(np.diff(lat))))
    dlon = float(np.median(np.abs(np.diff(lon))))
    lat_span = float(lat.max() - lat.min())
    lon_cover = dlon * lon.size
    if lat_span < 180 - 2.5 * dlat or abs(lon_cover - 360) > 0.5 * dlon:
        raise DataError(f"{source}: not a global grid: latitudes {lat.min():g}..{lat.max():g}, "
                        f"longitudes {lon.min():g}..{lon.max():g} ({lon.size} points, step "
                        f"{dlon:g} deg); the analysis needs global fields")


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
    def open(cls, path: str | Path, channel_names: list[str],
             member: int | None = None) -> "GriddedSource":
        """Open ``path`` (a file, a zarr store or an fsspec URL of one) for these channels;
        ``member`` selects one member of an ensemble file."""
        ds = open_dataset(path, member)
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
            raise DataError(f"{self.path}: '{name}' carries no pressure level (no level "
                            f"dimension or coordinate, and not named like '{ch.name}'), "
                            f"so it cannot serve channel {ch.name}")
        levels = np.asarray(field.attrs.get("dafusion_levels", field["level"].values))
        if not np.any(np.isclose(levels, ch.level)):
            raise DataError(f"{self.path}: level {ch.level} hPa of '{name}' (channel "
                            f"{ch.name}) not found; levels are {levels.tolist()}")
        return field.sel(level=levels[np.isclose(levels, ch.level)][0], drop=True)

    def stack(self, start: str | np.datetime64 | None = None,
              end: str | np.datetime64 | None = None) -> xr.DataArray:
        """Lazy ``(time, channel, lat, lon)`` stack over [start, end] inclusive."""
        fields = [self._field(ch).sel(time=slice(start, end)) for ch in self.channels]
        if is_url(self.path):  # local stores were checked whole at open
            self._check_remote_chunks(start, end)
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
        state = load(self.stack(t, t).isel(time=0), self.path)
        bad = [c for c, v in zip(self.channel_names, state.values) if not np.all(np.isfinite(v))]
        if bad:
            raise DataError(f"{self.path}: NaN or infinite values at {t} in channels {bad}")
        self.check_plausible(state.values, f"at {t}")
        return state

    def check_plausible(self, values: np.ndarray, where: str) -> None:
        """``values (..., channel, lat, lon)`` within each variable's physically possible
        range (:attr:`Variable.bounds`): a damaged or mislabelled file fails here."""
        for k, ch in enumerate(self.channels):
            lo, hi = ch.variable.bounds
            field = values[..., k, :, :]
            if field.min() < lo or field.max() > hi:
                raise DataError(f"{self.path}: {ch.name} {where} spans {field.min():.6g}.."
                                f"{field.max():.6g} {ch.units}, outside the possible "
                                f"{lo:g}..{hi:g} (a damaged file, or wrong units)")

    def _check_remote_chunks(self, start: str | np.datetime64 | None,
                             end: str | np.datetime64 | None) -> None:
        times = self.times
        lo = 0 if start is None else int(np.searchsorted(times, np.datetime64(start, "ns")))
        hi = times.size if end is None else int(
            np.searchsorted(times, np.datetime64(end, "ns"), side="right"))
        names = {n for ch in self.channels
                 for n in (ch.variable.name, ch.variable.short, ch.name)}
        _check_chunks(self.path, sorted(names), slice(lo, hi))


def load(obj: XarrayObject, path: str) -> XarrayObject:
    """Read lazily opened values now; a reader's failure (a damaged message or chunk)
    becomes a DataError naming the file."""
    try:
        with _quiet_readers():
            return obj.load()
    except Exception as err:  # noqa: BLE001 - any reader failure, re-raised with the file
        raise DataError(f"{path}: cannot read its values ({type(err).__name__}: {err}); "
                        "the file is damaged") from None


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
    stats = load(xr.Dataset({"min": sample.min(dims), "mean": area_mean,
                             "max": sample.max(dims)}), source.path)
    mins, means, maxs = (stats[k].values for k in ("min", "mean", "max"))
    bad = [c for c, lo, hi in zip(source.channel_names, mins, maxs)
           if not (np.isfinite(lo) and np.isfinite(hi))]
    if bad:
        raise DataError(f"{source.path}: NaN or infinite values in channels {bad}")
    source.check_plausible(np.stack([mins, maxs])[..., None, None], "over the sampled times")
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
    """Every channel name a standardised dataset can provide (a level that a variable
    lacks, stored as NaN as WeatherBench 2 does, is left out: judged at the first time)."""
    names = []
    for name in ds.data_vars:
        if name not in VARIABLES:
            continue
        var = VARIABLES[name]
        if "level" in ds[name].dims:
            levels = ds[name].attrs.get("dafusion_levels", ds["level"].values)
            first = ds[name].isel(time=0).sel(level=levels)
            present = load(first.notnull().any([d for d in first.dims if d != "level"]),
                           ds.encoding.get("source", "the dataset")).values
            names += [f"{var.short}{int(round(float(lev)))}"
                      for lev, ok in zip(levels, np.atleast_1d(present)) if ok]
        elif var.surface:
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
    ds = load(ds, source.path)
    window = type(source)(source.path, source.channels, ds, source.grid).stack().values
    bad = [c for c, v in zip(source.channel_names, np.moveaxis(window, 1, 0))
           if not np.all(np.isfinite(v))]
    if bad:
        raise DataError(f"{source.path}: NaN or infinite values in channels {bad}")
    source.check_plausible(window, f"in {start} .. {end}")
    ds.attrs = {**{k: v for k, v in ds.attrs.items() if k != "dafusion_complete"},
                **(attrs or {})}
    encoding: dict[str, dict] = {"time": {"units": "hours since 1970-01-01", "dtype": "int64"}}
    for name in ds.data_vars:
        ds[name].attrs.pop("dafusion_levels", None)  # levels a variable lacks stay NaN
        values = ds[name].values
        enc: dict = {"zlib": True, "complevel": 9}
        if pack:
            lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
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
            want = expected[name].values
            err = np.abs(back[name].values - want)
            same_nan = np.isnan(want) & np.isnan(back[name].values)
            if not np.all(same_nan | (err <= tol + 1e-6 * np.abs(want))):
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
