"""``run.sources.stations``: the observation table's rows within ±``window_hours`` of
each analysis (radiosondes: IGRA2 or synthetic), after the background check when
one is configured (``obs.qc``); the likelihood term is ``obs.stations.StationObs``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dafusion.config import GAMMA_DEFAULT, StationSourceConfig, of_variable
from dafusion.cycler.sources.checks import Rejections, checked
from dafusion.obs.stations import StationObs
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

    def __init__(self, settings: StationSourceConfig, table: ObservationTable,
                 channels: list[str], normaliser: Normaliser, grid: AnyGrid) -> None:
        self.settings, self.table = settings, table
        self.channels, self.normaliser, self.grid = list(channels), normaliser, grid
        self.sigma_y = _by_variable(settings.sigma_y, None)
        self.gamma = _by_variable(settings.gamma, GAMMA_DEFAULT)
        self.rejections = Rejections()
        self.latest: tuple[int, LikelihoodTerm] | None = None

    def terms(self, cycle: Cycle) -> list[LikelihoodTerm]:
        s = self.settings
        term = checked(StationObs.from_table(
            self.table, channels=self.channels, normaliser=self.normaliser, grid=self.grid,
            time=cycle.time, window_hours=s.window_hours, method=s.method, weight=s.weight,
            name=self.name, sigma_y=self.sigma_y, gamma=self.gamma), s, cycle.background)
        self.rejections.add(term)
        self.latest = (cycle.index, term)
        return [term]

    def current(self, cycle: Cycle) -> LikelihoodTerm:
        """This cycle's term (after :meth:`terms` of the same cycle)."""
        assert self.latest is not None and self.latest[0] == cycle.index, \
            "the stations' terms come before the sources that read them"
        return self.latest[1]

    def carry(self) -> dict[str, Any]:
        return self.rejections.carry()

    def restore(self, meta: dict[str, Any]) -> None:
        self.rejections.restore(meta)


def _by_variable(setting: float | dict | None, default: float | None
                 ) -> float | dict[str, float | None] | None:
    """A per-variable setting as ``StationObs`` takes it: one value, or every variable's."""
    if not isinstance(setting, dict):
        return setting
    return {v: of_variable(setting, v, default) for v in VARIABLES}
