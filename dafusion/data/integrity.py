"""Integrity of gridded files at the boundary, checked before any value is used.

The netCDF and GRIB libraries do not always notice a damaged file: the netCDF
library zero-fills the bytes a truncated classic file lacks (packed zeros then
decode to ``add_offset``), eccodes skips a cut GRIB message, and zarr serves the
fill value for a chunk that is not there. Each check here reads only the file's
structure and raises :class:`IntegrityError` naming the file and what is wrong:

* netCDF classic / 64-bit offset / CDF5: the header gives every variable's offset
  and size, so the file must be at least as long as the last byte of data;
* netCDF-4 (HDF5): the superblock records the end-of-file address;
* GRIB 1 and 2: the file is a sequence of complete messages (``GRIB`` ... length
  ... ``7777``), with nothing but zero bytes between them (ECMWF's archive pads each
  message) and zero bytes or blank lines after the last;
* zarr: a chunk the store lacks reads as its array's fill value, which is legal (zarr
  3 does not write a chunk equal to it, and xarray encodes a single time as 0); it is
  refused only where that fill value would pass for data: a data array whose fill
  value xarray does not decode as missing. Where it does (NaN, or the ``_FillValue``)
  the values read as NaN, which every read refuses naming channel and time; the
  coordinates are checked as coordinates (times strictly increasing, a global grid).

What no structural check can see is a changed byte inside the packed values of
a format without checksums (netCDF classic, GRIB, zarr without a checksum codec);
the data layer's plausibility bounds (``dafusion.variables``) catch the gross ones.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, BinaryIO, Iterable

import numpy as np


class IntegrityError(ValueError):
    """A file whose structure does not hold together; the message names it."""


# --------------------------------------------------------------------------- netCDF classic

_NC_TYPE_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 4, 6: 8, 7: 1, 8: 2, 9: 4, 10: 8, 11: 8}
_NC_DIMENSION, _NC_VARIABLE, _NC_ATTRIBUTE = 0x0A, 0x0B, 0x0C
_STREAMING = (1 << 32) - 1


class _Header:
    """A cursor over a classic netCDF header (big-endian, 4-byte aligned)."""

    def __init__(self, f: BinaryIO, version: int, path: str) -> None:
        self.f, self.path = f, path
        self.size_n = 8 if version == 5 else 4  # counts, lengths, dim ids
        self.size_offset = 4 if version == 1 else 8  # a variable's 'begin'

    def read(self, n: int) -> bytes:
        data = self.f.read(n)
        if len(data) < n:
            raise IntegrityError(f"{self.path}: truncated netCDF header "
                                 f"(ends at byte {self.f.tell()})")
        return data

    def uint(self, size: int) -> int:
        return int.from_bytes(self.read(size), "big")

    def count(self) -> int:
        return self.uint(self.size_n)

    def name(self) -> str:
        n = self.count()
        text = self.read(n + (-n) % 4)[:n]
        return text.decode("utf-8", errors="replace")

    def tagged_list(self, tag: int) -> int:
        found, n = self.uint(4), self.count()
        if found not in (0, tag) or (found == 0 and n != 0):
            raise IntegrityError(f"{self.path}: damaged netCDF header (list tag {found:#x} "
                                 f"at byte {self.f.tell() - 4 - self.size_n})")
        return n

    def skip_attributes(self) -> None:
        for _ in range(self.tagged_list(_NC_ATTRIBUTE)):
            self.name()
            nc_type, n = self.uint(4), self.count()
            if nc_type not in _NC_TYPE_SIZE:
                raise IntegrityError(f"{self.path}: damaged netCDF header "
                                     f"(attribute type {nc_type})")
            nbytes = n * _NC_TYPE_SIZE[nc_type]
            self.read(nbytes + (-nbytes) % 4)


def netcdf_classic_required_size(path: str | Path) -> int:
    """The smallest length the classic-format file ``path`` can have, from its header."""
    with open(path, "rb") as f:
        magic = f.read(4)
        if len(magic) < 4 or magic[:3] != b"CDF" or magic[3] not in (1, 2, 5):
            raise IntegrityError(f"{path}: not a classic netCDF file (magic {magic!r})")
        h = _Header(f, magic[3], str(path))
        numrecs = h.count()
        dims = []
        for _ in range(h.tagged_list(_NC_DIMENSION)):
            h.name()
            dims.append(h.count())
        h.skip_attributes()
        fixed_end, record_vars = h.f.tell(), []
        for _ in range(h.tagged_list(_NC_VARIABLE)):
            h.name()
            ids = [h.count() for _ in range(h.count())]
            h.skip_attributes()
            nc_type = h.uint(4)
            h.count()  # vsize: recomputed from the shape (it saturates for large variables)
            begin = h.uint(h.size_offset)
            if nc_type not in _NC_TYPE_SIZE or any(i >= len(dims) for i in ids):
                raise IntegrityError(f"{path}: damaged netCDF header (variable type "
                                     f"{nc_type}, dimension ids {ids})")
            shape = [dims[i] for i in ids]
            is_record = bool(ids) and dims[ids[0]] == 0
            nbytes = int(np.prod(shape[1:] if is_record else shape, dtype=np.int64)) \
                * _NC_TYPE_SIZE[nc_type]
            if is_record:
                record_vars.append((begin, nbytes))
            else:
                fixed_end = max(fixed_end, begin + nbytes)
    if not record_vars or numrecs in (0, _STREAMING):
        return fixed_end
    # a record holds each record variable's slab padded to 4 bytes, unless there is one
    record_size = (record_vars[0][1] if len(record_vars) == 1
                   else sum(n + (-n) % 4 for _, n in record_vars))
    last = max(b + (numrecs - 1) * record_size + n for b, n in record_vars)
    return max(fixed_end, last)


# --------------------------------------------------------------------------- HDF5

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def hdf5_required_size(path: str | Path) -> int:
    """The end-of-file address the HDF5 superblock of ``path`` records (base included)."""
    with open(path, "rb") as f:
        for base in (0, 512, 1024, 2048, 4096):  # the superblock may follow a user block
            f.seek(base)
            if f.read(8) == _HDF5_SIGNATURE:
                break
        else:
            raise IntegrityError(f"{path}: no HDF5 superblock")
        head = f.read(40)
    version = head[0] if head else -1
    if version in (0, 1):
        size_offsets = head[5]
        start = 16 + (4 if version == 1 else 0)  # after the fixed fields
    elif version in (2, 3):
        size_offsets = head[1]
        start = 4
    else:
        raise IntegrityError(f"{path}: unknown HDF5 superblock version {version}")
    if size_offsets not in (2, 4, 8):
        raise IntegrityError(f"{path}: damaged HDF5 superblock (offset size {size_offsets})")
    fields = [int.from_bytes(head[start + k * size_offsets:start + (k + 1) * size_offsets],
                             "little") for k in range(3)]
    base_address, eof = fields[0], fields[2]  # base, (free-space | extension), end of file
    return (base_address or base) + eof  # the end-of-file address is relative to the base


# --------------------------------------------------------------------------- GRIB


def grib_messages(path: str | Path) -> list[tuple[int, int, int]]:
    """``(offset, length, edition)`` of every message of a GRIB file, checked complete.

    Reads only each message's indicator section and end marker (seeks past the rest)."""
    size, out, i = Path(path).stat().st_size, [], 0
    with open(path, "rb") as f:
        while i < size:
            f.seek(i)
            head = f.read(16)
            if head[:4] != b"GRIB" and out:
                i = _after_padding(f, i, size)  # ECMWF pads messages with zero bytes
                if i >= size:
                    break
                f.seek(i)
                head = f.read(16)
            if head[:4] != b"GRIB":
                raise IntegrityError(f"{path}: not a GRIB message at byte {i} after "
                                     f"{len(out)} complete message(s) (found {head[:8]!r})")
            if len(head) < 16:
                raise IntegrityError(f"{path}: GRIB message {len(out) + 1} at byte {i} is "
                                     "cut inside its indicator section")
            length = _grib_length(f, head, i, size, path, len(out) + 1)
            if i + length > size:
                raise IntegrityError(f"{path}: GRIB message {len(out) + 1} at byte {i} is cut "
                                     f"({size - i} of {length} bytes; the file is truncated)")
            f.seek(i + length - 4)
            if f.read(4) != b"7777":
                raise IntegrityError(f"{path}: GRIB message {len(out) + 1} at byte {i} does "
                                     f"not end with '7777' at its stated length {length} "
                                     "(damaged)")
            out.append((i, length, head[7]))
            i += length
    if not out:
        raise IntegrityError(f"{path}: no GRIB message")
    return out


def _after_padding(f: BinaryIO, offset: int, size: int) -> int:
    """The offset of the first byte at or after ``offset`` that is not padding: zero
    bytes (between or after messages), or line ends and spaces after the last one."""
    f.seek(offset)
    while offset < size:
        block = f.read(1 << 16)
        zeros = len(block) - len(block.lstrip(b"\x00"))
        if zeros < len(block):
            offset += zeros
            return offset if block[zeros:zeros + 4] == b"GRIB" or \
                not _blank_to_end(f, offset) else size
        offset += len(block)
    return offset


def _blank_to_end(f: BinaryIO, offset: int) -> bool:
    f.seek(offset)
    while block := f.read(1 << 16):
        if block.strip(b"\x00\n\r "):
            return False
    return True


def _grib_length(f: BinaryIO, head: bytes, offset: int, size: int, path: str | Path,
                 number: int) -> int:
    edition = head[7]
    if edition == 2:
        return struct.unpack(">Q", head[8:16])[0]
    if edition != 1:
        raise IntegrityError(f"{path}: GRIB message {number} at byte {offset} has edition "
                             f"{edition} (expected 1 or 2)")
    length = int.from_bytes(head[4:7], "big")
    if not length & 0x800000:
        return length
    # the 'large GRIB1' convention (over 8 MB): the end marker is found by searching
    f.seek(offset + 8)
    data = f.read(size - offset - 8)
    end = data.find(b"7777")
    return end + 12 if end >= 0 else size - offset + 1


# --------------------------------------------------------------------------- dispatch


def check_file(path: str | Path, fmt: str) -> list[tuple[int, int, int]]:
    """Structural check of a netCDF or GRIB file; raises IntegrityError. Returns a GRIB
    file's messages (:func:`grib_messages`), [] for netCDF."""
    size = Path(path).stat().st_size
    if fmt == "grib":
        return grib_messages(path)
    with open(path, "rb") as f:
        classic = f.read(3) == b"CDF"
    need = netcdf_classic_required_size(path) if classic else hdf5_required_size(path)
    if size < need:
        raise IntegrityError(f"{path}: truncated: {size} bytes, its header needs {need} "
                             f"(the missing {need - size} bytes would read as zeros)")
    return []


# --------------------------------------------------------------------------- zarr


def zarr_missing_chunks(store: str, names: Iterable[str],
                        time_slice: slice | None = None) -> dict[str, int]:
    """For each array in ``names``: how many of its chunks the store lacks.

    ``time_slice`` restricts arrays whose first dimension is ``time`` to the chunks
    holding those indices. The store is a local path or an fsspec URL.
    """
    import fsspec
    import zarr

    fs, root = fsspec.core.url_to_fs(store)
    group = zarr.open_group(store, mode="r")
    missing = {}
    for name in names:
        if name not in group:
            continue
        arr = group[name]
        stored = getattr(arr, "shards", None) or arr.chunks  # a sharded array stores shards
        grids = [range(-(-n // c)) for n, c in zip(arr.shape, stored)]
        dims = _dimension_names(arr)
        if time_slice is not None and grids and dims and dims[0] == "time":
            c = stored[0]
            lo, hi, _ = time_slice.indices(arr.shape[0])
            grids[0] = range(lo // c, -(-hi // c)) if hi > lo else range(0)
        keys = [_chunk_key(arr, tuple(g[k] for g, k in zip(grids, idx)))
                for idx in np.ndindex(*[len(g) for g in grids])]
        prefix = f"{root.rstrip('/')}/{name}"
        if len(keys) <= 64:  # a window: ask for each chunk, not for a listing of the array
            lost = sum(not fs.exists(f"{prefix}/{k}") for k in keys)
        else:
            present = {p[len(prefix) + 1:] for p in fs.find(prefix)}
            lost = sum(k not in present for k in keys)
        if lost:
            missing[name] = lost
    return missing


def zarr_unmarked_missing(store: str, names: Iterable[str],
                          time_slice: slice | None = None) -> dict[str, tuple[int, Any]]:
    """``{name: (missing chunks, fill value)}`` for the data arrays among ``names`` whose
    missing chunks would read as a value not marked missing (see the module docstring);
    dimension coordinates and arrays whose fill value decodes as missing are left out."""
    import zarr

    group = zarr.open_group(store, mode="r")
    out = {}
    for name, count in zarr_missing_chunks(store, names, time_slice).items():
        arr = group[name]
        dims = _dimension_names(arr)
        if dims == [name] or _fill_reads_as_missing(arr):
            continue
        out[name] = (count, arr.fill_value)
    return out


def _dimension_names(arr: Any) -> list[str]:
    """An array's dimension names: zarr 3 metadata, or xarray's attribute in zarr 2."""
    return list(getattr(getattr(arr, "metadata", None), "dimension_names", None)
                or arr.attrs.get("_ARRAY_DIMENSIONS") or [])


def _fill_reads_as_missing(arr: Any) -> bool:
    """Whether xarray decodes ``arr``'s fill value as missing (NaN): a NaN fill value,
    a zarr 2 array's fill value (xarray takes it as ``_FillValue``), or a zarr 3 array
    that carries a ``_FillValue`` attribute."""
    fill = arr.fill_value
    if fill is None:
        return False
    if np.issubdtype(np.asarray(fill).dtype, np.floating) and np.isnan(fill):
        return True
    format_ = getattr(getattr(arr, "metadata", None), "zarr_format", 2)
    return format_ == 2 or "_FillValue" in arr.attrs


def _chunk_key(arr: object, coords: tuple[int, ...]) -> str:
    """The store key of a chunk (zarr 3's metadata encodes it; zarr 2 joins the indices
    with the array's dimension separator)."""
    metadata = getattr(arr, "metadata", None)
    if hasattr(metadata, "encode_chunk_key"):
        return metadata.encode_chunk_key(coords)
    separator = getattr(arr, "_dimension_separator", None) or "."
    return separator.join(map(str, coords)) or "0"
