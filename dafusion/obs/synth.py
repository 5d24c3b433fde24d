"""Synthetic radiosonde observations of a truth run (the OSSE's observing system).

Stations are either drawn with a fixed seed on land (``global-land-mask``),
northern-hemisphere heavy like the real radiosonde network, or placed at the
coordinates of a real IGRA2 station list. Each station observes every channel
of the truth at the configured hours (00 and 12 UTC by default): the truth
interpolated to the station (``obs.method``: bicubic by default, the likelihood's
own operator, so that the stated error is the whole error; bilinear adds an
unmodelled representativeness error; periodic in longitude, beyond the
outermost latitude row the row is used), plus Gaussian noise of the configured
std. The noise of valid time t is drawn from a generator seeded by
(seed, hours since 1970 of t), so a table made for a sub-window is exactly the
sub-window of a longer table.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from dafusion.config import SynthObsConfig
from dafusion.data import GriddedSource
from dafusion.interp import interpolate
from dafusion.obs.igra import read_station_list
from dafusion.obs.table import ObservationTable


@dataclasses.dataclass
class Network:
    """Station ids and coordinates (degrees; lon in [0, 360))."""

    station_id: np.ndarray
    lat: np.ndarray
    lon: np.ndarray


def land_network(n: int, northern_fraction: float, seed: int) -> Network:
    """``n`` stations uniform in area over land, ``northern_fraction`` of them north."""
    from global_land_mask import globe

    rng = np.random.default_rng(seed)
    n_north = int(round(n * northern_fraction))
    lats, lons = [], []
    for count, sign in ((n_north, 1.0), (n - n_north, -1.0)):
        got: list[tuple[float, float]] = []
        while len(got) < count:
            lat = sign * np.rad2deg(np.arcsin(rng.uniform(0.0, 1.0, 4096)))
            lon = rng.uniform(-180.0, 180.0, 4096)
            keep = globe.is_land(np.clip(lat, -89.99, 89.99), lon) & (np.abs(lat) < 88)
            got += list(zip(lat[keep], lon[keep]))
        lats += [p[0] for p in got[:count]]
        lons += [p[1] for p in got[:count]]
    ids = np.array([f"SYN{i:05d}" for i in range(n)])
    return Network(ids, np.array(lats), np.mod(np.array(lons), 360.0))


def station_list_network(path: str, n: int, seed: int) -> Network:
    """Stations of an IGRA2 station list; a seeded subset of ``n`` if it has more."""
    stations = read_station_list(path)
    _, first = np.unique(np.round(np.stack([stations.lat, stations.lon]), 2), axis=1,
                         return_index=True)  # one station per location
    idx = np.sort(first)
    if idx.size > n:
        idx = np.sort(np.random.default_rng(seed).choice(idx, n, replace=False))
    return Network(stations.station_id[idx], stations.lat[idx], stations.lon[idx])


def synthesise(source: GriddedSource, network: Network, cfg: SynthObsConfig,
               start: str | None = None, end: str | None = None) -> ObservationTable:
    """Observe ``source`` at the network's stations at ``cfg.hours`` in [start, end]."""
    times = source.times
    if start is not None:
        times = times[times >= np.datetime64(start, "ns")]
    if end is not None:
        times = times[times <= np.datetime64(end, "ns")]
    hours = (times.astype("datetime64[h]").astype(np.int64)) % 24
    times = times[np.isin(hours, cfg.hours)]
    if times.size == 0:
        raise ValueError(f"{source.path}: no valid times at hours {cfg.hours} in the window")
    missing = [c.variable.name for c in source.channels if c.variable.name not in cfg.error_std]
    if missing:
        raise ValueError(f"obs.error_std: no error std for {sorted(set(missing))}")
    std = np.array([cfg.error_std[c.variable.name] for c in source.channels])
    levels = np.array([np.nan if c.level is None else c.level for c in source.channels])
    names = np.array([c.variable.name for c in source.channels])
    n_st, n_ch = network.lat.size, len(source.channels)
    tables = []
    for t in times:
        truth = interpolate(source.at(t).values, source.grid, network.lat,  # (ch, st)
                            network.lon, cfg.method)
        rng = np.random.default_rng([cfg.seed, int(t.astype("datetime64[h]").astype(np.int64))])
        value = truth + std[:, None] * rng.standard_normal((n_ch, n_st))
        tables.append(ObservationTable(
            time=np.full(n_ch * n_st, t), lat=np.tile(network.lat, n_ch),
            lon=np.tile(network.lon, n_ch), level=np.repeat(levels, n_st),
            variable=np.repeat(names, n_st), value=value.ravel(),
            error_std=np.repeat(std, n_st), station_id=np.tile(network.station_id, n_ch),
            source=np.full(n_ch * n_st, "synthetic_radiosonde"),
            qc=np.zeros(n_ch * n_st, dtype=np.int8)))
    return ObservationTable.concat(tables)
