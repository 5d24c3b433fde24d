"""Opening gridded files and stores: format detection, integrity, the readers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from dafusion.data import integrity
from dafusion.data.base import DataError, is_url, local_path, quiet_readers
from dafusion.data.standardise import DIM_ALIASES, assemble, levels_as_dimension, standardise


def detect_format(path: str | Path) -> str:
    """'zarr', 'netcdf' or 'grib', from the directory layout or the magic bytes."""
    if is_url(path):
        return _detect_remote(str(path))
    path = local_path(path)
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
    remote, messages = is_url(path), []
    if not remote and fmt != "zarr":
        try:
            messages = integrity.check_file(local_path(path), fmt)
        except integrity.IntegrityError as err:
            raise DataError(str(err)) from None
    try:
        with quiet_readers():
            if fmt == "zarr":
                ds = _open_zarr(path, remote)
            elif fmt == "netcdf":
                ds = xr.open_dataset(local_path(path), chunks={}, decode_timedelta=False)
            else:
                ds = _open_grib(local_path(path), messages)
    except DataError:
        raise
    except Exception as err:  # noqa: BLE001 - re-raised with the file named
        raise DataError(f"{path}: cannot be opened as {fmt}: {err}") from err
    if ds.attrs.get("dafusion_complete", 1) in (0, False):
        raise DataError(f"{path}: an incomplete world store (generation was interrupted); "
                        "finish it with 'cycler world generate --resume'")
    if fmt == "zarr" and not remote:  # remote stores: checked per window, see stack()
        check_chunks(str(path), list(ds.variables))
    return standardise(ds, str(path), member)


def _open_zarr(path: str | Path, remote: bool) -> xr.Dataset:
    consolidated = None if remote else (local_path(path) / ".zmetadata").exists()
    store = str(path) if remote else local_path(path)
    return xr.open_zarr(store, chunks={}, decode_timedelta=False, consolidated=consolidated)


def check_chunks(path: str, names: list[str], time_slice: slice | None = None) -> None:
    """Refuse missing chunks that would read as data (see :mod:`dafusion.data.integrity`)."""
    missing = integrity.zarr_unmarked_missing(path, names, time_slice)
    if missing:
        listing = ", ".join(f"'{k}' ({n}, fill value {np.asarray(fill).item()!r})"
                            for k, (n, fill) in sorted(missing.items()))
        raise DataError(f"{path}: chunks missing from the zarr store: {listing}; they would "
                        "read as the fill value, which the metadata does not mark as missing "
                        "(an incomplete copy or an interrupted write)")


def _open_grib(path: Path, messages: list[tuple[int, int, int]]) -> xr.Dataset:
    """Every hypercube of a GRIB file (cfgrib splits one per level type, and per level
    when variables differ in their levels), merged into one dataset."""
    try:
        import cfgrib
    except ImportError:
        raise DataError(f"{path}: GRIB needs the 'grib' extra "
                        "(pip install 'dafusion[grib]')") from None
    _check_grib_duplicates(path, messages)
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
        cube = levels_as_dimension(cube.rename(
            {k: v for k, v in DIM_ALIASES.items() if k in cube.variables}))
        for name, da in cube.data_vars.items():
            pieces.setdefault(str(name), []).append(da)
    return assemble(pieces, str(path))


_GRIB_FIELD_KEYS = ("shortName", "typeOfLevel", "level", "dataDate", "dataTime", "stepRange",
                    "number")


def _check_grib_duplicates(path: Path, messages: list[tuple[int, int, int]]) -> None:
    """Two different messages for one field (variable, level, time, step, member) are
    refused; cfgrib would keep the first silently. Identical copies are harmless."""
    import hashlib

    import eccodes

    seen: dict[tuple, tuple[int, bytes]] = {}
    with open(path, "rb") as f:
        for k, (offset, length, _) in enumerate(messages, 1):
            f.seek(offset)
            message = f.read(length)
            h = eccodes.codes_new_from_message(message)
            try:
                key = tuple(eccodes.codes_get(h, name) if eccodes.codes_is_defined(h, name)
                            else None for name in _GRIB_FIELD_KEYS)
            finally:
                eccodes.codes_release(h)
            digest = hashlib.sha256(message).digest()
            if key in seen and seen[key][1] != digest:
                field = dict(zip(_GRIB_FIELD_KEYS, key))
                raise DataError(f"{path}: messages {seen[key][0]} and {k} are two different "
                                f"fields for the same {field['shortName']} {field['level']} "
                                f"at {field['dataDate']} {field['dataTime']:04d}")
            seen.setdefault(key, (k, digest))
