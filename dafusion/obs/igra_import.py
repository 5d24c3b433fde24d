"""IGRA2 soundings -> the observation table (``cycler obs import-igra``).

For each sounding:

* its valid time is the synoptic hour (``times``, e.g. 00 and 12 UTC) nearest
  to its release time (the nominal hour when the release time is missing);
  a sounding farther than ``window`` from every synoptic hour is rejected;
* values are interpolated to the requested pressure levels **linearly in
  log-pressure** between the nearest valid levels above and below, never
  extrapolated; only pressure levels (types 1x, 2x) take part; non-pressure
  levels (3x) are counted and skipped;
* units: 0.1 degC -> K, geopotential height (m) -> geopotential (m2 s-2, x g0),
  wind direction/speed -> u, v, dew-point depression -> specific humidity
  (Bolton 1980 saturation vapour pressure over water), surface pressure from
  the surface level (type x1) in Pa;
* one sounding per station and synoptic time: of two or more releases assigned to
  the same synoptic time (a re-launch, releases either side of it) the one nearest
  to it is kept, the others are counted;
* every rejected line, level and sounding is counted with its reason, per file.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import numpy as np

from dafusion import units as unitconv
from dafusion.obs.igra import Rejections, Sounding, read_soundings, read_station_list
from dafusion.obs.table import ObservationTable, empty_table

SUPPORTED = ("temperature", "geopotential", "u_component_of_wind", "v_component_of_wind",
             "specific_humidity", "surface_pressure")


@dataclasses.dataclass
class ImportSettings:
    levels: list[int]  # hPa
    hours: list[int]  # synoptic hours (UTC)
    window_hours: float
    variables: list[str]
    error_std: dict[str, float]  # per variable, canonical units

    def __post_init__(self) -> None:
        unknown = [v for v in self.variables if v not in SUPPORTED]
        if unknown:
            raise ValueError(f"--variables: {unknown} not importable from IGRA2; use {SUPPORTED}")
        missing = [v for v in self.variables if v not in self.error_std]
        if missing:
            raise ValueError(f"obs.error_std: no error std for {missing}")
        if not self.levels or min(self.levels) <= 0:
            raise ValueError(f"--levels: need positive pressure levels in hPa, got {self.levels}")
        if not 0 < self.window_hours <= 12:
            raise ValueError(f"--window: {self.window_hours} h outside (0, 12]")


def synoptic_time(t: np.datetime64, hours: list[int], window_hours: float
                  ) -> np.datetime64 | None:
    """The synoptic hour nearest to ``t`` if within ``window_hours``, else None."""
    day = t.astype("datetime64[D]")
    candidates = [day + np.timedelta64(d, "D") + np.timedelta64(h, "h")
                  for d in (-1, 0, 1) for h in hours]
    deltas = [abs((c - t).astype("timedelta64[m]").astype(int)) for c in candidates]
    best = int(np.argmin(deltas))
    return candidates[best] if deltas[best] <= window_hours * 60 else None


def specific_humidity(pressure_pa: np.ndarray, temp_k: np.ndarray,
                      dpdp_k: np.ndarray) -> np.ndarray:
    """q (kg/kg) from pressure, temperature and dew-point depression (Bolton 1980)."""
    td_c = temp_k - dpdp_k - 273.15
    e = 611.2 * np.exp(17.67 * td_c / (td_c + 243.5))  # Pa
    return 0.622 * e / (pressure_pa - 0.378 * e)


def _profiles(s: Sounding) -> dict[str, np.ndarray]:
    v = s.values
    direction = np.deg2rad(v["wdir"])
    return {"temperature": v["temp"],
            "geopotential": unitconv.to_canonical(v["gph"], "gpm", "m2 s-2"),
            "u_component_of_wind": -v["wspd"] * np.sin(direction),
            "v_component_of_wind": -v["wspd"] * np.cos(direction),
            "specific_humidity": specific_humidity(v["press"], v["temp"], v["dpdp"])}


def interpolate_log_p(p_levels: np.ndarray, values: np.ndarray, target_pa: float) -> float:
    """Linear in ln p between the nearest valid levels around ``target_pa``; NaN if none."""
    ok = np.isfinite(p_levels) & np.isfinite(values) & (p_levels > 0)
    p, x = p_levels[ok], values[ok]
    if p.size == 0 or target_pa > p.max() or target_pa < p.min():
        return np.nan  # never extrapolate
    exact = np.isclose(p, target_pa)
    if exact.any():
        return float(x[exact][0])
    below, above = p[p > target_pa], p[p < target_pa]  # below = higher pressure
    pb, pa = below.min(), above.max()
    xb, xa = x[p == pb][0], x[p == pa][0]
    w = (np.log(target_pa) - np.log(pb)) / (np.log(pa) - np.log(pb))
    return float(xb + w * (xa - xb))


def sounding_rows(s: Sounding, valid: np.datetime64, cfg: ImportSettings,
                  rejected: Rejections) -> list[tuple]:
    """(time, lat, lon, level, variable, value, error_std, station) rows of one sounding."""
    kind1 = np.array([k[0] for k in s.kind])
    kind2 = np.array([k[1] for k in s.kind])
    rejected["level: non-pressure level (type 3x) skipped"] += int(np.sum(kind1 == "3"))
    on_p = (kind1 != "3") & np.isfinite(s.values["press"])
    rejected["level: pressure missing on a pressure level"] += int(np.sum((kind1 != "3")
                                                                           & ~on_p))
    p = np.where(on_p, s.values["press"], np.nan)
    profiles = _profiles(s)
    rows = []
    for name in cfg.variables:
        if name == "surface_pressure":
            surface = np.flatnonzero((kind2 == "1") & on_p)
            if surface.size:
                rows.append((valid, s.lat, s.lon, np.nan, name, float(p[surface[0]]),
                             cfg.error_std[name], s.station_id))
            else:
                rejected["value: no surface level for surface_pressure"] += 1
            continue
        for level in cfg.levels:
            value = interpolate_log_p(p, profiles[name], level * 100.0)
            if np.isfinite(value):
                rows.append((valid, s.lat, s.lon, float(level), name, value,
                             cfg.error_std[name], s.station_id))
            else:
                rejected[f"value: {name} at {level} hPa not bracketed by valid levels"] += 1
    return rows


def import_igra(files: list[str | Path], cfg: ImportSettings, *,
                station_list: str | Path | None = None) -> tuple[ObservationTable, Rejections]:
    """Read IGRA2 files and build the observation table; see the module docstring.

    The rejections come back in total and per file (``Rejections.by_file``)."""
    rejected = Rejections()
    coords = {}
    if station_list is not None:
        stations = read_station_list(station_list)
        coords = {sid: (la, lo) for sid, la, lo in zip(stations.station_id, stations.lat,
                                                        stations.lon)}
        rejected.add_file(Path(station_list).name, Counter(
            {f"station list: {k}": v for k, v in stations.skipped.items() if v}))
    candidates: list[tuple[Sounding, np.datetime64, list[tuple]]] = []
    for path in files:
        per_file = Rejections()
        for s in read_soundings(path, per_file):
            if s.station_id in coords:  # fixed stations: the list's coordinates
                s.lat, s.lon = coords[s.station_id]
            elif station_list is not None:  # used, with the file header's coordinates
                rejected.unlisted[s.station_id] += 1
            valid = synoptic_time(s.time, cfg.hours, cfg.window_hours)
            if valid is None:
                per_file["sounding: outside the window of every synoptic hour"] += 1
                continue
            got = sounding_rows(s, valid, cfg, per_file)
            if not got:
                per_file["sounding: no usable value"] += 1
                continue
            candidates.append((s, valid, got))
        rejected.add_file(str(path), per_file)
    rows = [row for _, _, got in _one_per_synoptic_time(candidates, rejected) for row in got]
    if not rows:
        return empty_table(), rejected
    time, lat, lon, level, variable, value, err, sid = (np.array(c, dtype=object)
                                                        for c in zip(*rows))
    n = len(rows)
    table = ObservationTable(time=time.astype("datetime64[ns]"), lat=lat.astype(float),
                             lon=lon.astype(float), level=level.astype(float),
                             variable=variable, value=value.astype(float),
                             error_std=err.astype(float), station_id=sid,
                             source=np.full(n, "igra2"), qc=np.zeros(n, dtype=np.int8))
    return table, rejected


DUPLICATE = "sounding: another release of the station nearer the same synoptic time"


def _one_per_synoptic_time(candidates: list[tuple[Sounding, np.datetime64, list[tuple]]],
                           rejected: Rejections) -> list[tuple[Sounding, np.datetime64,
                                                               list[tuple]]]:
    """One sounding per station and synoptic time, as an operational centre keeps it:
    the release nearest to the synoptic time; on a tie the one with more usable values,
    then the later release (a re-launch replaces a failed one). The others are counted
    (in the total and under the file they came from)."""
    groups: dict[tuple[str, np.datetime64], list] = {}
    for item in candidates:
        groups.setdefault((item[0].station_id, item[1]), []).append(item)
    kept = []
    for (_, valid), items in groups.items():
        def rank(item: tuple, valid: np.datetime64 = valid) -> tuple:
            s, _, got = item
            distance = abs((s.time - valid).astype("timedelta64[m]").astype(np.int64))
            return (distance, -len(got), -s.time.astype("datetime64[m]").astype(np.int64))
        items.sort(key=rank)
        kept.append(items[0])
        for s, _, _ in items[1:]:
            rejected[DUPLICATE] += 1
            name = s.source.split(":")[0]
            for key, counts in rejected.by_file.items():
                if Path(key).name == name:
                    counts[DUPLICATE] += 1
                    break
    return sorted(kept, key=lambda item: (item[1], item[0].station_id))
