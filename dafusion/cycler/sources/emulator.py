"""``run.sources.emulator``: the mode's emulator state valid at the analysis as a coarse
pseudo-observation on the emulator grid (the paper's LUCIE term); the likelihood term
is ``obs.forecast.ForecastObs``.

Its error: one constant, or the emulator's error statistics at the state's lead
(``dafusion.emulator.errors``) times ``error_scale`` and, with ``adaptive``, the
per-channel scales estimated from the stations' innovations (``adaptive.py``), which
this source keeps across cycles. With ``perturb`` member m sees the state plus its own
draw of the error model, from ``cycler.seeding.perturbation_generators(run.seed, k)``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from dafusion.cycler import seeding
from dafusion.cycler.sources.adaptive import innovation_scales, smoothed
from dafusion.emulator.errors import at_lead
from dafusion.obs.forecast import ForecastObs
from dafusion.spectra import point_variance

if TYPE_CHECKING:
    import torch

    from dafusion.config import EmulatorSourceConfig
    from dafusion.cycler.modes import EmulatorState
    from dafusion.cycler.sources.base import Cycle
    from dafusion.cycler.sources.stations import StationSource
    from dafusion.grids import AnyGrid
    from dafusion.normalise import Normaliser
    from dafusion.obs.base import LikelihoodTerm


class EmulatorSource:
    """The emulator pseudo-observation; ``innovations``: the station source whose
    innovations scale its Σ_y (``adaptive``), or None."""

    name = "emulator"

    def __init__(self, settings: EmulatorSourceConfig, statistics: xr.Dataset | None,
                 emulator_grid: AnyGrid, channels: list[str], normaliser: Normaliser,
                 grid: AnyGrid, regrid: str, seed: int, members: int,
                 innovations: StationSource | None = None) -> None:
        self.settings, self.statistics, self.emulator_grid = settings, statistics, emulator_grid
        self.channels, self.normaliser, self.grid, self.regrid = list(channels), normaliser, \
            grid, regrid
        self.seed, self.members, self.innovations = seed, members, innovations
        self.error_scale: dict[str, float] = {}  # adaptive, per channel, kept across cycles

    def withheld(self, cycle: Cycle) -> list[LikelihoodTerm]:
        return []

    def terms(self, cycle: Cycle) -> list[LikelihoodTerm]:
        state, s = cycle.forecast, self.settings
        if state is None:
            return []
        scale = self.error_scale
        if self.innovations is not None and cycle.background is not None:
            scale = smoothed(self.error_scale, self._estimate(cycle, state, cycle.background))
            if scale:  # no channel had enough observations: keep the scales for the next
                self.error_scale = scale
        values = state.values
        return [ForecastObs.from_forecast(
            values if values.shape[0] > 1 else values[0], forecast_grid=self.emulator_grid,
            forecast_channels=state.channels, channels=self.channels,
            normaliser=self.normaliser, grid=self.grid, regrid=self.regrid,
            **self._error(state, scale), weight=s.weight, name=self.name,
            perturb=seeding.perturbation_generators(self.seed, cycle.index, self.members)
            if s.perturb else None)]

    def _estimate(self, cycle: Cycle, state: EmulatorState,
                  background: torch.Tensor) -> dict[str, float]:
        """ŝ_c of this cycle from the stations' innovations (``adaptive.py``)."""
        stats = self.statistics
        shared = [c for c in state.channels if c in self.channels]
        idx = np.array([self.channels.index(c) for c in shared])
        q = self.normaliser.variance_at(point_variance(at_lead(stats, state.lead_hours, shared)),
                                        idx)
        u = self.normaliser.variance_at(stats["unresolved_variance"].sel(channel=shared).values,
                                        idx)
        return innovation_scales(self.innovations.current(cycle), background, self.channels,
                                 dict(zip(shared, q)), dict(zip(shared, u)))

    def _error(self, state: EmulatorState, scales: dict[str, float]) -> dict[str, Any]:
        """Σ_y, Γ̂ and covariance of the term: constant, or the statistics at the state's
        lead scaled by ``error_scale`` and the adaptive per-channel ``scales``."""
        e, stats = self.settings, self.statistics
        if e.error_model == "constant":
            return {"sigma_y": e.sigma_y, "gamma": e.gamma, "covariance": "diagonal"}
        multivariate = e.covariance == "multivariate"
        scale = np.sqrt([scales.get(c, 1.0) for c in state.channels]) * math.sqrt(e.error_scale)
        variance = at_lead(stats, state.lead_hours, state.channels, multivariate)
        variance = (variance * scale[None, :, None] * scale[None, None, :] if multivariate
                    else variance * scale[:, None] ** 2)
        gamma = (stats["anomaly_variance"].sel(channel=state.channels).values
                 if e.gamma == "prior" else e.gamma)
        return {"sigma_y": variance, "gamma": gamma,
                "covariance": "spectral" if multivariate else e.covariance}

    def carry(self) -> dict[str, Any]:
        return {"error_scale": dict(self.error_scale)} if self.innovations is not None else {}

    def restore(self, meta: dict[str, Any]) -> None:
        self.error_scale = {str(k): float(v) for k, v in meta.get("error_scale", {}).items()}
