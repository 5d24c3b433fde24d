"""One contract test over every observation source (obs/base.py): attributes, shapes,
linearity of the operator, an exact gradient of eq. 13, diagnostics, and refusal of a
bad Σ_y at construction."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from dafusion.grids import EquiangularGrid, LegendreGaussGrid
from dafusion.normalise import Normaliser
from dafusion.obs.base import sda_log_likelihood, validate_term
from dafusion.obs.forecast import ForecastObs
from dafusion.obs.gridded import Coarsening, GriddedObs
from dafusion.obs.qc import background_check
from dafusion.obs.stations import StationObs
from dafusion.obs.table import ObservationTable

GRID = EquiangularGrid(8, 16)
CHANNELS = ["t850", "z500", "sp"]
NORM = Normaliser(tuple(CHANNELS), np.array([270.0, 54000.0, 1e5]),
                  np.array([10.0, 2000.0, 500.0]))


def _table():
    n = 6
    return ObservationTable(
        time=np.full(n, np.datetime64("2020-01-01T00", "ns")),
        lat=np.array([-60.0, -10.0, 0.0, 33.0, 70.0, 85.0]),
        lon=np.array([0.0, 100.0, 359.0, 181.0, 45.0, 270.0]),
        level=np.array([850.0, 500.0, np.nan, 850.0, 500.0, np.nan]),
        variable=np.array(["temperature", "geopotential", "surface_pressure", "temperature",
                           "geopotential", "surface_pressure"]),
        value=np.array([275.0, 55000.0, 100200.0, 268.0, 53000.0, 99800.0]),
        error_std=np.array([1.0, 100.0, 100.0, 1.0, 100.0, 100.0]),
        station_id=np.array(list("ABCDEF")), source=np.array(["s"] * n), qc=np.zeros(n, int))


def stations():
    return StationObs.from_table(_table(), channels=CHANNELS, normaliser=NORM, grid=GRID,
                                 time=np.datetime64("2020-01-01"), window_hours=3.0,
                                 method="bicubic", sigma_y=None, gamma=0.1, weight=1.0)


def gridded(method):
    truth = torch.randn(3, 8, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return GriddedObs.from_truth(truth, Coarsening(GRID, EquiangularGrid(4, 8), method),
                                 noise_std=0.1, generator=torch.Generator().manual_seed(1),
                                 sigma_y=0.01, gamma=0.1, weight=0.5)


def forecast(members):
    lg = LegendreGaussGrid(4, 8)
    fc = np.random.default_rng(0).normal(size=(members, 2) + lg.shape) * [[[[10.0]], [[500.0]]]]
    fc = fc + np.array([270.0, 1e5])[None, :, None, None]
    return ForecastObs.from_forecast(fc if members > 1 else fc[0], forecast_grid=lg,
                                     forecast_channels=["t850", "sp"], channels=CHANNELS,
                                     normaliser=NORM, grid=GRID, regrid="spectral",
                                     sigma_y=0.1, gamma=0.1, weight=1.0)


def forecast_spectral(members, perturb=False):
    """The emulator term as the cycle builds it: a multivariate error spectrum per degree
    (physical units), Γ̂ a point variance, one perturbed pseudo-observation per member."""
    lg = LegendreGaussGrid(4, 8)
    fc = np.random.default_rng(0).normal(size=(members, 2) + lg.shape) * [[[[10.0]], [[500.0]]]]
    fc = fc + np.array([270.0, 1e5])[None, :, None, None]
    var = np.zeros((4, 2, 2))
    var[:, 0, 0], var[:, 1, 1] = [4.0, 2.0, 1.0, 0.5], [4e4, 2e4, 1e4, 5e3]
    var[:, 0, 1] = var[:, 1, 0] = 0.5 * np.sqrt(var[:, 0, 0] * var[:, 1, 1])
    gens = [torch.Generator().manual_seed(m) for m in range(2)] if perturb else None
    return ForecastObs.from_forecast(fc if members > 1 else fc[0], forecast_grid=lg,
                                     forecast_channels=["t850", "sp"], channels=CHANNELS,
                                     normaliser=NORM, grid=GRID, regrid="spectral",
                                     sigma_y=var, gamma=0.1, weight=1.0, covariance="spectral",
                                     perturb=gens)


def checked():
    return background_check(stations(), torch.zeros(3, 8, 16), 0.5, k=3.0)


SOURCES = {"stations": stations, "gridded-bicubic": lambda: gridded("bicubic"),
           "gridded-area": lambda: gridded("area"), "forecast": lambda: forecast(1),
           "forecast-members": lambda: forecast(2), "background-checked": checked,
           "forecast-spectral": lambda: forecast_spectral(1),
           "forecast-spectral-perturbed": lambda: forecast_spectral(1, perturb=True)}


@pytest.fixture(params=list(SOURCES), ids=list(SOURCES))
def term(request):
    return SOURCES[request.param]()


def test_attributes_and_shapes(term):
    validate_term(term)
    assert isinstance(term.name, str) and term.weight >= 0
    x = torch.randn(2, 3, 8, 16, dtype=torch.float64)
    out = term.operator(x)
    assert out.shape[0] == 2
    assert torch.broadcast_shapes(out.shape, term.y.shape) == out.shape
    diag = term.diagnostics()
    assert diag["source"] == term.name and isinstance(diag["rejected"], dict)
    per_member_values = term.y.shape[-1] if isinstance(term, ForecastObs) else term.y.numel()
    assert diag["used"] == per_member_values


def test_operator_is_linear(term):
    gen = torch.Generator().manual_seed(3)
    x1, x2 = (torch.randn(2, 3, 8, 16, generator=gen, dtype=torch.float64) for _ in range(2))
    torch.testing.assert_close(term.operator(2.0 * x1 - 0.5 * x2),
                               2.0 * term.operator(x1) - 0.5 * term.operator(x2),
                               rtol=1e-12, atol=1e-12)


def test_gradient_of_eq_13_is_exact(term):
    """The guidance differentiates eq. 13 through the operator: autograd against a
    central finite difference in float64."""
    x = torch.randn(2, 3, 8, 16, generator=torch.Generator().manual_seed(4), dtype=torch.float64,
                    requires_grad=True)
    sigma = torch.tensor([0.7, 2.0], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda v: sda_log_likelihood(term, v, sigma), (x,),
                                    eps=1e-6, atol=1e-6)


def test_perturbed_pseudo_observations_are_seeded_draws_of_the_error_model():
    """Member m's y is the forecast plus draw m of Σ_y: the same generators give the same
    draws, and each draw's Mahalanobis norm under Σ_y is that of sample_spectral's."""
    from dafusion.obs.covariance import sample_spectral

    plain, perturbed = forecast_spectral(1), forecast_spectral(1, perturb=True)
    assert perturbed.y.shape == (2, plain.y.numel())
    torch.testing.assert_close(perturbed.y, forecast_spectral(1, perturb=True).y)
    draws = sample_spectral(perturbed.covariance, [torch.Generator().manual_seed(m)
                                                   for m in range(2)])
    torch.testing.assert_close(perturbed.y - plain.y, draws.reshape(2, -1).float())


@pytest.mark.parametrize("name", ["stations", "gridded-area", "forecast"])
def test_a_bad_sigma_y_is_refused_at_construction(name):
    term = SOURCES[name]()
    with pytest.raises(ValueError, match=f"likelihood term '{term.name}': Σ_y must be > 0"):
        dataclasses.replace(term, sigma_y=0.0)


def test_the_observation_row_has_the_desroziers_ratio_computed_by_hand():
    """mean((y − H a)(y − H b)) / mean(Σ_y), from values chosen here."""
    from dafusion.cycler.record import obs_row
    from fakes import LinearObs

    y = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    term = LinearObs("points", y, torch.tensor([0.5, 0.5, 2.0], dtype=torch.float64), 0.1,
                     1.0, torch.tensor([0, 2, 5]))
    background = torch.zeros(1, 2, 4, dtype=torch.float64)
    background.view(-1)[[0, 2, 5]] = torch.tensor([0.0, 1.0, 1.0], dtype=torch.float64)
    analysis = torch.zeros(1, 2, 4, dtype=torch.float64)
    analysis.view(-1)[[0, 2, 5]] = torch.tensor([0.5, 1.5, 2.0], dtype=torch.float64)
    row = obs_row(3, np.datetime64("2020-01-01T12"), term, background, analysis)
    d_b, d_a = [1.0, 1.0, 2.0], [0.5, 0.5, 1.0]
    expected = np.mean(np.multiply(d_a, d_b)) / np.mean([0.5, 0.5, 2.0])
    assert row["desroziers"] == pytest.approx(expected, rel=1e-12)
    assert row["sigma_y"] == pytest.approx(1.0)
    assert row["omb_rms"] == pytest.approx(np.sqrt(np.mean(np.square(d_b))))
    assert np.isnan(row["spread"]) and np.isnan(row["crps"])  # no members given

    # two members, 0.5 either side of the analysis: spread 1/√2 (ddof 1) at each point,
    # fair CRPS of two members mean|x_i − y| − |x_1 − x_2| / 2
    members = torch.stack([analysis - 0.5, analysis + 0.5])
    row = obs_row(3, np.datetime64("2020-01-01T12"), term, background, analysis, members)
    assert row["spread"] == pytest.approx(np.sqrt(0.5), rel=1e-12)
    crps = [(abs(a - 0.5 - o) + abs(a + 0.5 - o)) / 2 - 0.5
            for a, o in zip([0.5, 1.5, 2.0], [1.0, 2.0, 3.0])]
    assert row["crps"] == pytest.approx(np.mean(crps), rel=1e-12)


def test_every_term_declares_where_its_values_are_and_whether_it_is_the_background(term):
    """``locations()``: one (lat, lon, channel) per value of one member's y; the channel is
    exact: a field equal to k + 1 in channel k is seen as its channel index + 1 by every
    operator (interpolation, coarsening and regridding keep constants).
    ``pseudo_observation``: True for the emulator forecast only."""
    assert term.pseudo_observation is isinstance(term, ForecastObs)
    lat, lon, channel = (np.asarray(a) for a in term.locations())
    values = term.y.shape[-1] if isinstance(term, ForecastObs) else term.y.numel()
    assert lat.shape == lon.shape == channel.shape == (values,)
    assert np.all(np.abs(lat) <= 90) and np.all((lon >= 0) & (lon < 360))
    x = torch.arange(1.0, 4.0, dtype=torch.float64)[None, :, None, None].expand(1, 3, 8, 16)
    np.testing.assert_allclose(term.operator(x).reshape(-1).numpy(), channel + 1.0,
                               rtol=1e-9)


def test_station_locations_are_the_rows_used():
    term = checked()
    lat, lon, _ = term.locations()
    kept = term.keep.numpy()
    np.testing.assert_array_equal(lat, np.asarray(term.source.rows.lat)[kept])
    np.testing.assert_array_equal(lon, np.asarray(term.source.rows.lon)[kept])
