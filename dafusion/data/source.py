"""The channel view of a dataset: ``GriddedSource`` and what ``data inspect`` prints."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import xarray as xr

from dafusion.data.base import DataError, is_url, load
from dafusion.data.open import check_chunks, open_dataset
from dafusion.grids import AnyGrid, identify_grid
from dafusion.variables import VARIABLES, Channel, parse_channels


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
            raise DataError(f"{self.path}: valid time {t} not in the data "
                            f"({times[0]} .. {times[-1]}, {steps_text(times)})")
        state = load(self.stack(t, t).isel(time=0), self.path)
        bad = [c for c, v in zip(self.channel_names, state.values) if not np.all(np.isfinite(v))]
        if bad:
            raise DataError(f"{self.path}: NaN or infinite values at {t} in channels {bad}")
        self.check_plausible(state.values, f"at {t}")
        return state

    def check_plausible(self, values: np.ndarray, where: str) -> None:
        """``values (..., channel, lat, lon)`` within each variable's physically possible
        range (:attr:`Channel.bounds`): a damaged or mislabelled file fails here."""
        for k, ch in enumerate(self.channels):
            lo, hi = ch.bounds
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
        check_chunks(self.path, sorted(names), slice(lo, hi))


def describe(source: GriddedSource, max_times: int = 64) -> str:
    """What the system sees: channels, units, grid, times, per-channel statistics.

    Statistics use at most ``max_times`` evenly spaced valid times (the line says so);
    a NaN or infinite value at any of them is refused, naming channel and times.
    """
    times = source.times
    idx = np.unique(np.linspace(0, times.size - 1, min(max_times, times.size)).astype(int))
    sample = source.stack().isel(time=idx)
    dims = ["time", "lat", "lon"]
    weights = xr.DataArray(source.grid.lat_weights, dims=["lat"])
    area_mean = sample.weighted(weights).mean(dims)
    stats = load(xr.Dataset({"min": sample.min(dims), "mean": area_mean,
                             "max": sample.max(dims),
                             "finite": np.isfinite(sample).all(["lat", "lon"])}), source.path)
    bad = nonfinite_text(stats["finite"].values, source.channel_names, times[idx])
    if bad:
        raise DataError(f"{source.path}: NaN or infinite values: {bad} (of {idx.size} "
                        f"sampled times)")
    mins, means, maxs = (stats[k].values for k in ("min", "mean", "max"))
    source.check_plausible(np.stack([mins, maxs])[..., None, None], "over the sampled times")
    lines = [f"source   {source.path}",
             f"grid     {source.grid.name}  lat {source.grid.lat[0]:.4f}..{source.grid.lat[-1]:.4f}"
             f"  lon {source.grid.lon[0]:.4f}..{source.grid.lon[-1]:.4f}",
             f"times    {times.size}  {times[0]} .. {times[-1]}  {steps_text(times)}",
             f"stats    over {idx.size} of {times.size} times (mean area-weighted)",
             f"{'channel':<8} {'units':<11} {'min':>12} {'mean':>12} {'max':>12}"]
    for ch, lo, mu, hi in zip(source.channels, mins, means, maxs):
        lines.append(f"{ch.name:<8} {ch.units:<11} {lo:12.5g} {mu:12.5g} {hi:12.5g}")
    return "\n".join(lines)


def _hours(delta: np.timedelta64) -> str:
    return f"{delta / np.timedelta64(1, 'h'):g} h"


def times_text(times: np.ndarray, most: int = 3) -> str:
    """``2020-01-03T00, 2020-01-04T12 and 5 more``."""
    shown = ", ".join(str(t)[:16] for t in times[:most])
    return shown + (f" and {times.size - most} more" if times.size > most else "")


def nonfinite_text(finite: np.ndarray, channel_names: list[str], times: np.ndarray) -> str:
    """``finite (time, channel)``: where it is False, as ``t850 at 2020-01-03T00; sp at
    ...`` ('' when every value is finite)."""
    return "; ".join(f"{name} at {times_text(times[~finite[:, k]])}"
                     for k, name in enumerate(channel_names) if not finite[:, k].all())


def steps_text(times: np.ndarray) -> str:
    """``step 12 h``, or the usual step and every irregular one: ``step 12 h, irregular:
    24 h after 2020-01-03T00 (1 time missing)``."""
    if times.size < 2:
        return "step -"
    diffs = np.diff(times)
    values, counts = np.unique(diffs, return_counts=True)
    step = values[np.argmax(counts)]
    odd = np.flatnonzero(diffs != step)
    if odd.size == 0:
        return f"step {_hours(step)}"
    missing = int(sum(max(d // step - 1, 0) for d in diffs[odd] if d % step == 0))
    shown = ", ".join(f"{_hours(diffs[k])} after {str(times[k])[:16]}" for k in odd[:3])
    more = f" and {odd.size - 3} more" if odd.size > 3 else ""
    return (f"step {_hours(step)}, irregular: {shown}{more}"
            + (f" ({missing} time{'s' * (missing != 1)} missing)" if missing else ""))


def missing_times(times: np.ndarray, every_hours: int) -> np.ndarray:
    """The times every ``every_hours`` between the first and last of ``times`` that
    ``times`` lacks."""
    if times.size < 2:
        return times[:0]
    step = np.timedelta64(every_hours, "h")
    expected = np.arange(times[0], times[-1] + step // 2, step).astype(times.dtype)
    return np.setdiff1d(expected, times)


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


def no_channel_reason(ds: xr.Dataset) -> str:
    """Why :func:`available_channels` found nothing in ``ds``: variables on pressure
    levels with no level, or no variable the system knows."""
    unlevelled = [str(n) for n in ds.data_vars
                  if n in VARIABLES and not VARIABLES[n].surface and "level" not in ds[n].dims]
    if unlevelled:
        return (f"no level: {unlevelled} are pressure-level variables but carry no pressure "
                "level (no level dimension or coordinate, and not named like 't850')")
    return (f"no variable the system knows (found {sorted(map(str, ds.data_vars))}; see "
            "dafusion/variables.py)")
