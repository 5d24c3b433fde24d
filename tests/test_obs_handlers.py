"""Observation handlers as likelihood terms: operators, units, guidance."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from dafusion.config import SamplerConfig
from dafusion.grids import EquiangularGrid, weighted_mean
from dafusion.interp import PointInterpolation, fractional_indices
from dafusion.normalise import Normaliser
from dafusion.obs.gridded import Coarsening, GriddedObs
from dafusion.obs.stations import StationObs
from dafusion.obs.table import ObservationTable
from dafusion.prior.sampler import member_generators
from fakes import GaussianField, sample

GRID = EquiangularGrid(32, 64)
# the defaults of run.sources.stations (the handlers have none of their own)
ST = {"window_hours": 3.0, "method": "bicubic", "sigma_y": None, "gamma": 0.1, "weight": 1.0}


def stations(table, time, channels=("t850", "z500", "sp"), norm=None, **settings):
    norm = norm or Normaliser(("t850", "z500", "sp"), np.array([270.0, 54000.0, 1e5]),
                              np.array([10.0, 2000.0, 500.0]))
    return StationObs.from_table(table, channels=list(channels), normaliser=norm, grid=GRID,
                                 time=np.datetime64(time), **{**ST, **settings})


def _field(fn, grid=GRID):
    lat, lon = np.meshgrid(np.deg2rad(grid.lat), np.deg2rad(grid.lon), indexing="ij")
    return torch.as_tensor(fn(lat, lon))[None, None]


def y21(lat, lon):  # ∝ Y_2^1: a low-order spherical harmonic
    return np.sin(lat) * np.cos(lat) * np.cos(lon)


@pytest.mark.parametrize("method, fn", [
    ("bilinear", lambda i, j: 2.0 + 0.5 * i + 0.25 * j),
    ("bicubic", lambda i, j: (i - 10.0) ** 2 + 0.3 * (j - 20.0) ** 2 - i * j / 7),
])
def test_interpolation_is_exact_for_polynomials_it_reproduces(method, fn):
    ii, jj = np.meshgrid(np.arange(32.0), np.arange(64.0), indexing="ij")
    x = torch.as_tensor(fn(ii, jj))[None, None]
    rng = np.random.default_rng(0)
    lat = rng.uniform(GRID.lat[2], GRID.lat[-3], 50)  # interior: no clamped rows
    lon = rng.uniform(GRID.lon[2], GRID.lon[-3], 50)  # away from the wrap
    fi, fj = fractional_indices(GRID, lat, lon)
    interp = PointInterpolation.build(GRID, lat, lon, np.zeros(50, int), method)
    np.testing.assert_allclose(interp.apply(x)[0].numpy(), fn(fi, fj), rtol=1e-12, atol=1e-10)


def test_spherical_harmonic_at_stations_converges_at_third_order():
    rng = np.random.default_rng(1)
    lat, lon = rng.uniform(-80, 80, 200), rng.uniform(0, 360, 200)
    exact = y21(np.deg2rad(lat), np.deg2rad(lon))
    errors = {}
    for n in (32, 64):
        grid = EquiangularGrid(n, 2 * n)
        for method in ("bilinear", "bicubic"):
            interp = PointInterpolation.build(grid, lat, lon, np.zeros(200, int), method)
            got = interp.apply(_field(y21, grid))[0].numpy()
            errors[method, n] = np.abs(got - exact).max()
    assert errors["bicubic", 32] < 2e-3 and errors["bicubic", 32] < errors["bilinear", 32] / 3
    assert errors["bicubic", 64] < errors["bicubic", 32] / 6  # ~ h^3
    assert errors["bilinear", 64] < errors["bilinear", 32] / 3.5  # ~ h^2


def test_interpolation_is_continuous_across_the_date_line_and_at_the_poles():
    lon = np.array([359.999, 0.0, 0.001, 182.8125])
    lat = np.array([10.0, 10.0, 10.0, 89.9])
    interp = PointInterpolation.build(GRID, lat, lon, np.zeros(4, int), "bicubic")
    got = interp.apply(_field(lambda la, lo: np.cos(lo)))[0].numpy()
    assert got[0] == pytest.approx(got[1], abs=1e-4) and got[1] == pytest.approx(got[2], abs=1e-4)
    assert got[1] == pytest.approx(1.0, abs=2e-3)
    assert np.isfinite(got[3])


def test_operators_have_exact_gradients():
    small = EquiangularGrid(8, 16)
    rng = np.random.default_rng(2)
    x = torch.randn(2, 2, 8, 16, dtype=torch.float64, requires_grad=True)
    for method in ("bilinear", "bicubic"):
        interp = PointInterpolation.build(small, rng.uniform(-89, 89, 5),
                                          rng.uniform(0, 360, 5), np.array([0, 1, 1, 0, 1]),
                                          method)
        assert torch.autograd.gradcheck(interp.apply, (x,))
    for method in ("bicubic", "area"):
        coarsen = Coarsening(small, EquiangularGrid(4, 8), method)
        assert torch.autograd.gradcheck(coarsen, (x,))


def test_area_coarsening_is_conservative_and_exact_on_piecewise_constants():
    coarse = EquiangularGrid(8, 16)
    blocks = torch.randn(1, 1, 8, 16, dtype=torch.float64)
    fine = blocks.repeat_interleave(4, dim=2).repeat_interleave(4, dim=3)
    out = Coarsening(GRID, coarse, "area")(fine)
    torch.testing.assert_close(out, blocks)
    field = _field(lambda la, lo: 1 + y21(la, lo) + np.sin(la) ** 3)
    mean_fine = weighted_mean(field[0, 0].numpy(), GRID)
    mean_coarse = weighted_mean(Coarsening(GRID, coarse, "area")(field)[0, 0].numpy(), coarse)
    assert mean_coarse == pytest.approx(mean_fine, rel=1e-13)
    with pytest.raises(ValueError, match="integer ratio"):
        Coarsening(GRID, EquiangularGrid(10, 20), "area")


def test_bicubic_coarsening_matches_the_analytic_field_at_coarse_centres():
    coarse = EquiangularGrid(16, 32)
    out = Coarsening(EquiangularGrid(128, 256), coarse, "bicubic")(
        _field(y21, EquiangularGrid(128, 256)))
    np.testing.assert_allclose(out[0, 0].numpy(), _field(y21, coarse)[0, 0].numpy(), atol=3e-5)


# ----------------------------------------------------------------- station table -> term


def _table():
    n = 5
    return ObservationTable(
        time=np.full(n, np.datetime64("2020-01-01T00", "ns")),
        lat=[10.0, 20.0, 30.0, 40.0, 50.0], lon=[0.0, 90.0, 180.0, 270.0, 359.0],
        level=[850.0, 500.0, np.nan, 700.0, 850.0],
        variable=["temperature", "geopotential", "surface_pressure", "temperature",
                  "temperature"],
        value=[280.0, 55000.0, 100500.0, 270.0, 275.0], error_std=[1.0, 100.0, 100.0, 1.0, 1.0],
        station_id=list("ABCDE"), source=["s"] * n, qc=[0, 0, 0, 0, 1])


def test_station_term_maps_channels_converts_units_once_and_counts_rejections():
    norm = Normaliser(("t850", "z500", "sp"), np.array([270.0, 54000.0, 1e5]),
                      np.array([10.0, 2000.0, 500.0]))
    term = stations(_table(), "2020-01-01T01", norm=norm)
    assert term.rejected == {"channel not in state": 1, "flagged by QC": 1}
    assert term.diagnostics()["used"] == 3
    torch.testing.assert_close(term.y, torch.tensor([1.0, 0.5, 1.0]))
    torch.testing.assert_close(term.sigma_y, torch.tensor([0.01, 0.0025, 0.04]))
    back = term.y.numpy() * norm.std[[0, 1, 2]] + norm.mean[[0, 1, 2]]  # physical again
    np.testing.assert_allclose(back, term.rows.value, rtol=1e-6)
    x = torch.zeros(1, 3, 32, 64)
    x[0, 1] = 2.0
    torch.testing.assert_close(term.operator(x), torch.tensor([[0.0, 2.0, 0.0]]))
    paper = stations(_table(), "2020-01-01", sigma_y=5e-4)
    assert torch.all(paper.sigma_y == 5e-4)


def test_station_term_errors_are_clear():
    norm = Normaliser(("t850",), np.array([270.0]), np.array([10.0]))
    with pytest.raises(ValueError, match="no usable observations within 3.0 h"):
        stations(_table(), "2020-01-05", ["t850"], norm)
    with pytest.raises(ValueError, match="likelihood term 'stations': Σ_y must be > 0"):
        stations(_table(), "2020-01-01", ["t850"], norm, sigma_y=0.0)
    with pytest.raises(ValueError, match=r"gamma has no value for \['geopotential'"):
        stations(_table(), "2020-01-01", gamma={"temperature": 0.1})


# ----------------------------------------------------------------- guidance


def _one_station(gamma: float, clip: float = 0.0, members: int = 200) -> tuple:
    grid = EquiangularGrid(8, 16)
    prior = GaussianField.make()
    interp = PointInterpolation.build(grid, np.array([grid.lat[5]]), np.array([grid.lon[4]]),
                                      np.zeros(1, int), "bilinear")

    @dataclasses.dataclass
    class One:
        name: str = "station"
        y: torch.Tensor = dataclasses.field(default_factory=lambda: torch.tensor([2.0],
                                                                              dtype=torch.float64))
        sigma_y: float = 0.01
        gamma: float = 1.0
        weight: float = 1.0
        covariance: None = None

        def operator(self, x):
            return interp.apply(x)

    cfg = SamplerConfig(steps=30, sigma_max=30.0, guidance_clip=clip)
    x = sample(cfg, prior, (1, 8, 16), member_generators(0, range(members)),
               [One(gamma=gamma)], dtype=torch.float64)
    k = 5 * 16 + 4  # exact posterior mean: Σ aᵀ (a Σ aᵀ + Σ_y)⁻¹ y, a = unit vector at k
    exact = (prior.cov[:, k] * 2.0 / (prior.cov[k, k] + 0.01)).reshape(8, 16)
    return x.mean(0)[0], exact


def test_a_single_station_pulls_the_analysis_near_it_and_not_far_away():
    """Γ̂ = 0.1 reproduces the spatial spread of the exact posterior mean here
    (measured: 2.03, 0.54, 0.14 against 1.98, 0.50, 0.13 at 0, 1, 2 cells)."""
    mean, exact = _one_station(gamma=0.1)
    assert exact[5, 4] == pytest.approx(1.98, abs=0.01)
    assert abs(mean[5, 4] - exact[5, 4]) < 0.1 * exact[5, 4]
    assert abs(mean[5, 5] - exact[5, 5]) < 0.25 * exact[5, 5]
    assert abs(mean[5, 6] - exact[5, 6]) < 0.35 * exact[5, 6]
    assert exact[1, 12] < 0.01 and abs(mean[1, 12]) < 0.15  # ~9000 km away: the prior mean


def test_guidance_clipping_keeps_a_small_gamma_stable():
    """Γ̂ = 1e-3 makes the guidance too strong for 30 Heun steps; the RMS clip (the
    paper's "gradient clipping") keeps it finite and still fits the station."""
    unclipped, _ = _one_station(gamma=1e-3, members=20)
    assert unclipped.abs().max() > 100
    clipped, exact = _one_station(gamma=1e-3, clip=0.3, members=20)
    assert abs(clipped[5, 4] - exact[5, 4]) < 0.1 * exact[5, 4]
    assert clipped.abs().max() < 3


def test_zero_weight_removes_a_source_exactly():
    prior = GaussianField.make()
    grid = EquiangularGrid(8, 16)
    coarse = GriddedObs.from_truth(torch.randn(1, 8, 16, dtype=torch.float64),
                                   Coarsening(grid, EquiangularGrid(4, 8), "area"),
                                   noise_std=0.0, generator=torch.Generator().manual_seed(0),
                                   sigma_y=0.01, gamma=0.1, weight=0.0)
    cfg = SamplerConfig(steps=8, S_churn=3.0)
    with_zero = sample(cfg, prior, (1, 8, 16), member_generators(5, range(3)), [coarse],
                       dtype=torch.float64)
    without = sample(cfg, prior, (1, 8, 16), member_generators(5, range(3)),
                     dtype=torch.float64)
    assert torch.equal(with_zero, without)
    coarse.weight = 1.0
    guided = sample(cfg, prior, (1, 8, 16), member_generators(5, range(3)), [coarse],
                    dtype=torch.float64)
    assert not torch.allclose(guided, without)


def test_background_check_rejects_gross_errors_and_counts_them():
    from dafusion.obs.qc import background_check

    norm = Normaliser(("t850", "z500", "sp"), np.array([270.0, 54000.0, 1e5]),
                      np.array([10.0, 2000.0, 500.0]))
    table = _table()
    table.value[1] = 54000.0 + 2000.0 * 3.0  # z500 3 std from a zero background
    term = stations(table, "2020-01-01", norm=norm)
    background = torch.zeros(3, 32, 64)
    # y = [1.0, 3.0, 1.0]; sigma_o² = [0.01, 0.0025, 0.04]; with σ_b = 0.5 and k = 4:
    # limits 4 sqrt(0.25 + σ_o²) = [2.04, 2.01, 2.08]: only z500 (|O-B| = 3) fails
    checked = background_check(term, background, 0.5, k=4.0)
    assert checked.rejected == {**term.rejected, "background check": 1}
    assert checked.diagnostics()["used"] == 2
    torch.testing.assert_close(checked.y, torch.tensor([1.0, 1.0]))
    torch.testing.assert_close(checked.sigma_y, torch.tensor([0.01, 0.04]))
    x = torch.zeros(1, 3, 32, 64)
    x[0, 2] = 7.0
    torch.testing.assert_close(checked.operator(x), torch.tensor([[0.0, 7.0]]))
    spread = torch.full((3, 32, 64), 5.0)  # a wide ensemble keeps everything
    assert background_check(term, background, spread, k=4.0).diagnostics()["used"] == 3
    coarse = GriddedObs.from_truth(torch.zeros(3, 32, 64), Coarsening(GRID, EquiangularGrid(
        8, 16), "area"), noise_std=0.0, generator=torch.Generator(), sigma_y=0.01, gamma=0.1,
        weight=1.0)
    coarse.y[1, 2, 3] = 9.0  # one gross error in a gridded field
    checked = background_check(coarse, background, 0.5, k=4.0)
    assert checked.rejected == {"background check": 1} and checked.y.shape == (3 * 8 * 16 - 1,)
    with pytest.raises(ValueError, match="k must be > 0"):
        background_check(term, background, 0.5, k=0.0)


def test_forecast_pseudo_observation_on_a_legendre_gauss_grid():
    from dafusion.grids import LegendreGaussGrid
    from dafusion.obs.forecast import ForecastObs

    lg = LegendreGaussGrid(12, 24)
    norm = Normaliser(("t850", "z500", "sp"), np.array([270.0, 54000.0, 1e5]),
                      np.array([10.0, 2000.0, 500.0]))
    lat, lon = np.meshgrid(np.deg2rad(lg.lat), np.deg2rad(lg.lon), indexing="ij")
    t850 = 270.0 + 10.0 * y21(lat, lon)
    q850 = np.full(lg.shape, 0.004)
    term = ForecastObs.from_forecast(np.stack([t850, q850]), forecast_grid=lg,
                                     forecast_channels=["t850", "q850"],
                                     channels=["t850", "z500", "sp"], normaliser=norm,
                                     grid=GRID, regrid="bicubic", **EMU)
    assert term.channels == ["t850"] and term.rejected == {"channel q850 not in state": 288}
    torch.testing.assert_close(term.y, torch.as_tensor(y21(lat, lon).ravel(), dtype=torch.float32))
    analysis = torch.zeros(1, 3, 32, 64, dtype=torch.float64)
    analysis[0, 0] = _field(y21)[0, 0]  # the same field, normalised, on the analysis grid
    assert (term.operator(analysis)[0] - term.y.double()).abs().max() < 3e-3
    members = ForecastObs.from_forecast(np.stack([np.stack([t850, q850])] * 2), forecast_grid=lg,
                                        forecast_channels=["t850", "q850"],
                                        channels=["t850", "z500", "sp"], normaliser=norm,
                                        grid=GRID, regrid="spectral", **EMU)
    assert members.y.shape == (2, 288)
    spectral = ForecastObs.from_forecast(np.stack([t850, q850]), forecast_grid=lg,
                                         forecast_channels=["t850", "q850"],
                                         channels=["t850", "z500", "sp"], normaliser=norm,
                                         grid=GRID, regrid="spectral", **EMU)  # exact for Y_2^1
    assert (spectral.operator(analysis)[0] - spectral.y.double()).abs().max() < 1e-6
    with pytest.raises(ValueError, match="regrid 'nearest' is not available"):
        ForecastObs.from_forecast(t850[None], forecast_grid=lg, forecast_channels=["t850"],
                                  channels=["t850", "z500", "sp"], normaliser=norm, grid=GRID,
                                  regrid="nearest", **EMU)


EMU = {"sigma_y": 0.1, "gamma": 0.1, "weight": 1.0}  # run.sources.emulator's defaults


def test_sigma_y_and_gamma_per_variable():
    norm = Normaliser(("t850", "z500", "sp"), np.array([270.0, 54000.0, 1e5]),
                      np.array([10.0, 2000.0, 500.0]))
    term = stations(_table(), "2020-01-01", norm=norm,
                    sigma_y={"temperature": 5e-4, "geopotential": None,
                             "surface_pressure": None},
                    gamma={"geopotential": 0.2, "temperature": 0.1, "surface_pressure": 1e-5})
    torch.testing.assert_close(term.sigma_y, torch.tensor([5e-4, 0.0025, 0.04]))
    torch.testing.assert_close(term.gamma, torch.tensor([0.1, 0.2, 1e-5]))
    with pytest.raises(ValueError, match="Γ must be >= 0"):
        stations(_table(), "2020-01-01", gamma={"temperature": -1.0, "geopotential": 0.1,
                                                 "surface_pressure": 0.1})


def test_per_variable_settings_from_the_configuration():
    """--set run.sources.stations.gamma={temperature: 0.01} reaches the term: named
    variables take their value, the others the configuration's default (Γ̂ 0.1, or the
    ``default`` entry; Σ_y each row's own (error_std / std)²)."""
    from dafusion.config import load_config
    from dafusion.cycler.sources import Cycle
    from dafusion.cycler.sources.stations import StationSource

    norm = Normaliser(("t850", "z500", "sp"), np.array([270.0, 54000.0, 1e5]),
                      np.array([10.0, 2000.0, 500.0]))
    now = Cycle(0, np.datetime64("2020-01-01T01", "ns"), torch.zeros(3, *GRID.shape), None,
                None)

    def term(*settings):
        st = load_config(None, list(settings)).run.sources.stations
        (t,) = StationSource(st, _table(), ["t850", "z500", "sp"], norm, GRID).terms(now)
        return t

    t = term("run.sources.stations.gamma={temperature: 0.01}",
             "run.sources.stations.sigma_y={geopotential: 0.001}")
    assert list(t.rows.variable) == ["temperature", "geopotential", "surface_pressure"]
    torch.testing.assert_close(t.gamma, torch.tensor([0.01, 0.1, 0.1]))
    torch.testing.assert_close(t.sigma_y, torch.tensor([0.01, 0.001, 0.04]))
    torch.testing.assert_close(term("run.sources.stations.gamma={default: 0.3}").gamma,
                               torch.full((3,), 0.3))
