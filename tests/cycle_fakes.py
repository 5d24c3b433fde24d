"""Tiny fakes for cycle-driver tests: a truth file, an untrained prior and emulator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import xarray as xr

from dafusion.config import NetworkConfig, EDMConfig, SFNOConfig, load_config
from dafusion.emulator.checkpoint import save_emulator
from dafusion.emulator.model import EmulatorMeta, EmulatorStats, SFNOEmulator
from dafusion.grids import EquiangularGrid, LegendreGaussGrid
from dafusion.normalise import Normaliser
from dafusion.prior.checkpoint import PriorMeta, build_denoiser, save_checkpoint

CHANNELS = ["t850", "z500", "sp"]
GRID = EquiangularGrid(32, 64)
EMU_GRID = LegendreGaussGrid(16, 32)


def truth_file(path: Path, days: int = 4) -> Path:
    """6-hourly smooth fields plus noise: t850, z500 (as levels) and sp."""
    times = np.datetime64("2020-01-01T00", "ns") + np.arange(4 * days + 1) * np.timedelta64(6, "h")
    lat = np.deg2rad(GRID.lat)[None, :, None]
    lon = np.deg2rad(GRID.lon)[None, None, :]
    k = np.arange(times.size)[:, None, None]
    rng = np.random.default_rng(0)
    wave = np.sin(lat) * np.cos(lon - 0.2 * k)
    t850 = 270 + 20 * wave + rng.normal(0, 0.5, wave.shape)
    z500 = 54000 + 2000 * wave + rng.normal(0, 50, wave.shape)
    sp = 100000 + 500 * wave + rng.normal(0, 20, wave.shape)
    levels = [500, 850]
    t = np.stack([t850 - 20, t850], axis=1)
    z = np.stack([z500, z500 - 40000], axis=1)
    ds = xr.Dataset({"temperature": (("time", "level", "latitude", "longitude"),
                                     t.astype(np.float32), {"units": "K"}),
                     "geopotential": (("time", "level", "latitude", "longitude"),
                                      z.astype(np.float32), {"units": "m**2 s**-2"}),
                     "surface_pressure": (("time", "latitude", "longitude"),
                                          sp.astype(np.float32), {"units": "Pa"})},
                    coords={"time": times, "level": levels, "latitude": GRID.lat,
                            "longitude": GRID.lon})
    ds.to_netcdf(path)
    return path


def prior_checkpoint(path: Path, truth: Path) -> Path:
    from dafusion.data import GriddedSource

    src = GriddedSource.open(truth, CHANNELS)
    normaliser = Normaliser.fit(src.stack().load(), GRID)
    meta = PriorMeta(GRID, CHANNELS, NetworkConfig(base_channels=8, channel_mult=[1, 2],
                                                   attention_resolutions=[], dropout=0.0),
                     EDMConfig())
    torch.manual_seed(0)
    return save_checkpoint(path, meta, build_denoiser(meta), normaliser, {"note": "untrained"})


def emulator_checkpoint(path: Path) -> Path:
    meta = EmulatorMeta(EMU_GRID, CHANNELS, [], [], [], 6, "north_to_south",
                        SFNOConfig(embed_dim=8, num_layers=1))
    stats = EmulatorStats(np.array([270.0, 54000.0, 1e5]), np.array([15.0, 1500.0, 400.0]),
                          np.array([0.5, 50.0, 20.0]), np.zeros(0), np.ones(0), np.zeros(0),
                          np.zeros(0))
    torch.manual_seed(0)
    return save_emulator(path, SFNOEmulator(meta, stats), {"note": "untrained"})


def setup(tmp: Path, days: int = 4) -> list[str]:
    """Files in ``tmp`` and the --set overrides that point a run at them."""
    truth = truth_file(tmp / "truth.nc", days)
    prior_checkpoint(tmp / "prior", truth)
    emulator_checkpoint(tmp / "emulator")
    return [f"run.truth={truth}", f"data.channels=[{','.join(CHANNELS)}]",
            f"prior.checkpoint={tmp / 'prior'}", f"emulator.checkpoint={tmp / 'emulator'}",
            f"emulator.channels=[{','.join(CHANNELS)}]", "prior.sampler.steps=3",
            "run.members=2", "run.days=1", "run.start=2020-01-01T00", "obs.n_stations=30",
            # an untrained prior with 3 steps is no distribution: its samples reach ~20 std
            "run.max_normalised=1e6"]


def config(overrides: list[str], *extra: str):
    return load_config(None, list(overrides) + list(extra))
