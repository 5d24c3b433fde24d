"""The demo data shipped inside the package: truth window and prior."""

import dataclasses

import numpy as np
import xarray as xr

from dafusion.config import load_config
from dafusion.data import GriddedSource, demo_truth_path
from dafusion.grids import EquiangularGrid

DEMO_BUDGET_BYTES = 15_000_000  # all shipped demo data together


def test_demo_truth_covers_the_window_in_physical_units():
    cfg = load_config(None)
    source = GriddedSource.open(demo_truth_path(), cfg.data.channels)
    assert source.grid == EquiangularGrid(32, 64)
    times = source.times
    assert times[0] == np.datetime64("2020-01-01T00") and times[-1] >= np.datetime64("2020-02-01")
    assert np.all(np.diff(times) == np.timedelta64(12, "h"))
    stack = source.stack().values
    assert np.all(np.isfinite(stack))
    t850, z500, sp = (stack[:, cfg.data.channels.index(c)] for c in ("t850", "z500", "sp"))
    assert 240 < t850.mean() < 300 and 45000 < z500.mean() < 60000 and 95000 < sp.mean() < 105000


def test_demo_truth_records_how_it_was_made():
    attrs = xr.open_dataset(demo_truth_path()).attrs
    assert "cycler data export" in attrs["history"]
    assert "seed: 0" in attrs["dafusion_world_config"]
    assert attrs["dinosaur_version"]


def test_demo_truth_is_outside_the_training_period():
    cfg = load_config(None)
    first = GriddedSource.open(demo_truth_path(), ["t850"]).times[0]
    assert first > np.datetime64(cfg.data.valid_end) > np.datetime64(cfg.data.train_end)


def test_shipped_demo_data_fits_the_budget():
    from pathlib import Path

    demo = Path(demo_truth_path()).parent
    total = sum(p.stat().st_size for p in demo.rglob("*") if p.is_file())
    assert total <= DEMO_BUDGET_BYTES


def test_demo_prior_loads_for_the_default_configuration_and_samples():
    import json
    from pathlib import Path

    import torch

    from dafusion.prior import demo_prior_path
    from dafusion.prior.checkpoint import load_prior
    from dafusion.prior.sampler import EDMSampler, member_generators

    cfg = load_config(None)
    denoiser, normaliser, meta = load_prior(demo_prior_path(), grid=EquiangularGrid(32, 64),
                                            channels=cfg.data.channels)
    assert meta.network == cfg.prior.network and meta.edm == cfg.prior.edm
    record = json.loads((Path(demo_prior_path()) / "record.json").read_text())
    assert record["step"] >= 1000 and record["data_span"][1] < "2019"
    assert record["stored_dtype"].startswith("float16") and record["loss"]
    sampler = EDMSampler(dataclasses.replace(cfg.prior.sampler, steps=4))
    x = sampler(denoiser, (9, 32, 64), member_generators(0, range(2)))
    physical = normaliser.denormalise(x.detach().numpy())
    assert torch.isfinite(x).all() and 200 < physical[:, 0].mean() < 320  # t850 in K


def test_demo_emulator_beats_persistence_at_12h_and_keeps_its_climate():
    """On the shipped 2020 truth (outside training): 12-hour RMSE well below persistence
    for every channel, and a 30-day free run that stays finite with the truth's climate
    (global mean within 0.2 spatial std, spatial std within 20 %)."""
    from dafusion.emulator.checkpoint import demo_emulator_path, load_emulator
    from dafusion.emulator.skill import free_run, skill
    from dafusion.emulator.states import on_grid

    model = load_emulator(demo_emulator_path())
    source = GriddedSource.open(demo_truth_path(), model.channels)
    inits = source.times[:20:4]
    ref = on_grid(source, source.times, model.grid, model.channels).values
    result = skill(model, source, inits, 2, ref.mean(0))
    emu = np.array(result["rmse"]["emulator"])[1]
    persistence = np.array(result["rmse"]["persistence"])[1]
    assert np.all(emu < 0.6 * persistence), emu / persistence
    run = free_run(model, source, source.times[0], 30.0, ref)
    assert run["finite"]
    mean, tmean = np.array(run["global_mean"]), np.array(run["truth_global_mean"])
    std, tstd = np.array(run["spatial_std"]), np.array(run["truth_spatial_std"])
    assert np.all(np.abs(mean - tmean) < 0.2 * tstd), (mean - tmean) / tstd
    assert np.all(np.abs(std / tstd - 1) < 0.2), std / tstd


def test_demo_emulator_size_and_record():
    import json

    from dafusion.emulator.checkpoint import demo_emulator_path

    path = demo_emulator_path()
    size = sum(f.stat().st_size for f in path.iterdir())
    assert size <= 5_000_000
    record = json.loads((path / "record.json").read_text())
    assert record["step"] > 0 and record["valid_loss"] and "training_state.pt" not in {
        f.name for f in path.iterdir()}
