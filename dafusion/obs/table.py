"""The canonical observation table: one row per observation, stored as netCDF.

Columns (dimension ``obs``):

=============  ==========================================================
time           valid time (datetime64[ns], UTC)
lat, lon       degrees north; degrees east in [0, 360)
level          pressure level in hPa; NaN for a surface observation
variable       registry long name (``temperature``, ``surface_pressure`` ...)
value          in the variable's canonical units (``dafusion.variables``)
error_std      observation error standard deviation, same units as value
station_id     e.g. an IGRA2 id ``USM00070026`` or ``SYN00042``
source         ``radiosonde``, ``igra2``, ``synthetic`` ...
qc             0 = passed; see ``QC_CODES`` for the rest
=============  ==========================================================

Every reader and writer goes through :func:`validate`, so a table that loads
is a table the rest of the system can trust.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import xarray as xr

from dafusion.io import write_netcdf
from dafusion.variables import VARIABLES, Channel

QC_CODES = {0: "passed", 1: "rejected: background check", 2: "rejected: channel not in state",
            3: "rejected: outside the time window", 4: "flagged by the data provider"}

_FLOAT_COLUMNS = ("lat", "lon", "level", "value", "error_std")
_STR_COLUMNS = ("variable", "station_id", "source")


class ObsTableError(ValueError):
    """An invalid observation table; the message names the file, column and row."""


@dataclasses.dataclass
class ObservationTable:
    """Columns of equal length; see the module docstring for meanings and units."""

    time: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    level: np.ndarray
    variable: np.ndarray
    value: np.ndarray
    error_std: np.ndarray
    station_id: np.ndarray
    source: np.ndarray
    qc: np.ndarray

    def __post_init__(self) -> None:
        self.time = np.asarray(self.time, dtype="datetime64[ns]")
        for name in _FLOAT_COLUMNS:
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.float64))
        for name in _STR_COLUMNS:
            setattr(self, name, np.asarray(getattr(self, name), dtype=object).astype(str))
        self.qc = np.asarray(self.qc, dtype=np.int8)
        west = (self.lon >= -180.0) & (self.lon < 0.0)  # -180..0 -> 180..360; beyond: refused
        self.lon = np.where(west, self.lon + 360.0, np.where(self.lon == 360.0, 0.0, self.lon))

    def __len__(self) -> int:
        return int(self.time.size)

    @classmethod
    def concat(cls, tables: list[ObservationTable]) -> ObservationTable:
        if not tables:
            return empty_table()
        return cls(**{f.name: np.concatenate([getattr(t, f.name) for t in tables])
                      for f in dataclasses.fields(cls)})

    def subset(self, mask: np.ndarray) -> ObservationTable:
        return ObservationTable(**{f.name: getattr(self, f.name)[mask]
                                   for f in dataclasses.fields(self)})

    def window(self, centre: np.datetime64, half_width: np.timedelta64) -> ObservationTable:
        """Rows with |time - centre| <= half_width."""
        delta = np.abs(self.time - np.datetime64(centre, "ns"))
        return self.subset(delta <= half_width)

    def equals(self, other: ObservationTable) -> bool:
        """Exact equality of every column (NaN levels compare equal)."""
        for f in dataclasses.fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if a.shape != b.shape:
                return False
            if a.dtype.kind == "f":
                if not np.array_equal(a, b, equal_nan=True):
                    return False
            elif not np.array_equal(a, b):
                return False
        return True


def empty_table() -> ObservationTable:
    return ObservationTable(*([[]] * 10))


def validate(table: ObservationTable, where: str) -> None:
    """Raise ObsTableError naming ``where``, the column and the first bad row."""
    n = len(table)
    for f in dataclasses.fields(table):
        if getattr(table, f.name).shape != (n,):
            raise ObsTableError(f"{where}: column {f.name} has shape "
                                f"{getattr(table, f.name).shape}, expected ({n},)")
    _check(where, "time", np.isnat(table.time), table.time)
    _check(where, "lat", ~(np.abs(table.lat) <= 90), table.lat)
    _check(where, "lon", ~((table.lon >= 0) & (table.lon < 360)), table.lon,
           hint="degrees east in -180 .. 360")
    _check(where, "value", ~np.isfinite(table.value), table.value)
    floor = np.array([VARIABLES[v].precision if v in VARIABLES else 0.0
                      for v in table.variable], dtype=float)
    _check(where, "error_std", ~((table.error_std > 0) & (table.error_std >= floor)
                                  & np.isfinite(table.error_std)), table.error_std,
           hint="at least the variable's precision, dafusion.variables")
    _check(where, "qc", ~np.isin(table.qc, list(QC_CODES)), table.qc)
    known = np.isin(table.variable, list(VARIABLES))
    _check(where, "variable", ~known, table.variable)
    surface = np.array([VARIABLES[v].surface for v in table.variable], dtype=bool)
    level_ok = np.where(surface, np.isnan(table.level), (table.level > 0) & (table.level <= 1100))
    _check(where, "level", ~level_ok, table.level,
           hint="NaN for surface variables, 0 < hPa <= 1100 otherwise")


def screen(table: ObservationTable) -> tuple[ObservationTable, dict[str, int]]:
    """Rows a valid table may still hold that no analysis should see, removed and counted:
    values outside their channel's physically possible range (``Channel.bounds``: a unit
    or transmission error, e.g. t850 = 1e6 K, or a height in metres as z500), exact
    duplicates of an earlier row (a file concatenated twice), and rows that contradict
    each other (one station, time, level and variable with different values: all of
    them, as which is right cannot be told). Independent of the optional background
    check."""
    bounds = np.array([_bounds(v, lev) for v, lev in zip(table.variable, table.level)],
                      dtype=float).reshape(-1, 2)
    gross = (table.value < bounds[:, 0]) | (table.value > bounds[:, 1])
    where = list(zip(table.time.astype(np.int64), table.lat, table.lon,
                     np.nan_to_num(table.level, nan=-1.0), table.variable, table.station_id))
    first: dict[tuple, int] = {}
    values: dict[tuple, set] = {}
    duplicate = np.zeros(len(table), dtype=bool)
    for i, (key, value) in enumerate(zip(where, table.value)):
        if gross[i]:
            continue
        duplicate[i] = first.setdefault(key + (value,), i) != i
        values.setdefault(key, set()).add(value)
    conflict = np.array([len(values.get(k, ())) > 1 for k in where], dtype=bool) & ~gross
    counts = {"value outside the possible range of its variable": int(gross.sum()),
              "exact duplicate of an earlier row": int((duplicate & ~conflict).sum()),
              "conflicting rows for one station, time, level and variable (all removed)":
                  int(conflict.sum())}
    removed = gross | duplicate | conflict
    return table.subset(~removed), {k: v for k, v in counts.items() if v}


def _bounds(variable: str, level: float) -> tuple[float, float]:
    if np.isnan(level):
        return VARIABLES[variable].bounds
    return Channel(VARIABLES[variable], int(round(level))).bounds


def _check(where: str, column: str, bad: np.ndarray, values: np.ndarray, hint: str = "") -> None:
    if np.any(bad):
        i = int(np.argmax(bad))
        extra = f" ({hint})" if hint else ""
        value = values[i].item() if hasattr(values[i], "item") else values[i]
        raise ObsTableError(f"{where}: column {column}, row {i}: invalid value "
                            f"{value!r}{extra}; {int(bad.sum())} bad rows in all")


def write_table(table: ObservationTable, path: str | Path, *, force: bool = False,
                attrs: dict[str, str] | None = None) -> None:
    """Validate and write ``table`` as netCDF, atomically (temp file + rename)."""
    path = Path(path)
    if path.exists() and not force:
        raise FileExistsError(f"{path}: already exists; pass --force to overwrite")
    validate(table, str(path))  # before anything is written
    data = {name: ("obs", getattr(table, name)) for name in _FLOAT_COLUMNS + _STR_COLUMNS}
    data["qc"] = ("obs", table.qc, {"flag_values": list(QC_CODES),
                                   "flag_meanings": " ".join(
                                       v.replace(": ", "_").replace(" ", "_")
                                       for v in QC_CODES.values())})
    data["time"] = ("obs", table.time)
    ds = xr.Dataset(data, attrs={"title": "dafusion observation table",
                                 "values_in": "canonical units of dafusion.variables",
                                 **(attrs or {})})
    ds["lat"].attrs["units"] = "degrees_north"
    ds["lon"].attrs["units"] = "degrees_east"
    ds["level"].attrs.update(units="hPa", comment="NaN for surface observations")
    for name in ("value", "error_std"):
        ds[name].attrs["comment"] = "units: those of the row's variable"
    encoding = {"time": {"units": "seconds since 1970-01-01", "dtype": "int64"}}
    encoding.update({k: {"zlib": True, "complevel": 4} for k in _FLOAT_COLUMNS})
    write_netcdf(ds, path, force=force, encoding=encoding)


def read_table(path: str | Path) -> ObservationTable:
    """Read and validate an observation table written by :func:`write_table`."""
    path = Path(path)
    try:
        with xr.open_dataset(path) as ds:
            ds = ds.load()
    except FileNotFoundError:
        raise ObsTableError(f"{path}: no such file") from None
    except (OSError, ValueError) as err:
        reason = str(err).splitlines()[0]
        if "engine" in reason:  # xarray's engine guess: the bytes are not netCDF at all
            reason = "not netCDF"
        raise ObsTableError(f"{path}: not a readable netCDF observation table ({reason})"
                            ) from None
    names = [f.name for f in dataclasses.fields(ObservationTable)]
    missing = [n for n in names if n not in ds.variables]
    if missing:
        raise ObsTableError(f"{path}: not an observation table, lacks columns {missing}")
    table = ObservationTable(**{n: ds[n].values for n in names})
    validate(table, str(path))
    return table
