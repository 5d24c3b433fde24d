"""IGRA2 (NOAA NCEI) readers: the station list and the sounding-data files.
(The conversion of soundings into the observation table is ``obs.igra_import``.)

Station list, fixed width, 1-based columns (NCEI ``igra2-list-format.txt``):
ID 1-11, LATITUDE 13-20, LONGITUDE 22-30, ELEVATION 32-37, STATE 39-40,
NAME 42-71, FSTYEAR 73-76, LSTYEAR 78-81, NOBS 83-88.

Real files contain blank IDs and mobile (ship) stations whose coordinates are
missing values (-98.8888, -998.8888, -998.8); such lines are skipped and counted.
"""

from __future__ import annotations

import collections
import dataclasses
import re
import zipfile
from pathlib import Path

import numpy as np

from dafusion.units import celsius_tenths_to_kelvin


@dataclasses.dataclass
class StationList:
    """Fixed stations with usable coordinates (lon in [0, 360))."""

    station_id: np.ndarray  # str
    lat: np.ndarray
    lon: np.ndarray
    elevation: np.ndarray  # m; NaN when missing
    name: np.ndarray  # str
    skipped: dict[str, int]  # reason -> number of lines skipped


_STATION_ID = re.compile(r"[A-Z0-9]{11}")  # country (2), network (1), station (8)


def _field(line: str, first: int, last: int) -> str:
    return line[first - 1:last].strip()


def read_station_list(path: str | Path) -> StationList:
    """Parse an IGRA2 station list; raise ValueError naming the file if no
    line has a usable station."""
    path = Path(path)
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as err:
        raise ValueError(f"{path}: cannot read station list ({err.strerror})") from None
    rows: list[tuple[str, float, float, float, str]] = []
    skipped = {"blank id": 0, "missing coordinates": 0, "malformed": 0}
    for line in lines:
        if not line.strip():
            continue
        sid = _field(line, 1, 11)
        if not sid:
            skipped["blank id"] += 1
            continue
        if not _STATION_ID.fullmatch(sid):
            skipped["malformed"] += 1
            continue
        try:
            lat, lon = float(_field(line, 13, 20)), float(_field(line, 22, 30))
        except ValueError:
            skipped["malformed"] += 1
            continue
        if not (-90 <= lat <= 90 and -180 <= lon <= 360):
            skipped["missing coordinates"] += 1
            continue
        try:
            elev = float(_field(line, 32, 37))
        except ValueError:
            elev = np.nan
        rows.append((sid, lat, lon, elev if elev > -998 else np.nan, _field(line, 42, 71)))
    if not rows:
        raise ValueError(f"{path}: no usable station lines (is this an IGRA2 station list?)")
    sid, lat, lon, elev, name = (np.array(c) for c in zip(*rows))
    return StationList(sid.astype(str), lat.astype(float), np.mod(lon.astype(float), 360.0),
                       elev.astype(float), name.astype(str), skipped)


# --------------------------------------------------------------------------- soundings
#
# Sounding-data format (NCEI igra2-data-format.txt), 1-based columns.
# Header ('#'): ID 2-12, YEAR 14-17, MONTH 19-20, DAY 22-23, HOUR 25-26 (99 =
# missing), RELTIME 28-31 (HHMM, 99 = missing part), NUMLEV 33-36, P_SRC 38-45,
# NP_SRC 47-54, LAT 56-62 (deg x 1e4), LON 64-71 (deg x 1e4).
# Level: LVLTYP1 1, LVLTYP2 2, ETIME 4-8, PRESS 10-15 (Pa), PFLAG 16, GPH 17-21 (m),
# ZFLAG 22, TEMP 23-27 (0.1 degC), TFLAG 28, RH 29-33 (0.1 %), DPDP 35-39 (0.1 degC),
# WDIR 41-45 (deg), WSPD 47-51 (0.1 m/s). -9999 missing, -8888 removed by QA.

_LEVEL_COLUMNS = {"press": (10, 15), "gph": (17, 21), "temp": (23, 27), "rh": (29, 33),
                  "dpdp": (35, 39), "wdir": (41, 45), "wspd": (47, 51)}


@dataclasses.dataclass
class Sounding:
    """One sounding, physical units: Pa, m, K, K (dew-point depression), deg, m s-1."""

    station_id: str
    nominal: np.datetime64 | None  # header date + hour; None when hour is 99
    release: np.datetime64 | None  # header date + release time, shifted to within 12 h
    lat: float
    lon: float
    kind: np.ndarray  # level type, 2 digits ("10", "21", ...)
    values: dict[str, np.ndarray]  # _LEVEL_COLUMNS keys -> (nlev,), NaN missing
    source: str  # file (and zip member) it came from

    @property
    def time(self) -> np.datetime64 | None:
        """Release time when known, else the nominal time."""
        return self.release if self.release is not None else self.nominal


class Rejections(collections.Counter):
    """Counts of rejected lines, levels and soundings by reason (``by_file``: the same
    per input file, when several were read)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.by_file: dict[str, collections.Counter] = {}
        # soundings kept with their file header's coordinates, by station, because the
        # station list given does not hold the station (not rejections)
        self.unlisted: collections.Counter = collections.Counter()

    def add_file(self, name: str, counts: collections.Counter) -> None:
        self.by_file[name] = collections.Counter({k: v for k, v in counts.items() if v})
        self.update(counts)

    def report(self) -> str:
        return _count_lines(self)

    def report_by_file(self) -> str:
        return "\n".join(f"  {name}:\n{_count_lines(counts)}"
                         for name, counts in self.by_file.items())


def _count_lines(counts: collections.Counter) -> str:
    lines = [f"{n:8d}  {reason}" for reason, n in sorted(counts.items()) if n]
    return "\n".join(lines) or "    none"


def _int(text: str) -> int | None:
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        return None


def _in(value: int | None, top: int) -> bool:
    """A time field: 0..top, or 99 (missing)."""
    return value is not None and (0 <= value <= top or value == 99)


def _parse_header(line: str, where: str, rejected: Rejections) -> dict | None:
    if not _STATION_ID.fullmatch(line[1:12]):
        rejected["sounding: malformed station id"] += 1
        return None
    year, month, day = _int(line[13:17]), _int(line[18:20]), _int(line[21:23])
    hour, reltime = _int(line[24:26]), line[27:31]
    lat, lon = _int(line[55:62]), _int(line[63:71])
    if None in (year, month, day):
        rejected["sounding: malformed header"] += 1
        return None
    try:
        date = np.datetime64(f"{year:04d}-{month:02d}-{day:02d}", "m")
    except ValueError:
        rejected["sounding: impossible date"] += 1
        return None
    rel_h, rel_m = _int(reltime[:2]), _int(reltime[2:])
    if not (_in(hour, 23) and _in(rel_h, 23) and _in(rel_m, 59)):  # only 99 means missing
        rejected["sounding: malformed header (HOUR or RELTIME)"] += 1
        return None
    nominal = None if hour == 99 else date + np.timedelta64(hour, "h")
    release = None
    if rel_h != 99:
        release = date + np.timedelta64(rel_h * 60 + (rel_m if rel_m != 99 else 0), "m")
        if nominal is not None and release - nominal > np.timedelta64(12, "h"):
            release -= np.timedelta64(1, "D")  # launched the evening before a 00 UTC sounding
    if nominal is None and release is None:
        rejected["sounding: no time (hour 99 and no release time)"] += 1
        return None
    if lat is None or lon is None or abs(lat) > 900000 or abs(lon) > 1800000:
        rejected["sounding: missing coordinates"] += 1
        return None
    nlev = _int(line[32:36])
    if nlev is None or nlev < 0:
        rejected["sounding: malformed header (NUMLEV)"] += 1
        return None
    return {"station_id": line[1:12].strip(), "nominal": nominal, "release": release,
            "lat": lat / 1e4, "lon": lon / 1e4, "nlev": nlev}


LEVEL_LINE_LENGTH = 51  # the last field, WSPD, ends in column 51


def _parse_level(line: str) -> dict[str, float] | str:
    """The level's values, or the name of the first field that is not a number."""
    out = {}
    for name, (a, b) in _LEVEL_COLUMNS.items():
        raw = line[a - 1:b].strip().rstrip("AB")  # PFLAG/ZFLAG/TFLAG follow some fields
        value = _int(raw)
        if value is None:
            return name
        out[name] = np.nan if value in (-9999, -8888) else float(value)
    return out


def _finish(header: dict, levels: list[tuple[str, dict]], source: str) -> Sounding:
    kinds = np.array([k for k, _ in levels], dtype=object)
    raw = {name: np.array([v[name] for _, v in levels], dtype=float) for name in _LEVEL_COLUMNS}
    values = {"press": raw["press"], "gph": raw["gph"],
              "temp": celsius_tenths_to_kelvin(raw["temp"]), "rh": raw["rh"] / 10.0,
              "dpdp": raw["dpdp"] / 10.0, "wdir": raw["wdir"], "wspd": raw["wspd"] / 10.0}
    return Sounding(header["station_id"], header["nominal"], header["release"], header["lat"],
                    header["lon"], kinds, values, source)


def parse_soundings(lines: list[str], source: str, rejected: Rejections) -> list[Sounding]:
    """Soundings from the lines of one IGRA2 sounding-data file.

    A level line must be complete (51 columns; a line cut inside a field would read
    as another number) with a number in every field; a sounding must have as many
    level lines as its header's NUMLEV says, or it is rejected whole (a cut file)."""
    soundings: list[Sounding] = []
    header: dict | None = None
    levels: list[tuple[str, dict]] = []
    nlines = 0

    def close() -> None:
        if header is None:
            return
        if nlines == 0 or not levels:
            rejected["sounding: no levels"] += 1
        elif nlines != header["nlev"]:
            rejected["sounding: fewer or more level lines than its header's NUMLEV"] += 1
        else:
            soundings.append(_finish(header, levels, source))

    for line in lines:
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        if line.startswith("#"):
            close()
            header, levels, nlines = _parse_header(line, source, rejected), [], 0
            continue
        if header is None:
            rejected["line: level outside a sounding"] += 1
            continue
        nlines += 1
        kind = line[:2]
        if len(line.rstrip()) < LEVEL_LINE_LENGTH or not kind.isdigit():
            rejected["level: truncated or malformed line"] += 1
            continue
        if kind[0] not in "123" or kind[1] not in "012":
            rejected[f"level: unknown level type {kind}"] += 1
            continue
        values = _parse_level(line)
        if isinstance(values, str):
            rejected[f"level: '{values}' is not a number"] += 1
            continue
        levels.append((kind, values))
    close()
    return soundings


def read_soundings(path: str | Path, rejected: Rejections) -> list[Sounding]:
    """All soundings of an IGRA2 sounding-data file, plain text or ``.zip``."""
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            out = []
            with zipfile.ZipFile(path) as archive:
                for member in archive.namelist():
                    if member.endswith("/"):
                        continue
                    text = archive.read(member).decode("ascii", errors="replace")
                    where = f"{path}:{member}"
                    _check_sounding_text(text, where)
                    out += parse_soundings(text.splitlines(), f"{path.name}:{member}", rejected)
            return out
        text = path.read_text(errors="replace")
    except (OSError, zipfile.BadZipFile, EOFError) as err:
        raise ValueError(f"{path}: cannot read ({getattr(err, 'strerror', None) or err})"
                         ) from None
    _check_sounding_text(text, str(path))
    return parse_soundings(text.splitlines(), path.name, rejected)


def _check_sounding_text(text: str, where: str) -> None:
    """Refuse, naming the file, what is not an IGRA2 sounding-data file."""
    if not text.strip():
        raise ValueError(f"{where}: empty")
    first = text.lstrip().splitlines()[0]
    if not first.startswith("#"):
        raise ValueError(f"{where}: not an IGRA2 sounding-data file (no '#' header line "
                         "first)")
    if len(first.rstrip()) > 100:  # data headers are 71 columns, derived ones about 160
        raise ValueError(f"{where}: an IGRA2 derived-parameter file (-drvd.txt: a "
                         f"{len(first.rstrip())}-column header); import-igra reads the "
                         "sounding-data files (-data.txt)")
