"""Writing states: channel stacks -> CF netCDF in the WeatherBench-2 layout.

A state ``(member, channel, lat, lon)`` in physical units becomes one variable
per physical quantity (``temperature(member, level, latitude, longitude)``,
``surface_pressure(member, latitude, longitude)``) with CF ``units``,
``standard_name`` and ``long_name``; files are written under a temporary name
and renamed, so a partial file never looks complete.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import xarray as xr

from dafusion.grids import AnyGrid
from dafusion.variables import parse_channels


def state_dataset(values: np.ndarray, channels: list[str], grid: AnyGrid, *,
                  time: np.datetime64 | None = None, attrs: dict | None = None) -> xr.Dataset:
    """``values (member, channel, lat, lon)`` -> a CF dataset; see module docstring."""
    values = np.asarray(values)
    parsed = parse_channels(channels)
    if values.ndim != 4 or values.shape[1:] != (len(channels),) + grid.shape:
        raise ValueError(f"state shape {values.shape} is not (member, {len(channels)}, "
                         f"{grid.shape[0]}, {grid.shape[1]})")
    coords: dict = {"member": np.arange(values.shape[0]),
                    "latitude": ("latitude", grid.lat, {"units": "degrees_north",
                                                        "standard_name": "latitude"}),
                    "longitude": ("longitude", grid.lon, {"units": "degrees_east",
                                                          "standard_name": "longitude"})}
    levels = sorted({c.level for c in parsed if c.level is not None}, reverse=True)
    if levels:
        coords["level"] = ("level", levels, {"units": "hPa", "positive": "down"})
    data: dict = {}
    for var in dict.fromkeys(c.variable for c in parsed):
        meta = {"units": var.units, "standard_name": var.standard_name,
                "long_name": var.name.replace("_", " ")}
        if var.surface:
            i = next(i for i, c in enumerate(parsed) if c.variable == var)
            data[var.name] = (("member", "latitude", "longitude"), values[:, i], meta)
            continue
        field = np.full((values.shape[0], len(levels)) + grid.shape, np.nan, values.dtype)
        for i, c in enumerate(parsed):  # levels a variable lacks stay NaN (WeatherBench 2 too)
            if c.variable == var:
                field[:, levels.index(c.level)] = values[:, i]
        data[var.name] = (("member", "level", "latitude", "longitude"), field, meta)
    ds = xr.Dataset(data, coords=coords, attrs={"Conventions": "CF-1.8", **(attrs or {})})
    if time is not None:
        ds = ds.assign_coords(time=np.datetime64(time, "ns"))
    return ds


def forecast_dataset(fc: xr.DataArray, grid: AnyGrid, attrs: dict | None = None) -> xr.Dataset:
    """A forecast ``(lead, member, channel, lat, lon)`` (``dafusion.emulator.base``) as a CF
    dataset: dims ``(lead_time, member, [level], latitude, longitude)``, coordinates
    ``lead_time`` (timedelta), ``valid_time(lead_time)`` and the initial ``time``."""
    init = fc["valid_time"].values[0] - fc["lead_time"].values[0]
    leads = [state_dataset(fc.isel(lead=k).values, [str(c) for c in fc["channel"].values],
                           grid) for k in range(fc.sizes["lead"])]
    ds = xr.concat(leads, dim="lead_time")
    ds = ds.assign_coords(lead_time=("lead_time", fc["lead_time"].values),
                          valid_time=("lead_time", fc["valid_time"].values),
                          time=np.datetime64(init, "ns"))
    ds["lead_time"].attrs["long_name"] = "time since the initial state"
    ds["valid_time"].attrs["long_name"] = "valid time"
    ds["time"].attrs["long_name"] = "valid time of the initial state"
    ds.attrs.update({"Conventions": "CF-1.8", **(attrs or {})})
    return ds


def atomic_write(path: str | Path, write: Callable[[Path], None], *,
                 check: Callable[[Path], None] | None = None) -> Path:
    """The one atomic writer: ``write(tmp)`` fills ``<path>.partial``, ``check(tmp)``
    may refuse it, then it is renamed onto ``path``. A reader sees the old file or the
    new one, never a partial one (the rename is atomic on one file system)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    try:
        write(tmp)
    except Exception as err:  # noqa: BLE001 - a full disk shows as 'NetCDF: HDF error' etc.
        tmp.unlink(missing_ok=True)
        raise WriteError(_write_failure(path, err)) from err
    if check is not None:
        check(tmp)
    os.replace(tmp, path)
    return path


class WriteError(OSError):
    """A file that could not be written; what was there before is unchanged."""


def _write_failure(path: Path, err: Exception) -> str:
    try:
        free_bytes: float | None = shutil.disk_usage(path.parent).free
    except OSError:
        free_bytes = None
    free = ("free space unknown" if free_bytes is None
            else f"{free_bytes / 1e6:.0f} MB free on its disk")
    reason = getattr(err, "strerror", None) or (str(err).splitlines() or [type(err).__name__])[0]
    full = getattr(err, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or (
        free_bytes is not None and free_bytes < FULL_BELOW)
    if full:  # libraries report a full disk in their own words ('HDF error', 'Permission')
        return (f"{path}: could not be written: its disk is full ({free}; the writer said "
                f"'{reason}'); free some space and resume; the previous version, if any, is "
                "unchanged")
    return (f"{path}: could not be written ({reason}; {free}); the previous version, if "
            "any, is unchanged")


FULL_BELOW = 1e6  # bytes: a disk with less free space than this is called full


def write_text(path: str | Path, text: str) -> Path:
    """``text`` to ``path`` through :func:`atomic_write`."""
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def write_netcdf(ds: xr.Dataset, path: str | Path, *, force: bool = False,
                 encoding: dict | None = None,
                 check: Callable[[Path], None] | None = None) -> Path:
    """Write ``ds`` to ``<path>.partial``, run ``check`` on it, then rename.

    Refuses to overwrite without ``force``. Default encoding: float32 with zlib.
    """
    path = Path(path)
    if path.exists() and not force:
        raise FileExistsError(f"{path}: already exists; pass --force to overwrite")
    if encoding is None:
        encoding = {name: {"zlib": True, "complevel": 4, "dtype": "float32"}
                    for name in ds.data_vars}
    return atomic_write(path, lambda tmp: ds.to_netcdf(tmp, encoding=encoding), check=check)


def sha256(path: Path) -> str:
    """Hex digest of a file (recorded beside weights, checked on load)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def partial_directory(path: Path) -> Path:
    """A fresh ``<name>.partial`` directory to build ``path`` in."""
    tmp = path.with_name(path.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def commit_directory(tmp: Path, path: Path) -> Path:
    """Put the complete directory ``tmp`` at ``path``, replacing an old one: two renames,
    an interruption between them is repaired by :func:`recover_directory`."""
    if path.exists():
        old = path.with_name(path.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        path.rename(old)
        tmp.rename(path)
        shutil.rmtree(old)
    else:
        tmp.rename(path)
    return path


def recover_directory(path: Path) -> None:
    """Finish a replacement that was interrupted between its two renames."""
    old = path.with_name(path.name + ".old")
    if not path.exists() and old.is_dir():
        old.rename(path)
