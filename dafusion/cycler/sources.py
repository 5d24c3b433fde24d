"""The likelihood terms of one analysis, built from ``run.sources`` (paper eq. 14).

* ``stations``: the observation table's rows within ±window of the analysis time;
* ``gridded``: the truth coarsened (the paper's LR) plus seeded noise, in the OSSE;
* ``emulator``: the mode's emulator state valid at the analysis, a coarse
  pseudo-observation on the emulator grid, its error from the emulator's error
  statistics at the state's lead (or one constant).

Every setting (Σ_y, Γ̂, λ, operator) comes from the configuration; the
handlers in ``dafusion.obs`` have no defaults of their own.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from dafusion.cycler import seeding
from dafusion.cycler.modes import EmulatorState
from dafusion.cycler.adaptive import innovation_scales, smoothed
from dafusion.emulator.errors import at_lead
from dafusion.grids import grid_from_name
from dafusion.obs.forecast import ForecastObs
from dafusion.obs.gridded import Coarsening, GriddedObs
from dafusion.obs.qc import background_check
from dafusion.obs.stations import StationObs
from dafusion.spectra import point_variance
from dafusion.variables import VARIABLES

if TYPE_CHECKING:
    from dafusion.config import GriddedSourceConfig, StationSourceConfig
    from dafusion.cycler.experiment import Experiment
    from dafusion.obs.base import LikelihoodTerm


def cycle_terms(exp: Experiment, cycle: int, t: np.datetime64, truth_n: torch.Tensor,
                pseudo: EmulatorState | None, background_n: torch.Tensor | None
                ) -> list[LikelihoodTerm]:
    """The enabled sources' terms at analysis ``cycle`` (valid time ``t``).

    ``truth_n``: the normalised truth ``(C, H, W)`` (the gridded source observes it);
    ``pseudo``: the mode's emulator state, or None; ``background_n``: the normalised
    background ``(C, H, W)`` of the background check, or None (no check). With
    ``run.sources.emulator.adaptive`` the stations' innovations update
    ``pseudo.error_scale`` first (``cycler.adaptive``); the caller keeps it.
    """
    src, terms, stations = exp.cfg.run.sources, [], None
    if src.stations.enabled:
        st = src.stations
        term = StationObs.from_table(
            exp.table, channels=exp.channels, normaliser=exp.normaliser, grid=exp.grid, time=t,
            window_hours=st.window_hours, method=st.method, weight=st.weight, name="stations",
            sigma_y=({v: st.sigma_y_of(v) for v in VARIABLES}
                     if isinstance(st.sigma_y, dict) else st.sigma_y),
            gamma={v: st.gamma_of(v) for v in VARIABLES} if isinstance(st.gamma, dict)
            else st.gamma)
        stations = _checked(term, st, background_n)
        terms.append(stations)
    if src.gridded.enabled:
        g = src.gridded
        term = GriddedObs.from_truth(
            truth_n, Coarsening(exp.grid, grid_from_name(g.grid), g.method),
            noise_std=g.sigma_y ** 0.5 if g.noise_std is None else g.noise_std,
            generator=seeding.gridded_generator(exp.cfg.run.seed, cycle),
            sigma_y=g.sigma_y, gamma=g.gamma, weight=g.weight, name="gridded")
        terms.append(_checked(term, g, background_n))
    if pseudo is not None:
        e, values = src.emulator, pseudo.values
        if e.adaptive and stations is not None and background_n is not None:
            pseudo.error_scale = _adapted(exp, pseudo, stations, background_n)
        terms.append(ForecastObs.from_forecast(
            values if values.shape[0] > 1 else values[0], forecast_grid=exp.emulator.grid,
            forecast_channels=pseudo.channels, channels=exp.channels,
            normaliser=exp.normaliser, grid=exp.grid, regrid=exp.cfg.emulator.regrid,
            **_emulator_error(exp, pseudo), weight=e.weight, name="emulator",
            perturb=seeding.perturbation_generators(exp.cfg.run.seed, cycle,
                                                    exp.cfg.run.members) if e.perturb else None))
    return terms


def _adapted(exp: Experiment, pseudo: EmulatorState, stations: LikelihoodTerm,
             background_n: torch.Tensor) -> dict[str, float]:
    """The emulator term's Σ_y scales after this cycle's station innovations."""
    stats = exp.emulator_errors
    shared = [c for c in pseudo.channels if c in exp.channels]
    idx = np.array([exp.channels.index(c) for c in shared])
    inv_var = exp.normaliser.scale_at(np.ones(len(idx)), idx) ** 2
    q = point_variance(at_lead(stats, pseudo.lead_hours, shared)) * inv_var
    u = stats["unresolved_variance"].sel(channel=shared).values * inv_var
    estimate = innovation_scales(stations, background_n, exp.channels, dict(zip(shared, q)),
                                 dict(zip(shared, u)))
    return smoothed(pseudo.error_scale, estimate)


def _emulator_error(exp: Experiment, pseudo: EmulatorState) -> dict[str, Any]:
    """Σ_y, Γ̂ and covariance of the emulator term: constant, or its error statistics at
    the pseudo-observation's lead (``dafusion.emulator.errors``), scaled by
    ``error_scale`` and the adaptive per-channel scales."""
    e = exp.cfg.run.sources.emulator
    if e.error_model == "constant":
        return {"sigma_y": e.sigma_y, "gamma": e.gamma, "covariance": "diagonal"}
    stats = exp.emulator_errors
    multivariate = e.covariance == "multivariate"
    scale = np.sqrt([pseudo.error_scale.get(c, 1.0) for c in pseudo.channels]) \
        * math.sqrt(e.error_scale)
    variance = at_lead(stats, pseudo.lead_hours, pseudo.channels, multivariate)
    variance = (variance * scale[None, :, None] * scale[None, None, :] if multivariate
                else variance * scale[:, None] ** 2)
    gamma = (stats["anomaly_variance"].sel(channel=pseudo.channels).values
             if e.gamma == "prior" else e.gamma)
    return {"sigma_y": variance, "gamma": gamma,
            "covariance": "spectral" if multivariate else e.covariance}


def _checked(term: LikelihoodTerm, settings: StationSourceConfig | GriddedSourceConfig,
             background_n: torch.Tensor | None) -> LikelihoodTerm:
    """The term after its background check, when configured and a background exists."""
    if settings.background_check <= 0 or background_n is None:
        return term
    return background_check(term, background_n, settings.background_std,
                            settings.background_check)
