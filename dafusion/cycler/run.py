"""``cycler run``: the assimilation cycle.

For each analysis time t_k = start + k · 12 h (paper section 3, Algorithm 1)::

    observe:  terms    <- every source's likelihood terms at t_k (stations, gridded,
                          the mode's emulator state as a pseudo-observation), and the
                          withheld stations' terms, which no analysis sees
    analyse:  ensemble <- M posterior samples, guided by Σ_k λ_k log p(y_k | D_θ(x; σ))
                          (or a classical analysis, ``run.method``: ``cycler.analysis``)
              mode.advance(ensemble)   # plain: nothing; forecast/reinit: the next state
    record:   run directory <- analysis, metrics, observation diagnostics, state
    advance:  k <- k + 1

The parts are elsewhere: the experiment (``experiment.py``), the modes
(``modes.py``), the sources (``sources/``), the writer (``recorder.py``: rank 0
writes, the other ranks follow), the files (``rundir.py``), the rows
(``record.py``) and the seeds (``seeding.py``). Member noise is seeded by
(seed, cycle, member) and ``state.npz`` is replaced after a cycle's files, so a
run killed at any moment and resumed ends with the same ``metrics.csv`` as an
uninterrupted run. Under torchrun the members are split across the processes and
rank 0 alone writes (``ranks.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dafusion.config import Config
from dafusion.cycler.analysis import analysis_method
from dafusion.cycler.experiment import Experiment, build_experiment
from dafusion.cycler.modes import Mode
from dafusion.cycler.ranks import SINGLE, Ranks
from dafusion.cycler.recorder import Clock, CycleState, created, recorder, resumed
from dafusion.cycler.rundir import RunDir, RunError
from dafusion.cycler.sources import Cycle, build_sources, observe, verifying

__all__ = ["CycleState", "RunError", "resume_run", "run_cycles", "run_experiment",
           "start_run"]


def run_cycles(exp: Experiment, run_dir: str | Path, *,
               progress: Callable[..., Any] | None = None) -> CycleState:
    """Run (or continue) the cycles of ``exp`` in the existing run directory ``run_dir``."""
    mode, method = exp.mode(), analysis_method(exp)
    sources = build_sources(exp, method.emulator_term)
    book = recorder(exp, run_dir)  # rank 0 writes; the other ranks follow (cycler.ranks)
    state = book.restore(mode, sources)
    with book.progress(progress, method.units, state) as bar, book.stopped(state):
        method.progress = bar.update
        for cycle in range(state.cycle, len(exp.times)):
            clock = Clock()
            now, truth = _cycle(exp, cycle, mode)
            terms, withheld = observe(sources, now), verifying(sources, now)
            clock.lap("observations_s")
            ensemble = method(cycle, terms, mode)  # (M, C, H, W) physical
            clock.lap("analysis_s")
            if cycle + 1 < len(exp.times):
                mode.advance(cycle, ensemble)  # the emulator state valid at the next cycle
            clock.lap("forecast_s")
            book.record(state, now, ensemble, truth, terms + withheld, clock, mode, sources)
            state.cycle = cycle + 1
    book.complete()
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
    with created(exp, run_dir):
        return run_cycles(exp, run_dir, progress=progress)


def resume_run(run_dir: str | Path, *, device: str = "cpu",
               progress: Callable[..., Any] | None = None,
               ranks: Ranks = SINGLE) -> CycleState:
    """Continue an interrupted run with its own configuration (and finish its header)."""
    run = RunDir(run_dir)
    cfg = run.config()
    if run.complete:
        raise RunError(f"{run.path}: already complete")
    with resumed(run.path, ranks, lambda: build_experiment(cfg, device, ranks)) as exp:
        return run_cycles(exp, run.path, progress=progress)


def _cycle(exp: Experiment, cycle: int, mode: Mode) -> tuple[Cycle, np.ndarray]:
    """What the sources see of analysis ``cycle``, and the truth ``(C, H, W)`` physical."""
    t = exp.times[cycle]
    truth = exp.truth.at(t).values.astype(np.float64)
    background = mode.background(cycle)  # (C, H, W) physical, or None
    return Cycle(cycle, t, exp.normalised(truth),
                 None if background is None else exp.normalised(background),
                 mode.pseudo_obs(cycle)), truth

