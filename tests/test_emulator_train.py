"""Emulator training on a tiny 6-hourly dataset: statistics, resume, commands."""

import numpy as np
import pytest
import torch
import xarray as xr
from click.testing import CliRunner
from test_prior_train import _wb2

from dafusion.cli import main
from dafusion.config import load_config
from dafusion.emulator.checkpoint import load_emulator
from dafusion.emulator.train import _pairs, _weighted_stats, train_emulator
from dafusion.grids import EquiangularGrid, LegendreGaussGrid


def tiny_config(data_path, *extra):
    return load_config(None, [
        f"data.path={data_path}", "data.channels=[t850,z500,sp]",
        "data.train_start=2020-01-01", "data.train_end=2020-01-02T18:00",
        "data.valid_start=2020-01-01", "data.valid_end=2020-01-02T18:00",
        "emulator.channels=[t850,z500,sp]", "emulator.network.embed_dim=8",
        "emulator.network.num_layers=2", "emulator.train.batch_size=3",
        "emulator.train.checkpoint_every=2", "emulator.train.log_every=1",
        "emulator.train.warmup_steps=2", *extra])


def test_pairs_need_consecutive_steps():
    t = np.datetime64("2020-01-01T00") + np.array([0, 6, 12, 24, 30, 36, 42]) * np.timedelta64(
        1, "h")
    step = np.timedelta64(6, "h")
    assert _pairs(t, step, 1).tolist() == [0, 1, 3, 4, 5]
    assert _pairs(t, step, 2).tolist() == [0, 3, 4]
    assert _pairs(t, step, 3).tolist() == [3]


def test_weighted_stats_brute_force():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 2, 4, 6))
    grid = EquiangularGrid(4, 6)  # cell areas by latitude band, not the mean's own code
    edges = np.deg2rad(np.array([-90.0, -45.0, 0.0, 45.0, 90.0]))
    w = np.diff(np.sin(edges))
    mean, std = _weighted_stats(x, grid)
    ww = np.broadcast_to(w[None, :, None], (5, 4, 6))
    for c in range(2):
        m = (x[:, c] * ww).sum() / ww.sum()
        np.testing.assert_allclose(mean[c], m)
        np.testing.assert_allclose(std[c], np.sqrt((((x[:, c] - m) ** 2) * ww).sum() / ww.sum()))


@pytest.mark.parametrize("extra", [(), ("emulator.forcing=[tisr]",
                                        "emulator.train.rollout_steps=2")],
                         ids=["plain", "tisr-rollout2"])
def test_resume_continues_exactly(tmp_path, extra):
    cfg = tiny_config(_wb2(tmp_path), *extra)
    full = train_emulator(cfg, tmp_path / "full", steps=4)
    assert full["step"] == 4 and len(full["loss"]) == 4 and len(full["valid_loss"]) == 2
    train_emulator(cfg, tmp_path / "part", steps=2)
    with pytest.raises(FileExistsError, match="--resume"):
        train_emulator(cfg, tmp_path / "part", steps=4)
    part = train_emulator(cfg, tmp_path / "part", steps=4, resume=True)
    assert part["loss"] == full["loss"]
    a, b = load_emulator(tmp_path / "full"), load_emulator(tmp_path / "part")
    for (k, v), w in zip(a.net.state_dict().items(), b.net.state_dict().values()):
        assert torch.equal(v, w), k
    if extra:
        assert a.meta.forcing == ["tisr"] and a.stats.forcing_std[0] > 1e5  # J m-2


def test_statistics_are_those_of_the_regridded_training_data(tmp_path):
    from dafusion.data import GriddedSource
    from dafusion.emulator.states import on_grid

    path = _wb2(tmp_path)
    cfg = tiny_config(path)
    train_emulator(cfg, tmp_path / "ck", steps=1)
    stats = load_emulator(tmp_path / "ck").stats
    grid = LegendreGaussGrid(16, 32)
    src = GriddedSource.open(path, ["t850", "z500", "sp"])
    # training holds the states in float32; the statistics are float64 sums over them
    x = on_grid(src, src.times, grid, ["t850", "z500", "sp"]).values.astype(np.float32)
    x = x.astype(np.float64)
    w = np.broadcast_to(grid.lat_weights[:, None], grid.shape)
    for c in range(3):
        m = np.average(x[:, c], weights=np.broadcast_to(w, x[:, c].shape))
        np.testing.assert_allclose(stats.mean[c], m, rtol=1e-6)
        d = x[1:, c] - x[:-1, c]
        dm = np.average(d, weights=np.broadcast_to(w, d.shape))
        np.testing.assert_allclose(
            stats.tendency_std[c],
            np.sqrt(np.average((d - dm) ** 2, weights=np.broadcast_to(w, d.shape))), rtol=1e-5)


def test_resume_with_another_configuration_is_refused(tmp_path):
    path = _wb2(tmp_path)
    train_emulator(tiny_config(path), tmp_path / "ck", steps=2)
    with pytest.raises(ValueError, match="another emulator/data configuration"):
        train_emulator(tiny_config(path, "emulator.network.embed_dim=16"), tmp_path / "ck",
                       steps=4, resume=True)


def test_commands_train_forecast_report(tmp_path):
    path = _wb2(tmp_path)
    sets = ["--set", f"data.path={path}", "--set", "data.channels=[t850,z500,sp]",
            "--set", "data.train_start=2020-01-01", "--set", "data.train_end=2020-01-01T18:00",
            "--set", "data.valid_start=2020-01-02", "--set", "data.valid_end=2020-01-02T18:00",
            "--set", "emulator.channels=[t850,z500,sp]", "--set", "emulator.network.embed_dim=8",
            "--set", "emulator.network.num_layers=1", "--set", "emulator.train.batch_size=2"]
    runner = CliRunner()
    res = runner.invoke(main, ["emulator", "train", "--out", str(tmp_path / "ck"),
                               "--steps", "2", *sets])
    assert res.exit_code == 0, res.output
    assert "validation loss" in res.output
    out = tmp_path / "fc.nc"
    res = runner.invoke(main, ["emulator", "forecast", "--checkpoint", str(tmp_path / "ck"),
                               "--truth", str(path), "--init", "2020-01-01T06", "--days", "1",
                               "--out", str(out), *sets])
    assert res.exit_code == 0, res.output
    ds = xr.open_dataset(out)
    assert ds.sizes["lead_time"] == 4 and ds.sizes["latitude"] == 16
    assert str(ds["valid_time"].values[-1])[:13] == "2020-01-02T06"
    assert str(ds["time"].values)[:13] == "2020-01-01T06"
    assert ds["temperature"].attrs["units"] == "K"
    res = runner.invoke(main, ["emulator", "forecast", "--checkpoint", str(tmp_path / "ck"),
                               "--truth", str(path), "--init", "2021-01-01", "--days", "1",
                               "--out", str(tmp_path / "x.nc"), *sets])
    assert res.exit_code == 1 and "no truth at ['2021-01-01T00:00']" in res.output
    res = runner.invoke(main, ["emulator", "report", "--checkpoint", str(tmp_path / "ck"),
                               "--start", "2020-01-02T00", "--inits", "2", "--every-days",
                               "0.25", "--days", "0.5", "--free-days", "0.75",
                               "--out", str(tmp_path / "rep"), *sets])
    assert res.exit_code == 0, res.output
    for name in ("skill.json", "skill.md", "skill.png"):
        assert (tmp_path / "rep" / name).stat().st_size > 0
    md = (tmp_path / "rep" / "skill.md").read_text()
    assert "| 12 h |" in md and "Finite throughout: True" in md
