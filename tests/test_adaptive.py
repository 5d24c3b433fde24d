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
