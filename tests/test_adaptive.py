"""The cycle's calibration devices against hand-computed answers: the adaptive Σ_y
scale of the emulator term (``cycler.sources.adaptive``) and the inflation of the reinit
members' forecasts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import fakes
from dafusion.cycler.sources.adaptive import BOUNDS, innovation_scales, smoothed
from dafusion.grids import EquiangularGrid
from dafusion.normalise import Normaliser
from dafusion.obs.stations import StationObs
from dafusion.obs.table import ObservationTable

CHANNELS = ["t850", "z500", "sp"]
GRID = EquiangularGrid(8, 16)
NORM = Normaliser(tuple(CHANNELS), np.array([270.0, 55000.0, 1e5]), np.array([10.0, 2000.0, 500.0]))


def _stations(n_t: int = 12, n_sp: int = 15, n_z: int = 3) -> StationObs:
    rng = np.random.default_rng(0)
    var = ["temperature"] * n_t + ["surface_pressure"] * n_sp + ["geopotential"] * n_z
    level = [850.0] * n_t + [np.nan] * n_sp + [500.0] * n_z
    mean = {"temperature": 270.0, "surface_pressure": 1e5, "geopotential": 55000.0}
    spread = {"temperature": 4.0, "surface_pressure": 300.0, "geopotential": 800.0}
    err = {"temperature": 1.0, "surface_pressure": 100.0, "geopotential": 100.0}
    n = len(var)
    table = ObservationTable(
        time=np.full(n, np.datetime64("2020-01-01T00", "ns")),
        lat=rng.uniform(-80, 80, n), lon=rng.uniform(0, 360, n), level=np.array(level),
        variable=np.array(var), value=np.array([mean[v] + spread[v] * rng.standard_normal()
                                                for v in var]),
        error_std=np.array([err[v] for v in var]), station_id=np.arange(n).astype(str),
        source=np.array(["s"] * n), qc=np.zeros(n, int))
    return StationObs.from_table(table, channels=CHANNELS, normaliser=NORM, grid=GRID,
                                 time=np.datetime64("2020-01-01"), window_hours=1.0,
                                 method="bicubic", sigma_y=None, gamma=0.1, weight=1.0)


def test_innovation_scales_from_the_innovations_by_hand():
    term = _stations()
    background = torch.zeros(3, *GRID.shape)  # the climatological mean, normalised
    claimed, unresolved = {"t850": 0.01, "z500": 0.01, "sp": 0.02}, {"t850": 0.001,
                                                                      "z500": 0.0, "sp": 0.0}
    got = innovation_scales(term, background, CHANNELS, claimed, unresolved)
    assert set(got) == {"t850", "sp"}  # 3 observations of z500: too few to estimate
    y, r = term.y.double(), term.sigma_y.double()
    for name, count in (("t850", 12), ("sp", 15)):
        sel = np.array(term.rows.variable) == {"t850": "temperature",
                                               "sp": "surface_pressure"}[name]
        assert sel.sum() == count
        e = float((y[sel] ** 2).mean() - r[sel].mean()) - unresolved[name]
        assert got[name] == pytest.approx(np.clip(e / claimed[name], *BOUNDS), rel=1e-9)
    # a forecast already as bad as claimed, or better, keeps its statistics (lower bound)
    assert innovation_scales(term, background, CHANNELS, {"t850": 1e6},
                             {"t850": 0.0})["t850"] == BOUNDS[0]


def test_smoothing_is_geometric_with_one_half():
    assert smoothed({"t850": 4.0}, {"t850": 16.0, "sp": 9.0}) == pytest.approx(
        {"t850": 8.0, "sp": 3.0})
    assert smoothed({}, {"t850": 1.0}) == {"t850": 1.0}
    assert math.isclose(smoothed({"a": 2.0}, {"a": 2.0})["a"], 2.0)


def test_inflation_spreads_the_members_forecasts_about_their_mean():
    truth = fakes.truth_source()
    rng = np.random.default_rng(1)
    start = truth.at(truth.times[0]).values.astype(np.float64)
    analysis = start[None] * (1 + 0.001 * rng.standard_normal((3,) + start.shape))
    out = {}
    for rho in (1.0, 2.5):
        exp = fakes.experiment("run.mode=reinit", "run.reinit=members", f"run.inflation={rho}",
                               "run.members=3")
        out[rho] = exp.mode().next_state(0, analysis)
    mean = out[1.0].mean(0, keepdims=True)
    # the emulator computes in float32: compare at its precision, relative to the field
    scale = np.abs(mean).max(axis=(0, 2, 3), keepdims=True)
    np.testing.assert_allclose(out[2.5].mean(0, keepdims=True) / scale, mean / scale, atol=1e-6)
    np.testing.assert_allclose((out[2.5] - mean) / scale, 2.5 * (out[1.0] - mean) / scale,
                               atol=1e-6)
    assert np.abs(out[1.0] - mean).max() / scale.max() > 1e-4  # the members do differ


def test_the_osse_gridded_observations_carry_noise_of_their_stated_sigma_y():
    """No inverse crime by default: y − (the truth coarsened) has the stated Σ_y variance."""
    from dafusion.cycler.sources import Cycle, build_sources, observe

    exp = fakes.experiment("run.mode=plain", "run.sources.gridded.enabled=true",
                           "run.sources.gridded.sigma_y=0.04",
                           "run.sources.gridded.grid=equiangular_16x32")
    t = exp.times[0]
    truth_n = torch.as_tensor(exp.normaliser.normalise(exp.truth.at(t).values))
    (gridded,) = [term for term in observe(build_sources(exp), Cycle(0, t, truth_n, None, None))
                  if term.name == "gridded"]
    noise = (gridded.y - gridded.operator(truth_n[None])[0]).double()
    n = noise.numel()  # 3 x 16 x 32 values: the sample std is within 3 % at 3 sigma
    assert n == 1536
    assert float(noise.std()) == pytest.approx(0.2, rel=3 * (1 / (2 * n)) ** 0.5)


def test_the_adaptive_scales_travel_through_the_saved_state():
    """The emulator source keeps its scales; ``carry``/``restore`` (as JSON, as state.npz
    keeps them) give a new source the same scales, and its term the same Σ_y."""
    import json

    from dafusion.cycler.sources import Cycle, build_sources, carry, restore

    exp = fakes.experiment("run.mode=reinit", "run.sources.emulator.adaptive=true")
    mode = exp.mode()
    first = build_sources(exp)
    emulator = first[-1]
    assert emulator.name == "emulator"
    emulator.error_scale = {"t850": 2.5, "sp": 1.25}
    meta = json.loads(json.dumps(carry(first)))
    assert meta["emulator"] == {"error_scale": {"t850": 2.5, "sp": 1.25}}
    again = build_sources(exp)
    restore(again, meta)
    assert again[-1].error_scale == {"t850": 2.5, "sp": 1.25}
    t = exp.times[1]
    now = Cycle(1, t, torch.zeros(3, *exp.grid.shape), None, mode.pseudo_obs(1))
    (a,), (b,) = emulator.terms(now), again[-1].terms(now)  # no background: no new estimate
    assert torch.equal(torch.as_tensor(a.sigma_y), torch.as_tensor(b.sigma_y))
    plain = build_sources(fakes.experiment("run.mode=reinit", "run.sources.emulator.adaptive=true"))
    (c,) = plain[-1].terms(now)
    # t850 and sp scaled by 2.5 and 1.25 against the unscaled statistics, z500 not
    ratio = torch.as_tensor(a.sigma_y) / torch.as_tensor(c.sigma_y)
    per_channel = ratio.reshape(3, -1)
    for k, expected in enumerate((2.5, 1.0, 1.25)):
        torch.testing.assert_close(per_channel[k], torch.full_like(per_channel[k], expected),
                                   rtol=1e-5, atol=0)
    assert mode.pseudo_obs(1).lead_hours == 12.0 and mode.pseudo_obs(0).lead_hours == 0.0


# --------------------------------------------------------------------------- adaptive inflation


def test_inflation_factors_from_the_innovations_by_hand():
    """Members constant in space: every station of channel c sees the members' values
    a_mc exactly, so s² = var_m(a_mc) (unbiased) and ρ̂_c = sqrt((mean d² − mean R − U_c)
    / s²), bounded; computed here without the code's interpolation."""
    from dafusion.cycler.sources.adaptive import INFLATION_BOUNDS, inflation_factors

    term = _stations(n_t=12, n_sp=15, n_z=3)
    background = torch.zeros(3, *GRID.shape)
    level = torch.tensor([[0.05, 0.0, 0.4], [-0.05, 0.0, -0.2], [0.15, 0.0, 0.1],
                          [-0.15, 0.0, -0.3]], dtype=torch.float64)  # (M, C)
    members = level[:, :, None, None].expand(4, 3, *GRID.shape).clone()
    unresolved = {"t850": 0.001, "z500": 0.0, "sp": 0.002}
    got = inflation_factors(term, background, members, CHANNELS, unresolved)
    assert set(got) == {"t850", "sp"}  # 3 observations of z500: too few
    y, r = term.y.double(), term.sigma_y.double()
    for name, var in (("t850", "temperature"), ("sp", "surface_pressure")):
        sel = np.array(term.rows.variable) == var
        k = CHANNELS.index(name)
        s2 = float(level[:, k].var(unbiased=True))
        e = float((y[sel] ** 2).mean() - r[sel].mean()) - unresolved[name]
        expected = float(np.clip(math.sqrt(max(e / s2, 0.0)), *INFLATION_BOUNDS))
        assert got[name] == pytest.approx(expected, rel=1e-6)  # the operator is float32
    # the innovations here are ~ the climatological spread: a tight ensemble is inflated
    # to the upper bound, a wide one deflated to the lower
    assert inflation_factors(term, background, members * 1e-3, CHANNELS,
                             unresolved)["t850"] == INFLATION_BOUNDS[1]
    assert inflation_factors(term, background, members * 1e3, CHANNELS,
                             unresolved)["t850"] == INFLATION_BOUNDS[0]


def _member_cycle(exp, members: int = 4):
    """A reinit mode advanced from ``members`` perturbed analyses, and its cycle 1."""
    from dafusion.cycler.sources import Cycle

    mode = exp.mode()
    rng = np.random.default_rng(3)
    start = exp.truth.at(exp.times[0]).values.astype(np.float64)
    mode.advance(0, start[None] * (1 + 0.002 * rng.standard_normal((members,) + start.shape)))
    t = exp.times[1]
    truth = torch.as_tensor(exp.normaliser.normalise(exp.truth.at(t).values),
                            dtype=torch.float32)
    background = torch.as_tensor(exp.normaliser.normalise(mode.background(1)),
                                 dtype=torch.float32)
    return Cycle(1, t, truth, background, mode.pseudo_obs(1))


def test_adaptive_inflation_spreads_the_pseudo_observations_by_its_factors():
    """With ``adaptive_inflation`` member m's pseudo-observation is the members' mean plus
    ρ_c times its deviation, ρ_c = ρ̂_c^α (smoothed from 1) with this cycle's estimate; the
    factors travel through ``carry``/``restore`` as JSON."""
    import json

    from dafusion.cycler.sources import build_sources, carry, observe, restore

    settings = ("run.mode=reinit", "run.reinit=members", "run.members=4", "run.inflation=1.0",
                "run.sources.emulator.perturb=false")
    exp = fakes.experiment(*settings, "run.sources.emulator.adaptive_inflation=true")
    cycle = _member_cycle(exp)
    sources = build_sources(exp)
    (adaptive,) = [t for t in observe(sources, cycle) if t.name == "emulator"]
    (fixed,) = [t for t in observe(build_sources(fakes.experiment(*settings)), cycle)
                if t.name == "emulator"]
    rho = sources[-1].inflation
    assert set(rho) == {"t850", "z500", "sp"}
    assert len({round(v, 6) for v in rho.values()}) > 1  # estimated per channel
    y0 = fixed.y.double().reshape(4, 3, -1)
    y1 = adaptive.y.double().reshape(4, 3, -1)
    mean = y0.mean(0, keepdim=True)
    for k, name in enumerate(CHANNELS):
        torch.testing.assert_close(y1[:, k], mean[:, k] + rho[name] * (y0[:, k] - mean[:, k]),
                                   rtol=0, atol=2e-5)
    meta = json.loads(json.dumps(carry(sources)))
    assert meta["emulator"] == {"inflation": rho}
    again = build_sources(exp)
    restore(again, meta)
    assert again[-1].inflation == rho


def test_hybrid_adds_the_members_spread_to_sigma_y_and_observes_their_mean():
    """``hybrid``: y is the members' mean; Σ_y's point variance grows by exactly the members'
    area-mean unbiased variance (Parseval, for fields the emulator grid holds)."""
    from dafusion.cycler.modes import EmulatorState
    from dafusion.cycler.sources import Cycle, build_sources
    from dafusion.grids import weighted_mean
    from dafusion.regrid import max_degree
    from dafusion.spectra import synthesis

    settings = ("run.mode=reinit", "run.members=4", "run.sources.emulator.perturb=false")
    exp = fakes.experiment(*settings, "run.sources.emulator.hybrid=true")
    grid = exp.emulator.grid
    lmax = max_degree(grid)
    rng = np.random.default_rng(5)
    coef = torch.as_tensor(rng.standard_normal((4, 3, lmax + 1, lmax + 1))
                           + 1j * rng.standard_normal((4, 3, lmax + 1, lmax + 1)))
    coef = torch.triu(coef.transpose(-1, -2)).transpose(-1, -2)  # a_lm = 0 for m > l
    coef[..., 0, :] = coef[..., 0, :].real  # m = 0: real
    scale = torch.tensor([2.0, 300.0, 200.0], dtype=torch.float64)[None, :, None, None]
    base = exp.truth.at(exp.times[1]).values.mean((-2, -1))[None, :, None, None]
    values = base + (synthesis(coef, grid) * scale).numpy()
    state = EmulatorState(values, list(exp.emulator.channels), lead_hours=12.0)
    cycle = Cycle(1, exp.times[1], torch.zeros(3, *exp.grid.shape), None, state)
    (hybrid,) = [t for t in build_sources(exp)[-1].terms(cycle) if t.name == "emulator"]
    (plain,) = [t for t in build_sources(fakes.experiment(*settings))[-1].terms(cycle)
                if t.name == "emulator"]
    mean = values.mean(0)
    normalised = exp.normaliser.normalise(mean)
    torch.testing.assert_close(hybrid.y.double(), torch.as_tensor(normalised).reshape(-1)
                               .double(), rtol=0, atol=1e-5)
    extra = (torch.as_tensor(hybrid.sigma_y) - torch.as_tensor(plain.sigma_y)).reshape(3, -1)
    spread = weighted_mean(values.var(0, ddof=1), grid)  # (C,), physical
    expected = exp.normaliser.variance_at(spread, np.arange(3))
    for k in range(3):
        torch.testing.assert_close(extra[k], torch.full_like(extra[k], float(expected[k])),
                                   rtol=1e-6, atol=0)


def test_a_channel_without_an_estimate_this_cycle_keeps_its_scale():
    """Scales of channels the stations did not observe enough this cycle are kept, for
    this cycle's Σ_y and the next (they were dropped before)."""
    from dafusion.cycler.sources import build_sources, observe

    exp = fakes.experiment("run.mode=reinit", "run.sources.emulator.adaptive=true")
    sources = build_sources(exp)
    emulator = sources[-1]
    emulator.error_scale = {"t850": 2.5, "z500": 3.0}
    emulator._estimate = lambda cycle, state, background: {"t850": 10.0}
    cycle = _member_cycle(exp, members=2)
    observe(sources, cycle)
    assert emulator.error_scale == pytest.approx({"t850": 5.0, "z500": 3.0})
