"""Who writes the run directory while a run computes: rank 0 alone.

:func:`recorder` gives the process its recorder once; the cycle loop calls the same
methods on every rank and never asks which rank it is on:

* :func:`created` and :func:`resumed`: rank 0 creates or reopens the directory under
  its lock (the other ranks wait at the same barrier);
* :class:`Recorder` (rank 0, and every one-process run) writes each cycle's files and
  rows (``record.py``), then ``state.npz`` (which says the cycle is complete), logs,
  shows progress, and marks the run complete;
* :class:`Follower` (the other ranks under torchrun, ``ranks.py``) writes nothing; it
  reads what rank 0 wrote (``state.npz`` on resume).

Both restore a run from its ``state.npz``: the next cycle, the tables so far, the
mode's and the sources' carried state.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dafusion.cycler.record import analysis_dataset, metric_rows, obs_row
from dafusion.cycler.rundir import (
    ANALYSIS,
    CONFIG,
    FORECAST,
    MEMBERS,
    STATE,
    RunDir,
    RunError,
    Tables,
)
from dafusion.cycler.sources import carry, restore
from dafusion.io import state_dataset
from dafusion.progress import null_progress

if TYPE_CHECKING:
    from dafusion.cycler.experiment import Experiment
    from dafusion.cycler.modes import Mode
    from dafusion.cycler.ranks import Ranks
    from dafusion.cycler.sources import Cycle, ObservationSource
    from dafusion.obs.base import LikelihoodTerm


@dataclasses.dataclass
class CycleState:
    """Where a run stands: the next analysis to make and the rows written so far."""

    cycle: int = 0
    tables: Tables = dataclasses.field(default_factory=Tables)


class Clock:
    """Seconds per stage of one cycle (``timing.csv``)."""

    def __init__(self) -> None:
        self.start = self.last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name], self.last = now - self.last, now

    def row(self, cycle: int, t: np.datetime64) -> dict[str, Any]:
        return {"cycle": cycle, "valid_time": str(t)[:16], **self.laps,
                "total_s": self.last - self.start}


def recorder(exp: Experiment, run_dir: str | Path) -> Recorder | Follower:
    """This process's recorder of ``run_dir``: rank 0 writes, the others follow."""
    return (Recorder if exp.ranks.main else Follower)(exp, RunDir(run_dir))


@contextlib.contextmanager
def created(exp: Experiment, run_dir: str | Path) -> Iterator[None]:
    """Rank 0 makes the new directory, holds its lock and writes its header; the other
    ranks wait for that. The body runs the cycles."""
    if exp.ranks.main:
        run = RunDir.make(run_dir)
        with run.locked():
            run.write_header(exp.header())
            exp.ranks.barrier()
            yield
    else:
        exp.ranks.barrier()
        yield


@contextlib.contextmanager
def resumed(run_dir: str | Path, ranks: Ranks,
            build: Callable[[], Experiment]) -> Iterator[Experiment]:
    """The experiment ``build()`` of an existing run: on rank 0 under the directory's
    lock (a second resume is refused at once), checked against ``inputs.json`` and with
    its header completed; the other ranks build it and wait for rank 0."""
    if not ranks.main:
        exp = build()
        ranks.barrier()
        yield exp
        return
    run = RunDir(run_dir)
    with run.locked():
        exp = build()
        run.check_unchanged(exp.inputs)  # what inputs.json recorded, if it was written
        check_state(exp, run)  # before anything is written
        if run.missing_header():
            run.write_header(exp.header())
            run.log("header completed on resume (the run was interrupted while being "
                    "created)")
        ranks.barrier()
        yield exp


def check_state(exp: Experiment, run: RunDir) -> None:
    """``state.npz`` belongs to this experiment: computed from the same inputs (its
    fingerprint, which holds where ``inputs.json`` was deleted), at a cycle of the
    window, with one table row per cycle done and arrays of the experiment's shapes."""
    saved = run.load_state()
    if saved is None:
        return
    meta, arrays = saved
    path = run / STATE

    def refuse(what: str) -> RunError:
        return RunError(f"{path}: {what}; delete it to restart the run from its first cycle, "
                        "or start a new run")

    lacks = [k for k in ("cycle", "fingerprint", "tables", "mode", "sources") if k not in meta]
    if lacks:
        raise refuse(f"incomplete run state (lacks {lacks})")
    then = str(meta["fingerprint"])[:12]
    if meta["fingerprint"] != exp.fingerprint:
        raise RunError(f"{path}: its cycles were computed from other inputs than the run's "
                       f"{CONFIG} and files give now (fingerprint {then} then, "
                       f"{exp.fingerprint[:12]} now); restore them, or start a new run")
    cycle, n = meta.get("cycle"), len(exp.times)
    if not isinstance(cycle, int) or isinstance(cycle, bool) or not 1 <= cycle <= n:
        raise refuse(f"cycle {cycle!r} is not a cycle of this run (1..{n} done)")
    tables = meta.get("tables")
    expected_rows = {"metrics": cycle * len(exp.channels), "timing": cycle}
    for name, rows in expected_rows.items():
        got = len(tables.get(name, [])) if isinstance(tables, dict) else None
        if got != rows:
            raise refuse(f"{got} {name} rows for {cycle} cycles done (expected {rows})")
    for name, shape in _state_shapes(exp).items():
        if name in arrays and not shape(arrays[name].shape):
            raise refuse(f"array '{name}' has shape {arrays[name].shape}, not one of this "
                         "run's")
        if name in arrays and not np.all(np.isfinite(arrays[name])):
            raise refuse(f"array '{name}' holds NaN or infinite values")


def _state_shapes(exp: Experiment) -> dict[str, Callable[[tuple[int, ...]], bool]]:
    """What each carried array's shape must satisfy: the analysis mean ``(C, H, W)`` on
    the analysis grid, the emulator state ``(members or 1, C_emulator, h, w)``."""
    fine = (len(exp.channels), *exp.grid.shape)
    out = {"previous": lambda shape: shape == fine}
    if exp.emulator is not None:
        coarse = (len(exp.emulator.channels), *exp.emulator.grid.shape)
        members = {1, exp.cfg.run.members}
        out["pseudo_obs"] = lambda shape: (len(shape) == 4 and shape[1:] == coarse
                                           and shape[0] in members)
    return out


class Follower:
    """A rank that computes and writes nothing (see the module docstring)."""

    def __init__(self, exp: Experiment, run: RunDir) -> None:
        self.exp, self.run = exp, run

    def restore(self, mode: Mode, sources: list[ObservationSource]) -> CycleState:
        """The state after the last complete cycle (the first cycle's without one)."""
        saved = self.run.load_state()
        if saved is None:
            return CycleState()
        meta, arrays = saved
        try:
            state = CycleState(int(meta["cycle"]), Tables(**meta["tables"]))
            mode.restore(meta["mode"], arrays)
            restore(sources, meta["sources"])
        except (KeyError, TypeError, ValueError) as err:
            raise RunError(f"{self.run / 'state.npz'}: incomplete run state "
                           f"({type(err).__name__}: {err}); delete it to restart the run "
                           "from its first cycle") from None
        return state

    def progress(self, progress: Callable[..., Any] | None, steps: int,
                 state: CycleState) -> Any:
        """A progress bar over every cycle's ``steps``, advanced to ``state``."""
        return null_progress(len(self.exp.times) * steps, "")

    @contextlib.contextmanager
    def stopped(self, state: CycleState) -> Iterator[None]:
        """Says where the run stopped when the body raises."""
        yield

    def record(self, state: CycleState, now: Cycle, ensemble: np.ndarray, truth: np.ndarray,
               terms: list[LikelihoodTerm], clock: Clock, mode: Mode,
               sources: list[ObservationSource]) -> None:
        """Cycle ``now.index`` is done (``ensemble (M, C, H, W)``, ``truth (C, H, W)``)."""

    def complete(self) -> None:
        """Every cycle is done."""


class Recorder(Follower):
    """Rank 0: writes the run directory (see the module docstring)."""

    def restore(self, mode: Mode, sources: list[ObservationSource]) -> CycleState:
        state = super().restore(mode, sources)
        if state.cycle:
            self.run.log(f"resumed at cycle {state.cycle}")
        return state

    @contextlib.contextmanager
    def progress(self, progress: Callable[..., Any] | None, steps: int,
                 state: CycleState) -> Iterator[Any]:
        with (progress or null_progress)(len(self.exp.times) * steps, "cycles × sampler steps"
                                         if steps > 1 else "cycles") as bar:
            bar.update(state.cycle * steps)
            yield bar

    @contextlib.contextmanager
    def stopped(self, state: CycleState) -> Iterator[None]:
        try:
            yield
        except BaseException as err:
            self.run.log(f"stopped at cycle {state.cycle}: {type(err).__name__}: {err}")
            raise

    def record(self, state: CycleState, now: Cycle, ensemble: np.ndarray, truth: np.ndarray,
               terms: list[LikelihoodTerm], clock: Clock, mode: Mode,
               sources: list[ObservationSource]) -> None:
        """The cycle's files and rows, the tables, then ``state.npz`` and the log."""
        exp, cycle, t = self.exp, now.index, now.time
        self.run.write_cycle(cycle, self._files(now, ensemble))
        lead = int((t - exp.times[0]) / np.timedelta64(1, "h"))
        state.tables.metrics += metric_rows(cycle, t, lead, ensemble, truth, exp.channels,
                                            exp.grid)
        mean, members = exp.normalised(ensemble.mean(0)), exp.normalised(ensemble)
        state.tables.obs += [obs_row(cycle, t, term, now.background, mean, members)
                             for term in terms]
        clock.lap("write_s")
        state.tables.timing.append(clock.row(cycle, t))
        self.run.write_tables(state.tables)
        meta, arrays = mode.carry()
        kept = carry(sources)
        self.run.save_state({"cycle": cycle + 1, "fingerprint": exp.fingerprint,
                             "tables": dataclasses.asdict(state.tables), "mode": meta,
                             "sources": kept}, arrays)
        rmse = {r["channel"]: f"{r['rmse']:.3g}" for r in state.tables.metrics[-len(exp.channels):]}
        self.run.log(f"cycle {cycle} {str(t)[:16]}: {clock.last - clock.start:.1f} s (analysis "
                     f"{clock.laps['analysis_s']:.1f} s); terms {[tm.name for tm in terms]}; "
                     f"rmse {rmse}" + _kept(kept))

    def _files(self, now: Cycle, ensemble: np.ndarray) -> dict[str, Any]:
        """``analysis.nc``, ``members.nc`` and ``forecast.nc`` of the cycle."""
        exp, t, run_cfg = self.exp, now.time, self.exp.cfg.run
        files = {ANALYSIS: analysis_dataset(ensemble, exp.channels, exp.grid, t, {
            "cycle": now.index, "members": int(ensemble.shape[0]), "mode": run_cfg.mode})}
        if run_cfg.save_members:
            files[MEMBERS] = state_dataset(ensemble, exp.channels, exp.grid, time=t)
        if now.forecast is not None:
            files[FORECAST] = state_dataset(
                now.forecast.values, now.forecast.channels, exp.emulator.grid, time=t,
                attrs={"title": "emulator state used as pseudo-observation"})
        return files

    def complete(self) -> None:
        self.run.mark_complete(len(self.exp.times))


def _kept(kept: dict[str, dict[str, Any]]) -> str:
    """What the sources keep, for the log: ``; emulator error_scale t850 1.15 sp 1.3``."""
    def value(v: Any) -> str:
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    return "".join(f"; {name} {key} " + " ".join(f"{k} {value(v)}" for k, v in part.items())
                   for name, meta in kept.items() for key, part in meta.items() if part)
