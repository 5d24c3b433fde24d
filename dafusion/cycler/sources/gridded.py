"""``run.sources.gridded``: coarse fields of the truth plus seeded noise (the paper's LR
data in the OSSE); the likelihood term is ``obs.gridded.GriddedObs``. The noise of
cycle k comes from ``cycler.seeding.gridded_generator(run.seed, k)``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dafusion.cycler import seeding
from dafusion.cycler.sources.checks import Rejections, checked
from dafusion.grids import grid_from_name
from dafusion.obs.gridded import Coarsening, GriddedObs

if TYPE_CHECKING:
    from dafusion.config import GriddedSourceConfig
    from dafusion.cycler.sources.base import Cycle
    from dafusion.grids import AnyGrid
    from dafusion.obs.base import LikelihoodTerm


class GriddedFieldSource:
    """The truth coarsened to ``settings.grid`` (operator built once per run) plus
    N(0, noise_std²); keeps the run's rejections by reason."""

    name = "gridded"

    def __init__(self, settings: GriddedSourceConfig, grid: AnyGrid, seed: int) -> None:
        self.settings, self.seed = settings, seed
        self.coarsening = Coarsening(grid, grid_from_name(settings.grid), settings.method)
        self.noise_std = (settings.sigma_y ** 0.5 if settings.noise_std is None
                          else settings.noise_std)
        self.rejections = Rejections()

    def withheld(self, cycle: Cycle) -> list[LikelihoodTerm]:
        return []

    def terms(self, cycle: Cycle) -> list[LikelihoodTerm]:
        s = self.settings
        term = checked(GriddedObs.from_truth(
            cycle.truth, self.coarsening, noise_std=self.noise_std,
            generator=seeding.gridded_generator(self.seed, cycle.index), sigma_y=s.sigma_y,
            gamma=s.gamma, weight=s.weight, name=self.name), s, cycle.background)
        self.rejections.add(term)
        return [term]

    def carry(self) -> dict[str, Any]:
        return self.rejections.carry()

    def restore(self, meta: dict[str, Any]) -> None:
        self.rejections.restore(meta)
