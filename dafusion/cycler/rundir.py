"""The run directory: its layout, its writers and its reader, in one place.

```
runs/<name>/
  config.yaml            the resolved configuration (written first)
  versions.json          Python, platform and package versions
  observations.nc        the observation rows the run can use (with stations)
  inputs.json            truth, checkpoints (weights sha256), observations
  seeds.json             every generator seed of every cycle (dafusion.cycler.seeding)
  log.txt                one line per event
  cycle_NNN/analysis.nc  ensemble mean and std (CF); members.nc; forecast.nc
  metrics.csv            rewritten after every cycle, with
  obs_diagnostics.csv    ... and
  timing.csv             ...
  state.npz              what the next cycle needs: arrays and one JSON string, no pickle
  COMPLETE               written after the last cycle
  lock                   pid and host of the process running it (an flock while it runs)
```

Every file goes through :func:`dafusion.io.atomic_write`. A cycle counts once
``state.npz`` says so; it is replaced after the cycle's other files, which is what
makes ``--resume`` exact. The header (everything before ``log.txt``) depends only
on the configuration and its inputs, so a run killed while it was being written is
completed by ``--resume``.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime as dt
import json
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # not POSIX: runs are not locked
    fcntl = None  # type: ignore[assignment]

import numpy as np
import xarray as xr

from dafusion.config import Config, ConfigError, dump_config, load_config
from dafusion.io import atomic_write, sha256, write_netcdf, write_text

CONFIG = "config.yaml"
VERSIONS = "versions.json"
OBSERVATIONS = "observations.nc"
INPUTS = "inputs.json"
SEEDS = "seeds.json"
LOG = "log.txt"
METRICS = "metrics.csv"
OBS_DIAGNOSTICS = "obs_diagnostics.csv"
TIMING = "timing.csv"
STATE = "state.npz"
COMPLETE = "COMPLETE"
LOCK = "lock"
ANALYSIS, MEMBERS, FORECAST = "analysis.nc", "members.nc", "forecast.nc"
STATE_VERSION = 5  # 3: the sources' carried state beside the mode's; 4: the fingerprint;
# 5: observation rows with spread and crps

COLUMNS = {
    METRICS: ["cycle", "valid_time", "lead_hours", "channel", "variable", "level", "rmse",
              "bias", "spread", "crps"],
    OBS_DIAGNOSTICS: ["cycle", "valid_time", "source", "used", "rejected", "omb_mean",
                      "omb_rms", "oma_mean", "oma_rms", "sigma_y", "desroziers", "spread",
                      "crps"],
    TIMING: ["cycle", "valid_time", "observations_s", "analysis_s", "forecast_s", "write_s",
             "total_s"],
}
FLOAT_COLUMNS = {"rmse", "bias", "spread", "crps", "omb_mean", "omb_rms", "oma_mean",
                 "oma_rms", "sigma_y", "desroziers"}


class RunError(ValueError):
    """A run that cannot start or continue; the message says why and what to change."""


@dataclasses.dataclass
class Header:
    """What a run is, written before it computes anything."""

    config: Config
    versions: dict[str, str]
    inputs: dict[str, Any]
    seeds: dict[str, Any]
    write_observations: Callable[[Path], Any] | None = None  # writes observations.nc


@dataclasses.dataclass
class Tables:
    """The rows of the three per-cycle tables (one dict per row, keys = COLUMNS)."""

    metrics: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    obs: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    timing: list[dict[str, Any]] = dataclasses.field(default_factory=list)


def csv_text(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """Rows as CSV; floats with 6 significant digits, NaN as an empty cell."""
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return "" if np.isnan(v) else f"{v:.6g}"
        return str(v)

    lines = [",".join(columns)] + [",".join(cell(r[c]) for c in columns) for r in rows]
    return "\n".join(lines) + "\n"


def now() -> str:
    return dt.datetime.now().isoformat(timespec="seconds")


class RunDir:
    """One run directory: ``RunDir(path)`` to read or continue, :meth:`create` to start."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    # ------------------------------------------------------------------ writing

    @classmethod
    def make(cls, path: str | Path) -> RunDir:
        """A new, empty directory; an existing one is never reused (of two processes
        creating the same directory at once, one gets it)."""
        run = cls(path)
        try:
            run.path.parent.mkdir(parents=True, exist_ok=True)
            run.path.mkdir()
        except FileExistsError:
            raise RunError(f"{run.path}: already exists; runs are never overwritten (use "
                           f"--resume {run.path} to continue it, or another --name)") from None
        return run

    @classmethod
    def create(cls, path: str | Path, header: Header) -> RunDir:
        """A new directory with its header."""
        run = cls.make(path)
        run.write_header(header)
        return run

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the run while computing: a second ``run``/``--resume`` of the same
        directory is refused, naming the owner. The kernel releases the lock when the
        owner exits however it exits (SIGKILL included), so a killed run resumes."""
        fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.read(fd, 4096).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise RunError(f"{self.path}: in use by {owner}; wait for it to finish, or "
                           "stop it before resuming") from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                     "since": now()}).encode())
            yield
        finally:
            os.close(fd)

    def missing_header(self) -> list[str]:
        return [n for n in (VERSIONS, INPUTS, SEEDS, LOG) if not (self.path / n).exists()]

    def write_header(self, header: Header) -> None:
        """``config.yaml`` first, then whatever else of the header is missing."""
        if not (self.path / CONFIG).exists():
            write_text(self.path / CONFIG, dump_config(header.config))
        missing = self.missing_header()
        if VERSIONS in missing:
            write_text(self.path / VERSIONS, json.dumps(header.versions, indent=1))
        if INPUTS in missing:
            if header.write_observations is not None:
                header.write_observations(self.path / OBSERVATIONS)
            write_text(self.path / INPUTS, json.dumps(header.inputs, indent=1))
        if SEEDS in missing:
            write_text(self.path / SEEDS, json.dumps(header.seeds, indent=1))
        if LOG in missing:
            run = header.config.run
            self.log(f"created; mode {run.mode}, {len(header.seeds['cycles'])} analyses from "
                     f"{header.seeds['cycles'][0]['valid_time']}")
            removed = header.inputs.get("observations", {}).get("removed")
            if removed:
                self.log(f"observation rows removed before use: {removed}")

    def log(self, line: str) -> None:
        with open(self.path / LOG, "a") as f:
            f.write(f"{now()} {line}\n")

    def cycle_dir(self, cycle: int) -> Path:
        return self.path / f"cycle_{cycle:03d}"

    def write_cycle(self, cycle: int, files: dict[str, xr.Dataset]) -> None:
        """``{ANALYSIS: ds, MEMBERS: ds, FORECAST: ds}`` (any subset) into cycle_NNN/."""
        cdir = self.cycle_dir(cycle)
        cdir.mkdir(exist_ok=True)
        for name, ds in files.items():
            write_netcdf(ds, cdir / name, force=True)

    def write_tables(self, tables: Tables) -> None:
        for name, rows in ((METRICS, tables.metrics), (OBS_DIAGNOSTICS, tables.obs),
                           (TIMING, tables.timing)):
            write_text(self.path / name, csv_text(rows, COLUMNS[name]))

    def save_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """``state.npz``: the arrays plus ``meta`` as one JSON string (loads without pickle)."""
        payload = {"meta": np.array(json.dumps({"version": STATE_VERSION, **meta}))}

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, **payload, **{f"array_{k}": v for k, v in arrays.items()})

        atomic_write(self.path / STATE, write)

    def load_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
        """``(meta, arrays)`` of the last completed cycle, or None before the first."""
        path = self.path / STATE
        if not path.exists():
            if (self.path / "state.pt").exists():  # the format before state.npz (pickle)
                raise RunError(f"{self.path / 'state.pt'}: a run state of an earlier version, "
                               "which is not read (it could run code); start the run again")
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                arrays = {k[len("array_"):]: z[k] for k in z.files if k.startswith("array_")}
        except Exception as err:  # noqa: BLE001 - re-raised with the file named
            raise RunError(f"{path}: not a readable run state ({type(err).__name__}: {err}); "
                           "delete it to restart the run from its first cycle") from None
        if not isinstance(meta, dict) or meta.get("version") != STATE_VERSION:
            version = meta.get("version") if isinstance(meta, dict) else "?"
            raise RunError(f"{path}: written by another version of the cycle driver "
                           f"(state version {version}, expected {STATE_VERSION}); delete it "
                           "to restart the run")
        return meta, arrays

    def check_unchanged(self, inputs: dict[str, Any]) -> None:
        """Refuse to continue when ``config.yaml`` or an input (truth, observations,
        checkpoints, error statistics) is not what the run was created with."""
        if not (self.path / INPUTS).exists():
            return  # interrupted before inputs.json: nothing was computed yet
        saved = self.inputs()
        recorded = saved.get("config_sha256")
        if recorded is not None and recorded != sha256(self.path / CONFIG):
            raise RunError(f"{self.path / CONFIG}: changed since the run was created (sha256 "
                           "differs from inputs.json); a resumed run must continue the same "
                           "experiment: restore it, or start a new run")
        changed = [key for key in saved if key != "config_sha256"
                   and not _recorded_equal(saved[key], inputs.get(key))]
        if changed:
            key = changed[0]
            raise RunError(f"{self.path}: its input '{key}' is not what the run was created "
                           f"with ({saved[key]} then, {inputs.get(key)} now); restore it, "
                           "or start a new run")

    def mark_complete(self, cycles: int) -> None:
        write_text(self.path / COMPLETE, f"{now()} {cycles} cycles\n")

    # ------------------------------------------------------------------ reading

    @property
    def complete(self) -> bool:
        return (self.path / COMPLETE).exists()

    def config(self) -> Config:
        if not (self.path / CONFIG).exists():
            if self.path.is_dir() and {p.name for p in self.path.iterdir()} == {LOCK}:
                raise RunError(f"{self.path}: a run stopped before its {CONFIG} was written "
                               "(nothing was computed); delete it and start the run again")
            raise RunError(f"{self.path}: not a run directory (no {CONFIG})")
        try:
            return load_config(self.path / CONFIG)
        except ConfigError as err:
            raise RunError(str(err)) from None

    def inputs(self) -> dict[str, Any]:
        path = self.path / INPUTS
        if not path.exists():
            raise RunError(f"{path}: missing (the run was interrupted while it was being "
                           f"created; 'cycler run --resume {self.path}' completes it)")
        return json.loads(path.read_text())

    def metrics(self) -> list[dict[str, Any]]:
        """``metrics.csv`` with floats and integer lead hours."""
        path = self.path / METRICS
        if not path.exists():
            raise RunError(f"{self.path}: no {METRICS} (not a run directory, or no cycle done)")
        rows = self._rows(METRICS)
        for r in rows:
            r["lead_hours"] = int(r["lead_hours"])
        return rows

    def timing(self) -> list[dict[str, Any]]:
        """``timing.csv``: seconds per stage of every cycle (empty when absent)."""
        return self._rows(TIMING) if (self.path / TIMING).exists() else []

    def obs_rows(self) -> list[dict[str, Any]]:
        """``obs_diagnostics.csv`` with floats (empty cells: NaN); [] when absent."""
        return self._rows(OBS_DIAGNOSTICS) if (self.path / OBS_DIAGNOSTICS).exists() else []

    def _rows(self, name: str) -> list[dict[str, Any]]:
        with open(self.path / name) as f:
            rows = list(csv.DictReader(f))
        for r in rows:
            for k in FLOAT_COLUMNS & set(r):
                r[k] = float(r[k]) if r[k] != "" else float("nan")
        return rows

    def dataset(self, cycle: int, name: str) -> xr.Dataset | None:
        """A file of cycle_NNN/, loaded, or None when absent."""
        path = self.cycle_dir(cycle) / name
        return xr.load_dataset(path) if path.exists() else None

    def identity(self) -> dict[str, Any]:
        """What two runs must share to be compared."""
        cfg = self.config()
        start = dt.datetime.fromisoformat(cfg.run.start).isoformat(timespec="minutes")
        return {"truth": self.inputs()["truth"], "start": start, "days": cfg.run.days,
                "cycle_hours": cfg.run.cycle_hours, "channels": list(cfg.data.channels)}


def same_identity(a: Any, b: Any) -> bool:
    """Two identities agree in everything both recorded (runs of an earlier version
    recorded less of their truth)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return all(same_identity(a[k], b[k]) for k in a.keys() & b.keys())
    return a == b


def _recorded_equal(then: Any, now: Any) -> bool:
    """``now`` agrees with everything ``then`` recorded (a run made by an earlier version
    recorded less: only what it recorded is compared)."""
    if isinstance(then, dict) and isinstance(now, dict):
        return all(k in now and _recorded_equal(v, now[k]) for k, v in then.items())
    return then == now


def default_name(cfg: Config) -> str:
    """``<mode>_<start YYYYmmddTHH>_<created YYYYmmdd-HHMMSS>``."""
    start = dt.datetime.fromisoformat(cfg.run.start).strftime("%Y%m%dT%H")
    created = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{cfg.run.mode}_{start}_{created}"
