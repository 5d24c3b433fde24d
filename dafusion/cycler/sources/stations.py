"""``run.sources.stations``: the observation table's rows within ±``window_hours`` of
each analysis (radiosondes: IGRA2 or synthetic), after the background check when
one is configured (``obs.qc``); the likelihood term is ``obs.stations.StationObs``.

``withhold = f`` keeps round(f · n) of the table's n stations (drawn once per run with
``withhold_seed``, whole stations: every level, variable and time) out of every
analysis; :meth:`StationSource.withheld` gives their rows of each cycle as a term
named ``stations_withheld`` that only the diagnostics read (O−A, O−B, CRPS and
spread at stations the analysis never saw: the check a user can make on real data
where there is no truth). They pass no background check: verification keeps every
row that the table's screen kept."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from dafusion.config import GAMMA_DEFAULT, StationSourceConfig, of_variable
from dafusion.cycler.sources.checks import Rejections, checked
from dafusion.obs.stations import NoObservations, StationObs
from dafusion.variables import VARIABLES

if TYPE_CHECKING:
    from dafusion.cycler.sources.base import Cycle
    from dafusion.grids import AnyGrid
    from dafusion.normalise import Normaliser
    from dafusion.obs.base import LikelihoodTerm
    from dafusion.obs.table import ObservationTable


class StationSource:
    """Station observations; keeps the run's rejections by reason (``carry``) and the
    latest cycle's term (the adaptive emulator error reads its innovations)."""

    name = "stations"
    withheld_name = "stations_withheld"

    def __init__(self, settings: StationSourceConfig, table: ObservationTable,
                 channels: list[str], normaliser: Normaliser, grid: AnyGrid) -> None:
        self.settings = settings
        self.withheld_ids = withheld_stations(table, settings.withhold, settings.withhold_seed)
        out = np.isin(table.station_id, self.withheld_ids)
        self.table, self.verification = table.subset(~out), table.subset(out)
        self.channels, self.normaliser, self.grid = list(channels), normaliser, grid
        self.sigma_y = _by_variable(settings.sigma_y, None)
        self.gamma = _by_variable(settings.gamma, GAMMA_DEFAULT)
        self.rejections = Rejections()
        self.latest: tuple[int, LikelihoodTerm] | None = None

    def terms(self, cycle: Cycle) -> list[LikelihoodTerm]:
        s = self.settings
        term = checked(self._term(self.table, cycle, self.name), s, cycle.background)
        self.rejections.add(term)
        self.latest = (cycle.index, term)
        return [term]

    def withheld(self, cycle: Cycle) -> list[LikelihoodTerm]:
        """The withheld stations' rows of ``cycle`` (none without ``withhold``, or when
        none of them reported within the window)."""
        if not len(self.verification):
            return []
        try:
            return [self._term(self.verification, cycle, self.withheld_name)]
        except NoObservations:
            return []

    def _term(self, table: ObservationTable, cycle: Cycle, name: str) -> StationObs:
        s = self.settings
        return StationObs.from_table(
            table, channels=self.channels, normaliser=self.normaliser, grid=self.grid,
            time=cycle.time, window_hours=s.window_hours, method=s.method, weight=s.weight,
            name=name, sigma_y=self.sigma_y, gamma=self.gamma)

    def current(self, cycle: Cycle) -> LikelihoodTerm:
        """This cycle's term (after :meth:`terms` of the same cycle)."""
        assert self.latest is not None and self.latest[0] == cycle.index, \
            "the stations' terms come before the sources that read them"
        return self.latest[1]

    def carry(self) -> dict[str, Any]:
        return self.rejections.carry()

    def restore(self, meta: dict[str, Any]) -> None:
        self.rejections.restore(meta)


def withheld_stations(table: ObservationTable, fraction: float, seed: int) -> np.ndarray:
    """The ids of round(``fraction`` · n) of the table's n stations, drawn without
    replacement by ``numpy.random.default_rng(seed)`` from the sorted ids."""
    ids = np.unique(table.station_id)
    count = int(round(fraction * ids.size))
    if not count:
        return ids[:0]
    return np.sort(np.random.default_rng(seed).choice(ids, size=count, replace=False))


def _by_variable(setting: float | dict | None, default: float | None
                 ) -> float | dict[str, float | None] | None:
    """A per-variable setting as ``StationObs`` takes it: one value, or every variable's."""
    if not isinstance(setting, dict):
        return setting
    return {v: of_variable(setting, v, default) for v in VARIABLES}
