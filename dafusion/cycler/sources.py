"""The likelihood terms of one analysis, built from ``run.sources`` (paper eq. 14).

* ``stations``: the observation table's rows within ±window of the analysis time;
* ``gridded``: the truth coarsened (the paper's LR) plus seeded noise, in the OSSE;
* ``emulator``: the mode's emulator state valid at the analysis, a coarse
  pseudo-observation on the emulator grid.

Every setting (Σ_y, Γ̂, λ, operator) comes from the configuration; the
handlers in ``dafusion.obs`` have no defaults of their own.
"""

from __future__ import annotations

import numpy as np
import torch

from dafusion.cycler import seeding
from dafusion.cycler.modes import EmulatorState
from dafusion.grids import grid_from_name
from dafusion.obs.forecast import ForecastObs
from dafusion.obs.gridded import Coarsening, GriddedObs
from dafusion.obs.stations import StationObs


def cycle_terms(exp, cycle: int, t: np.datetime64, truth_n: torch.Tensor,  # noqa: ANN001
                pseudo: EmulatorState | None) -> list:
    """The enabled sources' terms at analysis ``cycle`` (valid time ``t``).

    ``truth_n``: the normalised truth ``(C, H, W)`` (the gridded source observes it);
    ``pseudo``: the mode's emulator state, or None.
    """
    src, terms = exp.cfg.run.sources, []
    if src.stations.enabled:
        st = src.stations
        terms.append(StationObs.from_table(
            exp.table, channels=exp.channels, normaliser=exp.normaliser, grid=exp.grid, time=t,
            window_hours=st.window_hours, method=st.method, sigma_y=st.sigma_y,
            gamma=st.gamma, weight=st.weight, name="stations"))
    if src.gridded.enabled:
        g = src.gridded
        terms.append(GriddedObs.from_truth(
            truth_n, Coarsening(exp.grid, grid_from_name(g.grid), g.method),
            noise_std=g.noise_std, generator=seeding.gridded_generator(exp.cfg.run.seed, cycle),
            sigma_y=g.sigma_y, gamma=g.gamma, weight=g.weight, name="gridded"))
    if pseudo is not None:
        e, values = src.emulator, pseudo.values
        terms.append(ForecastObs.from_forecast(
            values if values.shape[0] > 1 else values[0], forecast_grid=exp.emulator.grid,
            forecast_channels=pseudo.channels, channels=exp.channels,
            normaliser=exp.normaliser, grid=exp.grid, regrid=exp.cfg.emulator.regrid,
            sigma_y=e.sigma_y, gamma=e.gamma, weight=e.weight, name="emulator"))
    return terms
