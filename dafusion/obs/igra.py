"""IGRA2 (NOAA NCEI) readers. This module holds the station-list reader; the
sounding-data importer builds on it.

Station list, fixed width, 1-based columns (NCEI ``igra2-list-format.txt``):
ID 1-11, LATITUDE 13-20, LONGITUDE 22-30, ELEVATION 32-37, STATE 39-40,
NAME 42-71, FSTYEAR 73-76, LSTYEAR 78-81, NOBS 83-88.

Real files contain blank IDs and mobile (ship) stations whose coordinates are
missing values (-98.8888, -998.8888, -998.8); such lines are skipped and counted.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np


@dataclasses.dataclass
class StationList:
    """Fixed stations with usable coordinates (lon in [0, 360))."""

    station_id: np.ndarray  # str
    lat: np.ndarray
    lon: np.ndarray
    elevation: np.ndarray  # m; NaN when missing
    name: np.ndarray  # str
    skipped: dict[str, int]  # reason -> number of lines skipped


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
