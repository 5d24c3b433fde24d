"""Standardisation: every opened dataset to the system's conventions, once.

Long variable names, dims ``time, level, latitude, longitude``, one pressure level
per file or per GRIB hypercube made a ``level`` dimension, variables named like
channels (``z500``) made their variable at that level, one member of an ensemble,
latitude ascending, longitude in [0, 360), a global grid, levels in hPa, values in
canonical units (via :mod:`dafusion.units`).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from dafusion import units as unitconv
from dafusion.data.base import DataError
from dafusion.variables import BY_SHORT, VARIABLES, parse_channel

DIM_ALIASES = {
    "lat": "latitude", "lon": "longitude",
    "pressure_level": "level", "isobaricInhPa": "level", "plev": "level",
}


ENSEMBLE_DIMS = ("number", "member", "realization", "ensemble")


def levels_as_dimension(ds: xr.Dataset) -> xr.Dataset:
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


def assemble(pieces: dict[str, list[xr.DataArray]], source: str) -> xr.Dataset:
    """One variable per name, its pieces (one per level set) joined along ``level``;
    each variable remembers the levels it really has (``dafusion_levels``). Pieces on
    different grids are refused: joined, the coarser would be NaN between its points."""
    _check_one_grid(pieces, source)
    out = {}
    for name, das in pieces.items():
        if len(das) > 1 and all("level" in d.dims for d in das):
            values, counts = np.unique(np.concatenate([d["level"].values for d in das]),
                                       return_counts=True)
            if np.any(counts > 1):
                raise DataError(f"{source}: '{name}' appears twice at level(s) "
                                f"{values[counts > 1].tolist()}")
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


def _check_one_grid(pieces: dict[str, list[xr.DataArray]], source: str) -> None:
    grids: dict[tuple, list[str]] = {}
    for name, das in pieces.items():
        for da in das:
            if "latitude" not in da.coords or "longitude" not in da.coords:
                continue
            key = (tuple(np.round(da["latitude"].values, 6)),
                   tuple(np.round(da["longitude"].values, 6)))
            label = name + (f" {da['level'].values.tolist()}" if "level" in da.coords else "")
            grids.setdefault(key, []).append(label)
    if len(grids) > 1:
        shapes = "; ".join(f"{len(lat)}x{len(lon)}: {', '.join(names)}"
                           for (lat, lon), names in grids.items())
        raise DataError(f"{source}: fields on {len(grids)} grids ({shapes}); a file holds one "
                        "grid: split it (e.g. grib_copy -w Ni=360 in.grib out.grib)")


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
    return assemble(pieces, ds.encoding.get("source", "the file")).assign_attrs(ds.attrs)


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
    ds = ds.rename({k: v for k, v in DIM_ALIASES.items() if k in ds.variables or k in ds.dims})
    for name in ("time", "latitude", "longitude"):
        if name not in ds.variables:
            raise DataError(f"{source}: no '{name}' coordinate (found {sorted(ds.variables)})")
    if "time" not in ds.dims:
        ds = ds.expand_dims("time")
    ds = _select_member(ds, source, member)
    ds = _heights_as_geopotential(ds, source)
    ds = ds.rename({k: BY_SHORT[k].name for k in ds.data_vars if k in BY_SHORT})
    ds.encoding["source"] = source
    ds = _channel_named(levels_as_dimension(ds))
    ds = _orient(ds, source)
    _check_time(ds, source)
    return _to_canonical_units(ds, source)


HEIGHT_NAMES = ("gh", "geopotential_height")  # cfgrib's and the CF long name
HEIGHT_UNITS = ("m", "gpm", "metres", "meters")


def _heights_as_geopotential(ds: xr.Dataset, source: str) -> xr.Dataset:
    """Geopotential height (``gh``, in metres or gpm) becomes geopotential: its units
    say metres (unlabelled: gpm, as cfgrib's ``gh`` is), so the unit converter turns it
    into m2 s-2 with g0. A height labelled in other units is refused, as is a file with
    both geopotential and its height."""
    heights = [n for n in ds.data_vars if n in HEIGHT_NAMES]
    if not heights:
        return ds
    both = sorted(n for n in ds.data_vars if n in HEIGHT_NAMES + ("z", "geopotential"))
    if len(both) > 1:
        raise DataError(f"{source}: geopotential given twice ({both}); keep one")
    name = heights[0]
    units = str(ds[name].attrs.get("units", "gpm")).strip()
    if units not in HEIGHT_UNITS:
        raise DataError(f"{source}: '{name}' is a geopotential height but its units are "
                        f"{units!r} (expected metres: {', '.join(HEIGHT_UNITS)})")
    height = ds[name].assign_attrs(units=units)
    return ds.drop_vars(name).assign(geopotential=height)


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
