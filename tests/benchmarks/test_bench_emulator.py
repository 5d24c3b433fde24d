"""Opt-in emulator benchmarks (``pytest tests/benchmarks -o addopts=""``): one 12-hour
forecast (two 6-hour steps) at the demo size (16x32, embed 48, 4 layers, 9 channels) and at
LUCIE's size (48x96, embed 72, 8 layers, 5+2 inputs, 6 outputs, tisr computed every step),
for one member and for 8 members batched. Untrained weights cost what trained ones do.
Memory: the peak resident set of the process is printed by ``-s`` runs."""

import resource

import numpy as np
import pytest
import torch
import xarray as xr

from dafusion.config import load_config
from dafusion.emulator.checkpoint import meta_from_config
from dafusion.emulator.model import EmulatorStats, SFNOEmulator


def _model(config, overrides=()):
    meta = meta_from_config(load_config(config, list(overrides)).emulator)
    p, f, d = len(meta.channels), len(meta.forcing), len(meta.diagnostics)
    stats = EmulatorStats(np.zeros(p), np.ones(p), np.ones(p), np.zeros(f), np.ones(f),
                          np.zeros(d), np.ones(d))
    static = {"orography": np.zeros(meta.grid.shape)} if "orography" in meta.forcing else {}
    torch.manual_seed(0)
    return SFNOEmulator(meta, stats, static=static).eval()


def _state(model, members):
    g = model.grid
    return xr.DataArray(np.random.default_rng(0).normal(size=(members, len(model.channels),
                                                              *g.shape)),
                        dims=("member", "channel", "lat", "lon"),
                        coords={"channel": model.channels, "lat": g.lat, "lon": g.lon,
                                "time": np.datetime64("2020-01-01T00", "ns")})


@pytest.mark.parametrize("members", [1, 8])
@pytest.mark.parametrize("size", ["demo_16x32", "lucie_48x96"])
def test_emulator_12h_forecast(benchmark, size, members):
    model = (_model("configs/osse.yaml") if size == "demo_16x32"
             else _model("configs/lucie.yaml", ["emulator.orography=unused.nc"]))
    state = _state(model, members)
    out = benchmark(model.forecast, state, 2)
    assert out.sizes["lead"] == 2
    benchmark.extra_info["seconds_per_member"] = benchmark.stats["mean"] / members
    benchmark.extra_info["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
