"""The paper's real setup (configs/era5_lucie.yaml) for one cycle end to end: ERA5 layout at
128x256 with the 13 channels, LUCIE's exact architecture with random weights imported from
LUCIE-format files, a narrowed random-weight SongUNet prior, an observation table. The only
things a user changes are the paths to real files."""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr
from test_emulator_lucie import lucie_files  # noqa: F401 - fixture

from dafusion.config import EDMConfig, NetworkConfig, load_config
from dafusion.cycler.run import start_run
from dafusion.data import GriddedSource
from dafusion.emulator.checkpoint import import_lucie
from dafusion.grids import EquiangularGrid
from dafusion.normalise import Normaliser
from dafusion.obs.synth import land_network, synthesise
from dafusion.obs.table import write_table
from dafusion.prior.checkpoint import PriorMeta, build_denoiser, save_prior

GRID = EquiangularGrid(128, 256)


def era5_file(path):
    times = np.datetime64("2020-01-01T12", "ns") + np.arange(3) * np.timedelta64(6, "h")
    lat = np.deg2rad(GRID.lat)[None, :, None]
    lon = np.deg2rad(GRID.lon)[None, None, :]
    k = np.arange(3)[:, None, None]
    rng = np.random.default_rng(0)
    wave = np.sin(lat) * np.cos(lon - 0.1 * k) + 0.05 * rng.normal(size=(3, 128, 256))

    def lev(base, amp, levels):
        return np.stack([base[i] + amp[i] * wave for i in range(len(levels))], 1).astype(
            np.float32)

    dims3, dims4 = ("time", "latitude", "longitude"), ("time", "level", "latitude", "longitude")
    levels = [500, 850, 925]
    ds = xr.Dataset({
        "2m_temperature": (dims3, (280 + 20 * wave).astype(np.float32), {"units": "K"}),
        "10m_u_component_of_wind": (dims3, (3 * wave).astype(np.float32), {"units": "m s**-1"}),
        "10m_v_component_of_wind": (dims3, (2 * wave).astype(np.float32), {"units": "m s**-1"}),
        "surface_pressure": (dims3, (98000 + 900 * wave).astype(np.float32), {"units": "Pa"}),
        "total_precipitation_6hr": (dims3, np.abs(1e-3 * wave).astype(np.float32),
                                    {"units": "m"}),
        "temperature": (dims4, lev([252, 275, 280], [10, 15, 18], levels), {"units": "K"}),
        "specific_humidity": (dims4, np.abs(lev([1e-3, 4e-3, 6e-3], [5e-4, 2e-3, 3e-3],
                                                 levels)), {"units": "kg kg**-1"}),
        "u_component_of_wind": (dims4, lev([15, 5, 3], [10, 6, 5], levels), {"units": "m s**-1"}),
        "v_component_of_wind": (dims4, lev([0, 0, 0], [8, 5, 4], levels), {"units": "m s**-1"}),
        "geopotential": (dims4, lev([54000, 14000, 7500], [2000, 700, 500], levels),
                         {"units": "m**2 s**-2"}),
    }, coords={"time": times, "level": levels, "latitude": GRID.lat, "longitude": GRID.lon})
    ds.to_netcdf(path)
    return path


def test_one_cycle_of_the_paper_setup(tmp_path, lucie_files):  # noqa: F811
    cfg0 = load_config("configs/era5_lucie.yaml")
    data = era5_file(tmp_path / "era5.nc")
    channels = cfg0.data.channels
    assert len(channels) == 13
    src = GriddedSource.open(data, channels)
    normaliser = Normaliser.fit(src.stack().load(), GRID)
    narrow = NetworkConfig(base_channels=8, channel_mult=[1, 2], blocks_per_level=1,
                           attention_resolutions=[], dropout=0.0)
    meta = PriorMeta(GRID, channels, narrow, EDMConfig())
    torch.manual_seed(0)
    save_prior(tmp_path / "prior", meta, build_denoiser(meta), normaliser, {})
    lucie_cfg = load_config("configs/era5_lucie.yaml",
                            [f"emulator.orography={lucie_files / 'oro.nc'}"])
    import_lucie(lucie_files / "lucie.pth", lucie_files / "stats.npz", lucie_cfg.emulator,
                 tmp_path / "lucie")
    obs_cfg = load_config(None, [
        "obs.error_std={temperature: 1.0, u_component_of_wind: 2.0, v_component_of_wind: 2.0,"
        " geopotential: 100.0, surface_pressure: 100.0, specific_humidity: 0.001,"
        " 2m_temperature: 1.0, 10m_u_component_of_wind: 2.0, 10m_v_component_of_wind: 2.0,"
        " total_precipitation_6hr: 0.001}", "obs.hours=[0, 12]"]).obs
    write_table(synthesise(src, land_network(40, 0.75, 0), obs_cfg), tmp_path / "igra.nc")
    cfg = load_config("configs/era5_lucie.yaml", [
        f"data.path={data}", f"run.truth={data}", f"prior.checkpoint={tmp_path / 'prior'}",
        "prior.network.base_channels=8", "prior.network.channel_mult=[1,2]",
        "prior.network.blocks_per_level=1", "prior.network.attention_resolutions=[]",
        f"emulator.checkpoint={tmp_path / 'lucie'}",
        f"emulator.orography={lucie_files / 'oro.nc'}",
        f"run.observations={tmp_path / 'igra.nc'}", "run.members=2", "run.days=0.5",
        "prior.sampler.steps=2", "run.max_normalised=1e6"])  # untrained: no distribution
    state = start_run(cfg, tmp_path / "run")
    assert state.cycle == 2
    assert len(state.tables.metrics) == 2 * 13
    assert {r["source"] for r in state.tables.obs} == {"stations", "emulator"}
    fc = xr.open_dataset(tmp_path / "run" / "cycle_001" / "forecast.nc")
    assert fc.sizes["latitude"] == 48 and "total_precipitation_6hr" in fc
    assert all(np.isfinite(r["rmse"]) for r in state.tables.metrics)
