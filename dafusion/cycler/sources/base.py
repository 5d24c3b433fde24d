"""The observation-source contract, and the sources of an experiment.

A source is built once per run from its configuration section and the parts it
needs (never the whole experiment); at every analysis :meth:`ObservationSource.terms`
gives that cycle's likelihood terms (``dafusion.obs.base.LikelihoodTerm``),
:meth:`ObservationSource.withheld` the terms it keeps out of the analysis to verify it
(the stations' ``withhold``), and ``carry``/``restore`` are what it keeps across
cycles in ``state.npz`` (JSON only): the emulator's adaptive Σ_y scales, the
stations' and gridded fields' rejection counts. Every random number a source
draws comes from a generator seeded by ``(run.seed, cycle)`` (``cycler.seeding``),
so a resumed run draws what an uninterrupted one draws.

Adding a source: its likelihood term in ``dafusion/obs/``, a class here with these
four methods in a file of its own, and one line in :func:`build_sources`.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

if TYPE_CHECKING:
    from dafusion.cycler.experiment import Experiment
    from dafusion.cycler.modes import EmulatorState
    from dafusion.obs.base import LikelihoodTerm


@dataclasses.dataclass(frozen=True)
class Cycle:
    """What a source sees of one analysis; fields ``(C, H, W)`` normalised, analysis grid."""

    index: int
    time: np.datetime64
    truth: torch.Tensor  # the nature run (the OSSE's gridded source observes it)
    background: torch.Tensor | None  # of O−B and the background check; None: none yet
    forecast: EmulatorState | None  # the mode's emulator state valid now, physical; or None


class ObservationSource(Protocol):
    """One observation source of a run (see the module docstring)."""

    name: str

    def terms(self, cycle: Cycle) -> list[LikelihoodTerm]:
        """The likelihood terms of analysis ``cycle`` (possibly none)."""
        ...

    def withheld(self, cycle: Cycle) -> list[LikelihoodTerm]:
        """Terms of ``cycle`` that no analysis sees, for the diagnostics (possibly none)."""
        ...

    def carry(self) -> dict[str, Any]:
        """What the source keeps for the next cycle, JSON-serialisable."""
        ...

    def restore(self, meta: dict[str, Any]) -> None:
        """Continue from what :meth:`carry` returned."""
        ...


def build_sources(exp: Experiment, emulator_term: bool = True) -> list[ObservationSource]:
    """The enabled sources of ``exp`` in the order of their terms: stations, gridded,
    emulator (the last only in the emulator modes and when ``emulator_term``: the
    classical methods take the emulator as their background instead)."""
    from dafusion.cycler.sources.emulator import EmulatorSource
    from dafusion.cycler.sources.gridded import GriddedFieldSource
    from dafusion.cycler.sources.stations import StationSource

    src, run, sources = exp.cfg.run.sources, exp.cfg.run, []
    stations = (StationSource(src.stations, exp.table, exp.channels, exp.normaliser, exp.grid)
                if src.stations.enabled else None)
    if stations is not None:
        sources.append(stations)
    if src.gridded.enabled:
        sources.append(GriddedFieldSource(src.gridded, exp.grid, run.seed))
    if exp.emulator is not None and emulator_term:
        sources.append(EmulatorSource(
            src.emulator, exp.emulator_errors, exp.emulator.grid, exp.channels,
            exp.normaliser, exp.grid, exp.cfg.emulator.regrid, run.seed, run.members,
            innovations=stations if src.emulator.adaptive or src.emulator.adaptive_inflation
            else None))
    return sources


def observe(sources: list[ObservationSource], cycle: Cycle) -> list[LikelihoodTerm]:
    """Every source's terms of ``cycle``, in the sources' order."""
    return [term for source in sources for term in source.terms(cycle)]


def verifying(sources: list[ObservationSource], cycle: Cycle) -> list[LikelihoodTerm]:
    """Every source's withheld terms of ``cycle``: never given to an analysis."""
    return [term for source in sources for term in source.withheld(cycle)]


def carry(sources: list[ObservationSource]) -> dict[str, dict[str, Any]]:
    """``{source name: what it keeps}``."""
    return {s.name: s.carry() for s in sources}


def restore(sources: list[ObservationSource], meta: dict[str, dict[str, Any]]) -> None:
    """Give every source what :func:`carry` saved (a source absent there starts anew)."""
    for s in sources:
        s.restore(meta.get(s.name, {}))
