"""The classical analyses against exact answers: OI's textbook increment, the LETKF as the
ETKF closed form without localisation and as the Kalman filter for a large Gaussian
ensemble, localisation by brute force, and both methods in the cycle."""

from __future__ import annotations

import csv
import dataclasses

import numpy as np
import pytest
import torch
import xarray as xr

import fakes as cycle_fakes
from dafusion.baselines import letkf, oi
from dafusion.baselines.base import BaselineError, observations
from dafusion.baselines.geometry import (
    EARTH_RADIUS_KM,
    chordal_km,
    correlation,
    gaspari_cohn,
    great_circle_km,
)
from dafusion.grids import EquiangularGrid
from dafusion.interp import PointInterpolation

R_KM = EARTH_RADIUS_KM


@dataclasses.dataclass
class MatrixObs:
    """y = A x with a dense A ``(n, C·H·W)``: a linear term with locations."""

    y: torch.Tensor
    sigma_y: torch.Tensor
    matrix: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    channel: np.ndarray
    name: str = "matrix"
    weight: float = 1.0
    gamma: float = 0.0
    covariance: object = None
    pseudo_observation = False

    def operator(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1).double() @ torch.as_tensor(self.matrix).T

    def locations(self):
        return self.lat, self.lon, self.channel

    def diagnostics(self):
        return {"source": self.name, "used": len(self.y), "rejected": {}}


def haversine_km(lat1, lon1, lat2, lon2):
    """The textbook haversine formula, written independently of ``geometry``."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(lon2 - lon1)
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * R_KM * np.arcsin(np.sqrt(a))


def dense_b(grid: EquiangularGrid, variance: list[float], length: list[float],
            model: str) -> np.ndarray:
    """Block-diagonal B over channels from haversine distances turned chordal."""
    la, lo = np.meshgrid(grid.lat, grid.lon, indexing="ij")
    la, lo = la.ravel(), lo.ravel()
    theta = haversine_km(la[:, None], lo[:, None], la[None], lo[None]) / R_KM
    r = 2 * R_KM * np.sin(theta / 2)
    blocks = []
    for v, ell in zip(variance, length):
        x = r / ell
        rho = np.exp(-0.5 * x * x) if model == "gaussian" else (1 + x) * np.exp(-x)
        blocks.append(v * rho)
    n = r.shape[0]
    b = np.zeros((len(blocks) * n, len(blocks) * n))
    for c, blk in enumerate(blocks):
        b[c * n:(c + 1) * n, c * n:(c + 1) * n] = blk
    return b


def station_matrix(grid, lat, lon, channel, channels, method="bicubic") -> np.ndarray:
    """The dense H of a station interpolation, from its stencil (rows, cols, weights)."""
    op = PointInterpolation.build(grid, np.asarray(lat), np.asarray(lon), np.asarray(channel),
                                  method)
    n, npts = len(lat), grid.nlat * grid.nlon
    h = np.zeros((n, channels * npts))
    for j in range(n):
        for i, k, w in zip(op.rows[j].tolist(), op.cols[j].tolist(), op.weights[j].tolist()):
            h[j, int(op.channel[j]) * npts + i * grid.nlon + k] += w
    return h


@dataclasses.dataclass
class InterpObs(MatrixObs):
    """A station-like term whose operator is the sparse interpolation itself."""

    interp: PointInterpolation | None = None

    def operator(self, x: torch.Tensor) -> torch.Tensor:
        return self.interp.apply(x)


def stations(grid, lat, lon, channel, y, r, channels=1, method="bicubic") -> InterpObs:
    lat, lon, channel = np.asarray(lat, float), np.asarray(lon, float), np.asarray(channel)
    return InterpObs(torch.as_tensor(y, dtype=torch.float64),
                     torch.as_tensor(r, dtype=torch.float64),
                     station_matrix(grid, lat, lon, channel, channels, method), lat, lon,
                     channel, interp=PointInterpolation.build(grid, lat, lon, channel, method))


# --------------------------------------------------------------------------- geometry


def test_distances_against_the_haversine_formula_and_known_values():
    rng = np.random.default_rng(1)
    lat1, lat2 = rng.uniform(-90, 90, 40), rng.uniform(-90, 90, 30)
    lon1, lon2 = rng.uniform(0, 360, 40), rng.uniform(-180, 180, 30)
    gc = great_circle_km(lat1, lon1, lat2, lon2)
    np.testing.assert_allclose(gc, haversine_km(lat1[:, None], lon1[:, None], lat2[None],
                                                lon2[None]), rtol=1e-10, atol=1e-7)
    np.testing.assert_allclose(chordal_km(lat1, lon1, lat2, lon2),
                               2 * R_KM * np.sin(gc / R_KM / 2), rtol=1e-10, atol=1e-7)
    assert great_circle_km([90], [0], [-90], [0])[0, 0] == pytest.approx(np.pi * R_KM)
    assert great_circle_km([0], [10], [0], [100])[0, 0] == pytest.approx(np.pi * R_KM / 2)
    assert chordal_km([90], [0], [-90], [0])[0, 0] == pytest.approx(2 * R_KM)


def test_gaspari_cohn_values_continuity_support_and_positive_definiteness():
    c = 700.0
    assert gaspari_cohn(np.array([0.0]), c)[0] == 1.0
    # both branches give 5/24 at r = c (Gaspari and Cohn 1999, eq. 4.10)
    eps = 1e-9
    np.testing.assert_allclose(gaspari_cohn(np.array([c - eps, c, c + eps]), c), 5 / 24,
                               atol=1e-9)
    assert np.all(gaspari_cohn(np.array([2 * c, 2.5 * c, 1e6]), c) == 0.0)
    r = np.linspace(0, 2.2 * c, 500)
    assert np.all(np.diff(gaspari_cohn(r, c)) <= 1e-15)
    # a correlation in R^3: positive semi-definite at chordal distances on the sphere
    rng = np.random.default_rng(2)
    lat, lon = np.degrees(np.arcsin(rng.uniform(-1, 1, 300))), rng.uniform(0, 360, 300)
    for fn in (lambda d: gaspari_cohn(d, c), lambda d: correlation(d, c, "gaussian"),
               lambda d: correlation(d, c, "soar")):
        assert np.linalg.eigvalsh(fn(chordal_km(lat, lon, lat, lon))).min() > -1e-9


# --------------------------------------------------------------------------- OI


@pytest.mark.parametrize("model", ["gaussian", "soar"])
def test_oi_single_observation_is_the_textbook_increment(model):
    """x_a − x_b = B Hᵀ (H B Hᵀ + R)⁻¹ d with a dense B and the station's dense H."""
    grid = EquiangularGrid(8, 16)
    rng = np.random.default_rng(3)
    xb = rng.standard_normal((1, 1, 8, 16))
    obs_term = stations(grid, [37.3], [101.7], [0], [0.8], [0.05])
    b = oi.StaticCovariance([0.3], [1500.0], model, grid.lat, grid.lon)
    xa = oi.analysis(xb, observations([obs_term], "oi"), b, members=1)
    h, bd = obs_term.matrix, dense_b(grid, [0.3], [1500.0], model)
    d = 0.8 - h @ xb.reshape(-1)
    expected = bd @ h.T @ np.linalg.solve(h @ bd @ h.T + 0.05, d)
    np.testing.assert_allclose((xa - xb).reshape(-1), expected, rtol=1e-10, atol=1e-13)


def test_oi_observation_at_a_grid_point_gives_the_scalar_formula():
    """H = e_j: δx_i = σ² ρ(r_ij) d / (σ² + r), by hand."""
    grid = EquiangularGrid(8, 16)
    j_lat, j_lon = 5, 3
    obs_term = stations(grid, [grid.lat[j_lat]], [grid.lon[j_lon]], [0], [1.0], [0.2],
                        method="bilinear")
    xb = np.zeros((1, 1, 8, 16))
    b = oi.StaticCovariance([0.5], [2000.0], "gaussian", grid.lat, grid.lon)
    xa = oi.analysis(xb, observations([obs_term], "oi"), b, members=1)[0, 0]
    la, lo = np.meshgrid(grid.lat, grid.lon, indexing="ij")
    theta = haversine_km(la, lo, grid.lat[j_lat], grid.lon[j_lon]) / R_KM
    rho = np.exp(-0.5 * (2 * R_KM * np.sin(theta / 2) / 2000.0) ** 2)
    np.testing.assert_allclose(xa, 0.5 * rho * 1.0 / (0.5 + 0.2), rtol=1e-12, atol=1e-15)


def test_oi_many_observations_two_channels_and_perturbed_members():
    """Every member = x_b,m + B Hᵀ S⁻¹ (y + ε_m − H x_b,m), ε_m from the member's
    generator, against dense matrices; channels do not talk (univariate B)."""
    grid, channels, members = EquiangularGrid(8, 16), 2, 3
    rng = np.random.default_rng(4)
    n = 25
    lat, lon = rng.uniform(-80, 80, n), rng.uniform(0, 360, n)
    chan, y, r = rng.integers(0, 2, n), rng.standard_normal(n), rng.uniform(0.02, 0.1, n)
    term = stations(grid, lat, lon, chan, y, r, channels=channels)
    term2 = dataclasses.replace(term, weight=2.0)  # λ = 2: R / 2
    xb = rng.standard_normal((members, channels, 8, 16))
    b = oi.StaticCovariance([0.3, 0.1], [1200.0, 600.0], "soar", grid.lat, grid.lon)
    seeds = [11, 12, 13]
    xa = oi.analysis(xb, observations([term2], "oi"), b, members,
                     [torch.Generator().manual_seed(s) for s in seeds])
    h, bd, reff = term.matrix, dense_b(grid, [0.3, 0.1], [1200.0, 600.0], "soar"), r / 2
    gain = bd @ h.T @ np.linalg.inv(h @ bd @ h.T + np.diag(reff))
    for m, s in enumerate(seeds):
        eps = np.sqrt(reff) * torch.randn(n, generator=torch.Generator().manual_seed(s),
                                          dtype=torch.float64).numpy()
        expected = xb[m].reshape(-1) + gain @ (y + eps - h @ xb[m].reshape(-1))
        np.testing.assert_allclose(xa[m].reshape(-1), expected, rtol=1e-9, atol=1e-12)


def test_observation_matrix_is_the_operator_and_refuses_a_nonlinear_one():
    grid = EquiangularGrid(8, 16)
    term = stations(grid, [10.0, -33.0, 71.0], [5.0, 200.0, 359.0], [0, 1, 1], np.zeros(3),
                    np.ones(3), channels=2)
    h = oi.observation_matrix(observations([term], "oi"), (2, 8, 16), block=2)
    np.testing.assert_allclose(h.toarray(), term.matrix, atol=1e-15)

    @dataclasses.dataclass
    class Squared(InterpObs):
        def operator(self, x):
            return self.interp.apply(x) ** 2

    bent = Squared(**{f.name: getattr(term, f.name) for f in dataclasses.fields(term)})
    with pytest.raises(BaselineError, match=r"not linear .*use method letkf"):
        oi.observation_matrix(observations([bent], "oi"), (2, 8, 16))


def test_a_term_with_correlated_errors_or_no_locations_is_refused_by_name():
    grid = EquiangularGrid(8, 16)
    term = stations(grid, [10.0], [5.0], [0], [0.0], [1.0])
    with pytest.raises(BaselineError, match="term 'matrix' has correlated errors"):
        observations([dataclasses.replace(term, covariance=object())], "oi")

    class Nowhere:
        name, weight, covariance, y, sigma_y = "nowhere", 1.0, None, torch.zeros(1), 1.0

        def locations(self):
            return None

    with pytest.raises(BaselineError, match="'nowhere' does not say where"):
        observations([Nowhere()], "letkf")
    assert len(observations([term, dataclasses.replace(term, weight=0.0)], "oi")) == 1


def test_samples_of_the_static_b_have_its_covariance():
    grid = EquiangularGrid(4, 8)
    b = oi.StaticCovariance([0.4], [3000.0], "gaussian", grid.lat, grid.lon)
    k = 4000
    draws = b.sample([torch.Generator().manual_seed(i) for i in range(k)]).reshape(k, -1)
    cov, bd = draws.T @ draws / k, dense_b(grid, [0.4], [3000.0], "gaussian")
    se = np.sqrt((np.diag(bd)[:, None] * np.diag(bd)[None] + bd ** 2) / k)  # of S_ij
    assert np.all(np.abs(cov - bd) < 5 * se)


# --------------------------------------------------------------------------- LETKF


def _linear_problem(k: int, seed: int, n_obs: int = 5):
    """A 2-channel 2x3 grid (12 values), ``k`` Gaussian members, random linear H."""
    rng = np.random.default_rng(seed)
    grid = EquiangularGrid(2, 4)
    n = 2 * 8
    a = rng.standard_normal((n, n))
    p = a @ a.T / n + 0.1 * np.eye(n)
    mu = rng.standard_normal(n)
    xb = rng.multivariate_normal(mu, p, size=k)
    h = rng.standard_normal((n_obs, n))
    r = rng.uniform(0.2, 0.5, n_obs)
    y = h @ mu + np.sqrt(r) * rng.standard_normal(n_obs)
    term = MatrixObs(torch.as_tensor(y), torch.as_tensor(r), h, np.zeros(n_obs),
                     np.zeros(n_obs), rng.integers(0, 2, n_obs))
    return grid, xb.reshape(k, 2, 2, 4), term, h, r, y, mu, p


def _kalman(mean, cov, h, r, y):
    s = h @ cov @ h.T + np.diag(r)
    gain = cov @ h.T @ np.linalg.inv(s)
    return mean + gain @ (y - h @ mean), (np.eye(len(mean)) - gain @ h) @ cov


@pytest.mark.parametrize("inflation", [1.0, 1.5])
def test_letkf_without_localisation_is_the_etkf_closed_form(inflation):
    """Mean and covariance equal the Kalman update of the (inflated) sample moments."""
    k = 7
    grid, xb, term, h, r, y, _, _ = _linear_problem(k, seed=5)
    xa = letkf.analysis(xb, observations([term], "letkf"), grid.lat, grid.lon,
                        np.array([850.0, 500.0]), localisation_km=None, inflation=inflation)
    flat = xb.reshape(k, -1)
    mean, cov = flat.mean(0), inflation * np.cov(flat.T)
    ma, pa = _kalman(mean, cov, h, r, y)
    np.testing.assert_allclose(xa.reshape(k, -1).mean(0), ma, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(np.cov(xa.reshape(k, -1).T), pa, rtol=1e-9, atol=1e-10)


def test_letkf_tends_to_the_kalman_filter_for_a_large_gaussian_ensemble():
    """k = 1000 members of N(μ, P): the analysis mean within 4 standard errors
    sqrt(P_ii / k) of the Kalman mean, every covariance entry within 4 standard errors
    sqrt((P_ii P_jj + P_ij²) / k) of a sample covariance of P."""
    k = 1000
    grid, xb, term, h, r, y, mu, p = _linear_problem(k, seed=6)
    xa = letkf.analysis(xb, observations([term], "letkf"), grid.lat, grid.lon,
                        np.array([850.0, 500.0]), localisation_km=None).reshape(k, -1)
    ma, pa = _kalman(mu, p, h, r, y)
    assert np.all(np.abs(xa.mean(0) - ma) < 4 * np.sqrt(np.diag(p) / k))
    se = np.sqrt((np.diag(p)[:, None] * np.diag(p)[None] + p ** 2) / k)
    assert np.all(np.abs(np.cov(xa.T) - pa) < 4 * se)


def _localised_setup(seed=7, k=6):
    grid = EquiangularGrid(16, 32)
    rng = np.random.default_rng(seed)
    xb = rng.standard_normal((k, 2, 16, 32))
    lat, lon = rng.uniform(20, 60, 12), rng.uniform(20, 80, 12)
    chan = rng.integers(0, 2, 12)
    term = stations(grid, lat, lon, chan, rng.standard_normal(12), rng.uniform(0.1, 0.3, 12),
                    channels=2)
    return grid, xb, term


def test_localisation_leaves_points_beyond_its_support_unchanged():
    grid, xb, term = _localised_setup()
    levels, c = np.array([850.0, 500.0]), 800.0
    xa = letkf.analysis(xb, observations([term], "letkf"), grid.lat, grid.lon, levels,
                        localisation_km=c)
    la, lo = np.meshgrid(grid.lat, grid.lon, indexing="ij")
    nearest = haversine_km(la[..., None], lo[..., None], term.lat, term.lon).min(-1)
    far, near = nearest >= 2 * c, nearest < c
    assert far.sum() > 100 and near.sum() > 10
    np.testing.assert_array_equal(xa[:, :, far], xb[:, :, far])
    assert np.all(np.abs(xa[:, :, near] - xb[:, :, near]).max(0) > 0)
    # in the vertical: 850 and 500 hPa are 0.53 scale heights apart
    v = letkf.analysis(xb, observations([dataclasses.replace(term, channel=np.zeros(12, int))],
                                        "letkf"), grid.lat, grid.lon, levels,
                       localisation_km=c, vertical=0.2)
    np.testing.assert_array_equal(v[:, 1], xb[:, 1])
    assert not np.array_equal(v[:, 0], xb[:, 0])


def test_localised_letkf_equals_hunts_formulas_point_by_point():
    """Brute force: at a few (point, channel), Hunt et al. (2007) eqs. 21-25 with the local
    observations' R divided by their Gaspari–Cohn weights, written out in loops."""
    grid, xb, term = _localised_setup(seed=8)
    levels, c, lv, infl, alpha = np.array([850.0, 500.0]), 1500.0, 0.6, 1.2, 0.4
    obs = observations([term], "letkf")
    xa = letkf.analysis(xb, obs, grid.lat, grid.lon, levels, localisation_km=c,
                        vertical=lv, inflation=infl, rtps=alpha)
    k = xb.shape[0]
    yb = np.stack([term.matrix @ xb[i].reshape(-1) for i in range(k)])
    ybar, y = yb.mean(0), term.y.numpy()
    for ch, i, j in [(0, 10, 5), (1, 11, 8), (0, 13, 12), (1, 8, 3)]:
        rho = np.array([
            gc_ref(haversine_km(grid.lat[i], grid.lon[j], term.lat[o], term.lon[o]) / c)
            * gc_ref(abs(np.log(levels[ch]) - np.log(levels[term.channel[o]])) / lv)
            for o in range(len(y))])
        use = rho > 0
        ymat = (yb - ybar)[:, use].T  # (l, k)
        rinv = np.diag(rho[use] / term.sigma_y.numpy()[use])
        pt = np.linalg.inv((k - 1) / infl * np.eye(k) + ymat.T @ rinv @ ymat)
        wbar = pt @ ymat.T @ rinv @ (y - ybar)[use]
        evals, evecs = np.linalg.eigh((k - 1) * pt)
        wa = evecs @ np.diag(np.sqrt(evals)) @ evecs.T
        x = xb[:, ch, i, j]
        xpert = x - x.mean()
        members = x.mean() + xpert @ (wbar[:, None] + wa)
        sd_b, sd_a = xpert.std(ddof=1), members.std(ddof=1)
        members = members.mean() + (members - members.mean()) * (
            alpha * (sd_b - sd_a) / sd_a + 1)
        np.testing.assert_allclose(xa[:, ch, i, j], members, rtol=1e-10, atol=1e-12)


def gc_ref(z: float) -> float:
    """Gaspari and Cohn (1999) eq. 4.10, as printed, for one z = r / c."""
    if z <= 1:
        return -z ** 5 / 4 + z ** 4 / 2 + 5 * z ** 3 / 8 - 5 * z ** 2 / 3 + 1
    if z < 2:
        return z ** 5 / 12 - z ** 4 / 2 + 5 * z ** 3 / 8 + 5 * z ** 2 / 3 - 5 * z + 4 \
            - 2 / (3 * z)
    return 0.0


def test_letkf_needs_two_members():
    grid, xb, term = _localised_setup()
    with pytest.raises(BaselineError, match="at least 2 members"):
        letkf.analysis(xb[:1], observations([term], "letkf"), grid.lat, grid.lon,
                       np.array([850.0, 500.0]), localisation_km=500.0)


# --------------------------------------------------------------------------- in the cycle


def rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("settings", [
    ["run.method=oi", "run.mode=plain"],
    ["run.method=oi", "run.mode=forecast"],
    ["run.method=oi", "run.mode=reinit", "run.reinit=members"],
    ["run.method=letkf", "run.mode=reinit", "run.reinit=members", "run.members=4"],
], ids=["oi-plain", "oi-forecast", "oi-reinit", "letkf"])
def test_every_classical_method_runs_the_same_cycle(fakes, tmp_path, settings):
    from dafusion.cycler.run import start_run

    _, sets = fakes
    cfg = cycle_fakes.config(sets, *settings)
    state = start_run(cfg, tmp_path / "run")
    assert state.cycle == 3 and (tmp_path / "run" / "COMPLETE").exists()
    diag = rows(tmp_path / "run" / "obs_diagnostics.csv")
    assert {r["source"] for r in diag} == {"stations"}  # the emulator is the background
    # the analysis fits the observations better than the background did
    later = [r for r in diag if r["omb_rms"]]
    assert later and all(float(r["oma_rms"]) < float(r["omb_rms"]) for r in later)
    members = xr.open_dataset(tmp_path / "run" / "cycle_002" / "members.nc")
    assert members.sizes["member"] == cfg.run.members
    assert float(members["temperature"].std("member").mean()) > 0  # an ensemble


def test_the_oi_cycle_analyses_the_regridded_forecast_it_wrote(fakes, tmp_path):
    """Cycle 1 of a one-member OI reinit run, recomputed from its own files: the
    forecast.nc regridded by the modes' regridder, its observations, the normaliser."""
    from dafusion.cycler.experiment import build_experiment
    from dafusion.cycler.run import start_run
    from dafusion.cycler.sources import Cycle, build_sources, observe
    from dafusion.regrid import make_regridder

    _, sets = fakes
    cfg = cycle_fakes.config(sets, "run.method=oi", "run.mode=reinit", "run.members=1")
    start_run(cfg, tmp_path / "run")
    exp = build_experiment(cfg)
    fc = xr.open_dataset(tmp_path / "run" / "cycle_001" / "forecast.nc")
    values = np.stack([fc[v].sel(level=lev).values if "level" in fc[v].dims else fc[v].values
                       for v, lev in (("temperature", 850), ("geopotential", 500),
                                      ("surface_pressure", None))], axis=-3)
    fine = make_regridder(exp.emulator.grid, exp.grid, cfg.emulator.regrid)(
        torch.as_tensor(values)).numpy()
    xb = exp.normaliser.normalise(fine.reshape(1, 3, *exp.grid.shape))
    t = exp.times[1]
    terms = observe(build_sources(exp, emulator_term=False),
                    Cycle(1, t, torch.zeros(3, *exp.grid.shape), None, None))
    b = oi.StaticCovariance([cfg.run.oi.variance] * 3, [cfg.run.oi.length_scale_km] * 3,
                            cfg.run.oi.correlation, exp.grid.lat, exp.grid.lon)
    expected = exp.normaliser.denormalise(oi.analysis(xb, observations(terms, "oi"), b, 1))
    ana = xr.open_dataset(tmp_path / "run" / "cycle_001" / "analysis.nc")
    np.testing.assert_allclose(ana["temperature"].sel(level=850).values, expected[0, 0],
                               rtol=1e-5)
    np.testing.assert_allclose(ana["surface_pressure"].values, expected[0, 2], rtol=1e-6)


def test_a_classical_run_resumes_to_the_same_metrics(fakes, tmp_path, monkeypatch):
    from dafusion.cycler.run import resume_run, start_run

    _, sets = fakes
    cfg = cycle_fakes.config(sets, "run.method=letkf", "run.mode=reinit",
                             "run.reinit=members", "run.members=3")
    start_run(cfg, tmp_path / "full")
    cycle_fakes.crash_at_metrics_write(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        start_run(cfg, tmp_path / "cut")
    monkeypatch.undo()
    resume_run(tmp_path / "cut")
    assert ((tmp_path / "cut" / "metrics.csv").read_text()
            == (tmp_path / "full" / "metrics.csv").read_text())


def test_letkf_settings_are_checked_at_load():
    from dafusion.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="letkf needs an ensemble of forecasts"):
        load_config(None, ["run.method=letkf", "run.mode=plain"])
    with pytest.raises(ConfigError, match=r"run.letkf.rtps: must be in \[0, 1\]"):
        load_config(None, ["run.method=letkf", "run.letkf.rtps=1.5"])
    with pytest.raises(ConfigError, match="run.oi.variance.humidity: unknown variable"):
        load_config(None, ["run.oi.variance={humidity: 0.1}"])


def test_compare_ranks_diffusion_and_classical_runs_of_one_window(fakes, tmp_path):
    """``compare``'s Overall line = mean over variables of (mean RMSE / best run's), from
    its own compare.csv, and the mean of each run's timing.csv analysis seconds."""
    from dafusion.cycler.campaigns.compare import compare
    from dafusion.cycler.run import start_run

    _, sets = fakes
    paths = []
    for method in ("diffusion", "oi"):
        paths.append(tmp_path / method)
        start_run(cycle_fakes.config(sets, f"run.method={method}", "run.mode=reinit"),
                  paths[-1])
    table, _ = compare(paths, tmp_path / "cmp")
    with open(tmp_path / "cmp" / "compare.csv") as f:
        csv_rows = [r for r in csv.DictReader(f) if r["score"] == "rmse"]
    means = {m: np.array([float(r["mean"]) for r in csv_rows if r["run"] == m])
             for m in ("diffusion", "oi")}
    best = np.minimum(means["diffusion"], means["oi"])
    overall = {line.split("|")[1].strip(): line.split("|")[2:5]
               for line in table.split("### Overall")[1].splitlines()
               if line.startswith("| ") and not line.startswith("| run")}
    for m, path in zip(("diffusion", "oi"), paths):
        assert float(overall[m][0]) == pytest.approx((means[m] / best).mean(), rel=1e-5,
                                                     abs=1e-4)
        seconds = [float(r["analysis_s"]) for r in rows(path / "timing.csv")]
        assert float(overall[m][2]) == pytest.approx(np.mean(seconds), rel=5e-3)  # 3 digits


def test_the_shipped_configurations_hold_the_tuned_defaults():
    """configs/oi.yaml and configs/letkf.yaml (the sweeps' choices) are what
    ``--method oi|letkf`` gets, but the LETKF's inflation."""
    from pathlib import Path

    from dafusion.config import LETKFConfig, OIConfig, load_config

    root = Path(__file__).resolve().parents[1] / "configs"
    oi_cfg, lk_cfg = load_config(root / "oi.yaml"), load_config(root / "letkf.yaml")
    assert oi_cfg.run.method == "oi" and oi_cfg.run.oi == OIConfig()
    assert lk_cfg.run.method == "letkf" and lk_cfg.run.letkf == LETKFConfig()
    assert lk_cfg.run.oi == OIConfig() and lk_cfg.run.inflation == 1.0
    plain = load_config(root / "oi_plain.yaml")
    assert (plain.run.method, plain.run.mode) == ("oi", "plain")


def test_a_classical_run_without_observations_or_b_is_refused_before_compute():
    from dafusion.cycler.rundir import RunError

    with pytest.raises(RunError, match="run.method oi assimilates the stations and gridded"):
        cycle_fakes.experiment("run.method=oi", "run.mode=reinit",
                               "run.sources.stations.enabled=false")
    with pytest.raises(RunError, match="run.oi.variance: no value for geopotential"):
        cycle_fakes.experiment("run.method=oi", "run.mode=plain",
                               "run.oi.variance={temperature: 0.1, surface_pressure: 0.1}")
