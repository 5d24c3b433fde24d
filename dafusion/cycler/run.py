"""``cycler run``: the assimilation cycle.

For each analysis time t_k = start + k · 12 h (paper section 3, Algorithm 1)::

    terms    <- the enabled sources at t_k + the mode's pseudo-observation
    ensemble <- M posterior samples, guided by Σ_k λ_k log p(y_k | D_θ(x; σ))
                (or a classical analysis, ``run.method``: ``cycler.analysis``)
    mode.advance(ensemble)       # plain: nothing; forecast/reinit: the next emulator state
    run directory <- analysis, metrics, observation diagnostics, state

The parts are elsewhere: the experiment (``experiment.py``), the modes
(``modes.py``), the sources (``sources.py``), the files (``rundir.py``), the rows
(``record.py``) and the seeds (``seeding.py``). Member noise is seeded by
(seed, cycle, member) and ``state.npz`` is replaced after a cycle's files, so a
run killed at any moment and resumed ends with the same ``metrics.csv`` as an
uninterrupted run. Under torchrun the members are split across the processes and
rank 0 alone writes (``ranks.py``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from dafusion.config import Config
from dafusion.cycler.analysis import analysis_method
from dafusion.cycler.experiment import Experiment, build_experiment
from dafusion.cycler.modes import EmulatorState, Mode
from dafusion.cycler.ranks import SINGLE, Ranks
from dafusion.cycler.record import analysis_dataset, metric_rows, obs_row
from dafusion.cycler.rundir import ANALYSIS, FORECAST, MEMBERS, RunDir, RunError, Tables
from dafusion.cycler.sources import cycle_terms
from dafusion.io import state_dataset
from dafusion.progress import null_progress

__all__ = ["CycleState", "RunError", "resume_run", "run_cycles", "run_experiment",
           "start_run"]


@dataclasses.dataclass
class CycleState:
    """Where a run stands: the next analysis to make and the rows written so far."""

    cycle: int = 0
    tables: Tables = dataclasses.field(default_factory=Tables)


def run_cycles(exp: Experiment, run_dir: str | Path, *,
               progress: Callable[..., Any] | None = None) -> CycleState:
    """Run (or continue) the cycles of ``exp`` in the existing run directory ``run_dir``."""
    run, mode, method = RunDir(run_dir), exp.mode(), analysis_method(exp)
    main = exp.ranks.main  # only rank 0 writes (cycler.ranks); the others compute
    state = _restore(run, mode, main)
    units = "cycles × sampler steps" if method.units > 1 else "cycles"
    progress = progress if main else None
    with (progress or null_progress)(len(exp.times) * method.units, units) as bar, \
            _logged_stop(run, state, main):
        bar.update(state.cycle * method.units)
        method.progress = bar.update
        for cycle in range(state.cycle, len(exp.times)):
            t, clock = exp.times[cycle], _Clock()
            truth = exp.truth.at(t).values.astype(np.float64)  # (C, H, W) physical
            pseudo = mode.pseudo_obs(cycle)  # the emulator state valid at t, or None
            background = _normalised(exp, mode.background(cycle))  # (C, H, W) or None
            terms = cycle_terms(exp, cycle, t, _normalised(exp, truth),
                                pseudo if method.emulator_term else None, background)
            if pseudo is not None and pseudo.error_scale:
                mode.adapt(pseudo.error_scale)  # cycler.adaptive's scales, for the next cycle
                if main:
                    run.log(f"cycle {cycle}: emulator Σ_y scale " + " ".join(
                        f"{c} {v:.3g}" for c, v in pseudo.error_scale.items()))
            clock.lap("observations_s")
            ensemble = method(cycle, terms, mode)  # (M, C, H, W) physical
            clock.lap("analysis_s")
            if cycle + 1 < len(exp.times):
                mode.advance(cycle, ensemble)
            clock.lap("forecast_s")
            if not main:
                state.cycle += 1
                continue
            line = _record(run, state, exp, cycle, ensemble, truth, terms, pseudo, background,
                           clock)
            _save(run, state, mode, line)
    if main:
        run.mark_complete(len(exp.times))
    return state


def start_run(cfg: Config, run_dir: str | Path, *, device: str = "cpu",
              progress: Callable[..., Any] | None = None,
              ranks: Ranks = SINGLE) -> CycleState:
    """Build the experiment of ``cfg``, create ``run_dir`` and run every cycle (this
    process's share of the members with ``ranks``: ``cycler.ranks``)."""
    return run_experiment(build_experiment(cfg, device, ranks), run_dir, progress=progress)


def run_experiment(exp: Experiment, run_dir: str | Path, *,
                   progress: Callable[..., Any] | None = None) -> CycleState:
    """Create ``run_dir`` for an experiment (from a configuration or from parts) and run it."""
    if not exp.ranks.main:
        exp.ranks.barrier()  # rank 0 has created the directory
        return run_cycles(exp, run_dir)
    run = RunDir.make(run_dir)
    with run.locked():
        run.write_header(exp.header())
        exp.ranks.barrier()
        return run_cycles(exp, run_dir, progress=progress)


def resume_run(run_dir: str | Path, *, device: str = "cpu",
               progress: Callable[..., Any] | None = None,
               ranks: Ranks = SINGLE) -> CycleState:
    """Continue an interrupted run with its own configuration (and finish its header)."""
    run = RunDir(run_dir)
    cfg = run.config()
    if run.complete:
        raise RunError(f"{run.path}: already complete")
    if not ranks.main:
        exp = build_experiment(cfg, device, ranks)
        ranks.barrier()  # rank 0 has checked the inputs and completed the header
        return run_cycles(exp, run.path)
    with run.locked():
        exp = build_experiment(cfg, device, ranks)
        run.check_unchanged(exp.inputs)  # what inputs.json recorded, if it was written
        if run.missing_header():
            run.write_header(exp.header())
            run.log("header completed on resume (the run was interrupted while being created)")
        ranks.barrier()
        return run_cycles(exp, run.path, progress=progress)


# --------------------------------------------------------------------------- helpers


class _Clock:
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


def _normalised(exp: Experiment, field: np.ndarray | None) -> torch.Tensor | None:
    if field is None:
        return None
    return torch.as_tensor(exp.normaliser.normalise(field), dtype=torch.float32)


def _record(run: RunDir, state: CycleState, exp: Experiment, cycle: int, ens: np.ndarray,
            truth: np.ndarray, terms: list, pseudo: EmulatorState | None,
            background: torch.Tensor | None, clock: _Clock) -> str:
    """The cycle's files and rows, then the tables; returns the cycle's log line."""
    t, run_cfg = exp.times[cycle], exp.cfg.run
    files = {ANALYSIS: analysis_dataset(ens, exp.channels, exp.grid, t, {
        "cycle": cycle, "members": int(ens.shape[0]), "mode": run_cfg.mode})}
    if run_cfg.save_members:
        files[MEMBERS] = state_dataset(ens, exp.channels, exp.grid, time=t)
    if pseudo is not None:
        files[FORECAST] = state_dataset(pseudo.values, pseudo.channels, exp.emulator.grid,
                                        time=t, attrs={"title": "emulator state used as "
                                                                "pseudo-observation"})
    run.write_cycle(cycle, files)
    lead = int((t - exp.times[0]) / np.timedelta64(1, "h"))
    state.tables.metrics += metric_rows(cycle, t, lead, ens, truth, exp.channels, exp.grid)
    mean = _normalised(exp, ens.mean(0))
    state.tables.obs += [obs_row(cycle, t, term, background, mean) for term in terms]
    clock.lap("write_s")
    state.tables.timing.append(clock.row(cycle, t))
    run.write_tables(state.tables)
    rmse = {r["channel"]: f"{r['rmse']:.3g}" for r in state.tables.metrics[-len(exp.channels):]}
    return (f"cycle {cycle} {str(t)[:16]}: {clock.last - clock.start:.1f} s (analysis "
            f"{clock.laps['analysis_s']:.1f} s); terms {[tm.name for tm in terms]}; rmse {rmse}")


def _save(run: RunDir, state: CycleState, mode: Mode, line: str) -> None:
    """``state.npz`` says the cycle is complete; then its log line."""
    state.cycle += 1
    meta, arrays = mode.carry()
    run.save_state({"cycle": state.cycle, "tables": dataclasses.asdict(state.tables),
                    "mode": meta}, arrays)
    run.log(line)


def _restore(run: RunDir, mode: Mode, main: bool = True) -> CycleState:
    saved = run.load_state()
    if saved is None:
        return CycleState()
    meta, arrays = saved
    try:
        state = CycleState(int(meta["cycle"]), Tables(**meta["tables"]))
        mode.restore(meta["mode"], arrays)
    except (KeyError, TypeError, ValueError) as err:
        raise RunError(f"{run / 'state.npz'}: incomplete run state ({type(err).__name__}: "
                       f"{err}); delete it to restart the run from its first cycle") from None
    if main:
        run.log(f"resumed at cycle {state.cycle}")
    return state


@contextlib.contextmanager
def _logged_stop(run: RunDir, state: CycleState, main: bool = True) -> Iterator[None]:
    try:
        yield
    except BaseException as err:
        if main:
            run.log(f"stopped at cycle {state.cycle}: {type(err).__name__}: {err}")
        raise
