"""What the report reads from a run directory: the run's files through
``dafusion.cycler.rundir.RunDir``, plus the truth and the observations it used."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from dafusion.config import Config
from dafusion.cycler.rundir import ANALYSIS, MEMBERS, OBSERVATIONS, RunDir, RunError
from dafusion.data import GriddedSource, demo_truth_path
from dafusion.grids import AnyGrid
from dafusion.obs.table import read_table
from dafusion.variables import parse_channel


class ReportError(RunError):
    """A run directory the report cannot read; names the file."""


def channel_field(ds: xr.Dataset, channel: str, suffix: str = "") -> np.ndarray:
    """A channel's values from a CF state dataset (``dafusion.io.state_dataset`` layout)."""
    ch = parse_channel(channel)
    name = ch.variable.name + suffix
    if name not in ds:
        raise ReportError(f"{ds.encoding.get('source', 'dataset')}: no variable {name}")
    field = ds[name]
    if ch.level is not None:
        field = field.sel(level=ch.level)
    return np.asarray(field.values, dtype=np.float64)


@dataclasses.dataclass
class RunView:
    """What the report reads from one run directory."""

    run: RunDir
    cfg: Config
    truth: GriddedSource
    metrics: list[dict[str, Any]]
    obs_rows: list[dict[str, Any]]
    _cache: dict[Any, Any] = dataclasses.field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, path: str | Path) -> RunView:
        run = RunDir(path)
        cfg = run.config()
        truth = GriddedSource.open(cfg.run.truth or demo_truth_path(), cfg.data.channels,
                                   member=cfg.data.member)
        return cls(run, cfg, truth, run.metrics(), run.obs_rows())

    @property
    def path(self) -> Path:
        return self.run.path

    @property
    def grid(self) -> AnyGrid:
        return self.truth.grid

    @property
    def channels(self) -> list[str]:
        return list(self.cfg.data.channels)

    @property
    def cycles(self) -> list[int]:
        return sorted({int(r["cycle"]) for r in self.metrics})

    def time(self, cycle: int) -> np.datetime64:
        row = next(r for r in self.metrics if int(r["cycle"]) == cycle)
        return np.datetime64(row["valid_time"], "ns")

    def _open(self, cycle: int, name: str) -> xr.Dataset:
        ds = self.run.dataset(cycle, name)
        if ds is None:
            raise ReportError(f"{self.run.cycle_dir(cycle) / name}: missing")
        return ds

    def mean_std(self, cycle: int, channel: str) -> tuple[np.ndarray, np.ndarray]:
        ds = self._open(cycle, ANALYSIS)
        return channel_field(ds, channel), channel_field(ds, channel, "_std")

    def members(self, cycle: int, channel: str) -> np.ndarray | None:
        ds = self.run.dataset(cycle, MEMBERS)
        return channel_field(ds, channel) if ds is not None else None

    def truth_field(self, cycle: int, channel: str) -> np.ndarray:
        key = ("truth", cycle)
        if key not in self._cache:  # every figure asks again; read each state once
            self._cache[key] = self.truth.at(self.time(cycle))
        return np.asarray(self._cache[key].sel(channel=channel).values, dtype=np.float64)

    def stations(self, cycle: int, channel: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """lat, lon, value of the observations of ``channel`` usable at ``cycle``."""
        path = self.run / OBSERVATIONS
        if not path.exists():
            return np.zeros(0), np.zeros(0), np.zeros(0)
        if "table" not in self._cache:
            self._cache["table"] = read_table(path)
        table = self._cache["table"]
        half = np.timedelta64(int(self.cfg.run.sources.stations.window_hours * 3600), "s")
        rows = table.window(self.time(cycle), half)
        ch = parse_channel(channel)
        level = np.nan if ch.level is None else float(ch.level)
        keep = (rows.variable == ch.variable.name) & (rows.qc == 0) & (
            np.isnan(rows.level) if np.isnan(level) else rows.level == level)
        return rows.lat[keep], rows.lon[keep], rows.value[keep]

    def is_earth(self) -> bool:
        return "dafusion_world_config" not in self.truth.ds.attrs
