"""``run.sources.emulator``: the mode's emulator state valid at the analysis as a coarse
pseudo-observation on the emulator grid (the paper's LUCIE term); the likelihood term
is ``obs.forecast.ForecastObs``.

Its error: one constant, or the emulator's error statistics at the state's lead
(``dafusion.emulator.errors``) times ``error_scale`` and, with ``adaptive``, the
per-channel scales estimated from the stations' innovations (``adaptive.py``), which
this source keeps across cycles. With ``perturb`` member m sees the state plus its own
draw of the error model, from ``cycler.seeding.perturbation_generators(run.seed, k)``.

Reinit members only: ``adaptive_inflation`` spreads the members' forecasts about their
mean by per-channel factors estimated from the stations' innovations (``adaptive.py``,
kept across cycles); ``hybrid`` adds the members' covariance per degree to Σ_y and
observes their mean instead (docs/long_cycles.md).
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import xarray as xr

from dafusion.cycler import seeding
from dafusion.cycler.sources.adaptive import (
    INFLATION_SMOOTHING,
    inflation_factors,
    innovation_scales,
    smoothed,
)
from dafusion.emulator.errors import at_lead
from dafusion.obs.forecast import ForecastObs
from dafusion.regrid import make_regridder, max_degree
from dafusion.spectra import analysis_matrix, degree_covariance, point_variance

if TYPE_CHECKING:
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
        self.inflation: dict[str, float] = {}  # adaptive_inflation, per channel, kept too
        self._analysis: torch.Tensor | None = None  # the emulator grid's transform (hybrid)
        self._to_analysis: torch.nn.Module | None = None  # emulator -> analysis grid

    def withheld(self, cycle: Cycle) -> list[LikelihoodTerm]:
        return []

    def terms(self, cycle: Cycle) -> list[LikelihoodTerm]:
        state, s = cycle.forecast, self.settings
        if state is None:
            return []
        known = self.innovations is not None and cycle.background is not None
        if s.adaptive and known:  # a channel without enough observations keeps its scale
            self.error_scale = {**self.error_scale, **smoothed(
                self.error_scale, self._estimate(cycle, state, cycle.background))}
        if s.adaptive_inflation and known and state.values.shape[0] > 1:
            self.inflation = {**self.inflation, **smoothed(
                self.inflation, self._inflation_estimate(cycle, state), INFLATION_SMOOTHING)}
            state = self._inflated(state)
        scale = self.error_scale
        values = state.values
        if values.shape[0] == 1:
            values = values[0]
        elif s.hybrid:  # the members' spread is in Σ_y, their mean is the pseudo-observation
            values = values.mean(0)
        return [ForecastObs.from_forecast(
            values, forecast_grid=self.emulator_grid,
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

    def _inflation_estimate(self, cycle: Cycle, state: EmulatorState) -> dict[str, float]:
        """ρ̂_c of this cycle from the stations' innovations (``adaptive.py``)."""
        shared = [c for c in state.channels if c in self.channels]
        idx = np.array([self.channels.index(c) for c in shared])
        if self._to_analysis is None:
            self._to_analysis = make_regridder(self.emulator_grid, self.grid, self.regrid)
        fc = torch.as_tensor(state.values[:, [state.channels.index(c) for c in shared]],
                             dtype=torch.float64)
        fine = self.normaliser.normalise_at(self._to_analysis(fc).numpy(),
                                            idx[None, :, None, None])
        members = cycle.background[None].double().repeat(fine.shape[0], 1, 1, 1)
        members[:, idx] = torch.as_tensor(fine)  # channels the emulator lacks: no spread
        u = (self.normaliser.variance_at(
            self.statistics["unresolved_variance"].sel(channel=shared).values, idx)
            if self.statistics is not None else np.zeros(len(shared)))
        return inflation_factors(self.innovations.current(cycle), cycle.background, members,
                                 self.channels, dict(zip(shared, u)))

    def _inflated(self, state: EmulatorState) -> EmulatorState:
        """The members spread about their mean by ρ_c, channel by channel."""
        rho = np.array([self.inflation.get(c, 1.0) for c in state.channels])[None, :, None, None]
        mean = state.values.mean(0, keepdims=True)
        return dataclasses.replace(state, values=mean + rho * (state.values - mean))

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
        if e.hybrid and state.values.shape[0] > 1:
            spread = self._spread(state.values)
            variance = variance + (spread if multivariate
                                   else np.diagonal(spread, axis1=1, axis2=2).T)
        gamma = (stats["anomaly_variance"].sel(channel=state.channels).values
                 if e.gamma == "prior" else e.gamma)
        return {"sigma_y": variance, "gamma": gamma,
                "covariance": "spectral" if multivariate else e.covariance}

    def _spread(self, members: np.ndarray) -> np.ndarray:
        """``(degree, C, C)``: the members' covariance per degree about their mean (the
        unbiased estimate, 1/(M − 1)), physical units as the statistics'."""
        if self._analysis is None:
            self._analysis = torch.as_tensor(analysis_matrix(self.emulator_grid,
                                                             max_degree(self.emulator_grid)))
        x = torch.as_tensor(members, dtype=torch.float64)
        cov = degree_covariance(x - x.mean(0, keepdim=True), self._analysis).sum(0)
        return cov.numpy() / (members.shape[0] - 1)

    def carry(self) -> dict[str, Any]:
        s, out = self.settings, {}
        if s.adaptive and self.innovations is not None:
            out["error_scale"] = dict(self.error_scale)
        if s.adaptive_inflation and self.innovations is not None:
            out["inflation"] = dict(self.inflation)
        return out

    def restore(self, meta: dict[str, Any]) -> None:
        self.error_scale = {str(k): float(v) for k, v in meta.get("error_scale", {}).items()}
        self.inflation = {str(k): float(v) for k, v in meta.get("inflation", {}).items()}
