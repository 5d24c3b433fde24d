"""Opt-in benchmarks of the classical analyses (``pytest tests/benchmarks -o addopts=""``):
one OI and one LETKF analysis of 8 members at the demo size (9 channels, 32x64, 150
stations x 9 channels = 1,350 observations) and at the paper's size (13 channels,
128x256, 600 stations x 13 channels = 7,800 observations; LETKF only, the OI solve
being observation-space, its cost is the demo's times the observations' ratio).
Memory: the peak resident set of the process is printed by ``-s`` runs."""

import resource

import numpy as np
import pytest
import torch

from dafusion.baselines import letkf, oi
from dafusion.baselines.base import channel_levels, observations
from dafusion.grids import EquiangularGrid
from dafusion.interp import PointInterpolation

SIZES = {"demo_32x64": (["t850", "t500", "u850", "u500", "v850", "v500", "z850", "z500",
                         "sp"], EquiangularGrid(32, 64), 150),
         "paper_128x256": ([f"{v}{p}" for v in ("t", "u", "v") for p in (850, 500, 250)]
                           + ["z500", "z850", "z250", "sp"], EquiangularGrid(128, 256), 600)}


class _Stations:
    """A station term (bicubic interpolation) at random places, every channel observed."""

    def __init__(self, grid, channels, n, rng):
        lat = np.repeat(rng.uniform(-80, 80, n), len(channels))
        lon = np.repeat(rng.uniform(0, 360, n), len(channels))
        chan = np.tile(np.arange(len(channels)), n)
        self.interp = PointInterpolation.build(grid, lat, lon, chan, "bicubic")
        self.lat, self.lon, self.chan = lat, lon, chan
        self.name, self.weight, self.covariance, self.gamma = "stations", 1.0, None, 0.0
        self.y = torch.as_tensor(rng.standard_normal(lat.size))
        self.sigma_y = torch.full((lat.size,), 0.01, dtype=torch.float64)

    def operator(self, x):
        return self.interp.apply(x)

    def locations(self):
        return self.lat, self.lon, self.chan


def _case(size):
    channels, grid, n = SIZES[size]
    rng = np.random.default_rng(0)
    xb = rng.standard_normal((8, len(channels), *grid.shape))
    return channels, grid, xb, observations([_Stations(grid, channels, n, rng)], "bench")


def _report(name):
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\n{name}: peak resident set {peak:.0f} MiB")


def test_oi_analysis_demo(benchmark):
    channels, grid, xb, obs = _case("demo_32x64")
    b = oi.StaticCovariance([0.1] * len(channels), [450.0] * len(channels), "gaussian",
                            grid.lat, grid.lon)
    gens = [torch.Generator().manual_seed(m) for m in range(8)]
    benchmark.pedantic(lambda: oi.analysis(xb, obs, b, 8, gens), rounds=3, iterations=1)
    _report("oi demo")


@pytest.mark.parametrize("size", list(SIZES))
def test_letkf_analysis(benchmark, size):
    channels, grid, xb, obs = _case(size)
    run = lambda: letkf.analysis(xb, obs, grid.lat, grid.lon, channel_levels(channels),  # noqa: E731
                                 localisation_km=700.0, vertical=1.0, rtps=0.5)
    benchmark.pedantic(run, rounds=1 if size.startswith("paper") else 3, iterations=1)
    _report(f"letkf {size}")
