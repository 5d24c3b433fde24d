"""Opt-in benchmarks, skipped by the test suite; run them with
``pytest tests/benchmarks -o addopts=""``.

Names say what is measured; compare ratios measured in the same run.
"""

import numpy as np
import pytest

from dafusion.config import WorldConfig
from dafusion.data import GriddedSource
from dafusion.normalise import Normaliser

CHANNELS = ["t850", "t500", "u850", "v500", "z500", "sp"]


def test_read_one_state_from_wb2_zarr(benchmark, wb2_zarr):
    source = GriddedSource.open(wb2_zarr, CHANNELS)
    state = benchmark(source.at, "2020-01-01T06")
    assert state.shape == (6, 32, 64)


def test_read_one_state_from_packed_cds_netcdf(benchmark, cds_netcdf):
    source = GriddedSource.open(cds_netcdf, CHANNELS)
    assert benchmark(source.at, "2020-01-01T06").shape == (6, 32, 64)


def test_normalise_128x256_batch16(benchmark):
    norm = Normaliser(tuple(f"c{i}" for i in range(13)), np.zeros(13), np.ones(13))
    x = np.random.default_rng(0).normal(size=(16, 13, 128, 256)).astype(np.float32)
    assert benchmark(norm.normalise, x).shape == x.shape


def test_world_ten_simulated_days(benchmark):
    """Held-Suarez T21 speed: 10 simulated days per call (compile excluded)."""
    pytest.importorskip("dinosaur")
    from dafusion.world import HeldSuarezWorld

    world = HeldSuarezWorld(WorldConfig())
    state = world.initial_state()
    world.advance(state, 40)  # compile
    benchmark.extra_info["simulated_days_per_call"] = 10
    benchmark.pedantic(world.advance, args=(state, 40), rounds=3, iterations=1)
