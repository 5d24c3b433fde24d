"""Training, resume and checkpoints of the prior, on the tiny WeatherBench-2 fake."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import xarray as xr
from click.testing import CliRunner

from dafusion.cli import main
from dafusion.config import load_config
from dafusion.grids import EquiangularGrid
from dafusion.prior.checkpoint import CheckpointError, load_prior
from dafusion.prior.train import train_prior

CHANNELS = "[t850,z500,sp]"


def tiny_config(data_path, *extra):
    return load_config(None, [
        f"data.path={data_path}", f"data.channels={CHANNELS}",
        "data.train_start=2020-01-01", "data.train_end=2020-01-02T18:00",
        "prior.network.base_channels=8", "prior.network.channel_mult=[1,2]",
        "prior.network.attention_resolutions=[[16,32]]", "prior.train.batch_size=2",
        "prior.train.checkpoint_every=2", "prior.train.log_every=1",
        "prior.train.warmup_steps=2", *extra])


def _wb2(tmp_path):
    """Two days of noisy fields, so that the statistics are not degenerate."""
    import conftest

    times = np.datetime64("2020-01-01T00", "ns") + np.arange(8) * np.timedelta64(6, "h")
    grid = EquiangularGrid(32, 64)
    fields = conftest.analytic_fields(times, grid, [500, 850])
    rng = np.random.default_rng(0)
    data = {k: (("time", "level", "latitude", "longitude"),
                v + rng.normal(size=v.shape).astype(np.float32), {"units": u})
            for (k, v), u in zip([(n, fields[n]) for n in ("temperature", "geopotential")],
                                 ["K", "m**2 s**-2"])}
    data["surface_pressure"] = (("time", "latitude", "longitude"),
                                fields["surface_pressure"] + rng.normal(size=(8, 32, 64)) * 50,
                                {"units": "Pa"})
    path = tmp_path / "train.nc"
    xr.Dataset(data, coords={"time": times, "level": [500, 850], "latitude": grid.lat,
                             "longitude": grid.lon}).to_netcdf(path)
    return path


def test_resume_continues_exactly(tmp_path):
    data = _wb2(tmp_path)
    cfg = tiny_config(data)
    record = train_prior(cfg, tmp_path / "full", steps=4)
    assert record["step"] == 4 and len(record["loss"]) == 4
    train_prior(cfg, tmp_path / "part", steps=2)
    with pytest.raises(FileExistsError, match="--resume"):
        train_prior(cfg, tmp_path / "part", steps=4)
    with pytest.raises(ValueError, match="trained with prior.network = "):
        train_prior(tiny_config(data, "prior.network.base_channels=16"), tmp_path / "part",
                    steps=4, resume=True)
    train_prior(cfg, tmp_path / "part", steps=4, resume=True)
    full = torch.load(tmp_path / "full" / "weights.pt", weights_only=True)
    part = torch.load(tmp_path / "part" / "weights.pt", weights_only=True)
    assert full.keys() == part.keys()
    for key in full:
        torch.testing.assert_close(part[key], full[key], rtol=0, atol=0)
    rec = json.loads((tmp_path / "part" / "record.json").read_text())
    assert rec["step"] == 4 and rec["data_span"][0].startswith("2020-01-01T00")
    assert "hardware" in rec and rec["parameters"] > 0


def test_checkpoint_round_trip_and_checks(tmp_path):
    data = _wb2(tmp_path)
    ckpt = tmp_path / "ckpt"
    train_prior(tiny_config(data), ckpt, steps=2)
    denoiser, normaliser, meta = load_prior(ckpt, grid=EquiangularGrid(32, 64),
                                            channels=["t850", "z500", "sp"])
    assert meta.edm.sigma_data == 1.0 and normaliser.channels == ("t850", "z500", "sp")
    assert not denoiser.training
    with pytest.raises(CheckpointError, match="trained on grid equiangular_32x64, but"):
        load_prior(ckpt, grid=EquiangularGrid(128, 256))
    with pytest.raises(CheckpointError, match=r"trained on channels \['t850', 'z500', 'sp'\]"):
        load_prior(ckpt, channels=["t850"])

    broken = tmp_path / "broken"
    shutil.copytree(ckpt, broken)
    raw = (broken / "weights.pt").read_bytes()
    (broken / "weights.pt").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="weights.pt: corrupt"):
        load_prior(broken)
    record = json.loads((broken / "record.json").read_text())
    del record["weights_sha256"]
    (broken / "record.json").write_text(json.dumps(record))
    with pytest.raises(CheckpointError, match="weights.pt: unreadable or truncated"):
        load_prior(broken)

    (broken / "prior.yaml").write_text((ckpt / "prior.yaml").read_text().replace(
        "sigma_data: 1.0", "sigma_dat: 1.0"))
    with pytest.raises(CheckpointError, match="sigma_data is missing; refusing to guess"):
        load_prior(broken)
    (broken / "normaliser.nc").unlink()
    with pytest.raises(CheckpointError, match="normaliser.nc is missing"):
        load_prior(broken)


def test_export_half_precision(tmp_path):
    from dafusion.prior.checkpoint import export_prior

    data = _wb2(tmp_path)
    train_prior(tiny_config(data), tmp_path / "ckpt", steps=2)
    out = export_prior(tmp_path / "ckpt", tmp_path / "ship", half=True)
    assert not (out / "training_state.pt").exists()
    full, _, _ = load_prior(tmp_path / "ckpt")
    half, _, _ = load_prior(out)
    assert next(half.parameters()).dtype == torch.float32
    for a, b in zip(full.parameters(), half.parameters()):
        torch.testing.assert_close(b, a.half().float(), rtol=0, atol=0)
    assert json.loads((out / "record.json").read_text())["stored_dtype"].startswith("float16")
    with pytest.raises(FileExistsError):
        export_prior(tmp_path / "ckpt", out)


def test_interrupted_replacement_is_recovered(tmp_path):
    data = _wb2(tmp_path)
    ckpt = tmp_path / "ckpt"
    train_prior(tiny_config(data), ckpt, steps=2)
    ckpt.rename(tmp_path / "ckpt.old")  # killed between the two renames
    assert load_prior(ckpt)[2].channels == ["t850", "z500", "sp"]


def test_cli_train_then_sample(tmp_path):
    data = _wb2(tmp_path)
    sets = ["--set", f"data.path={data}", "--set", f"data.channels={CHANNELS}",
            "--set", "data.train_start=2020-01-01", "--set", "data.train_end=2020-01-02",
            "--set", "prior.network.base_channels=8", "--set", "prior.network.channel_mult=[1,2]",
            "--set", "prior.network.attention_resolutions=[]", "--set",
            "prior.train.batch_size=2", "--set", "prior.sampler.steps=3"]
    runner = CliRunner()
    result = runner.invoke(main, ["prior", "train", "--out", str(tmp_path / "c"), "--steps", "2",
                                  *sets], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = tmp_path / "s.nc"
    result = runner.invoke(main, ["prior", "sample", "--checkpoint", str(tmp_path / "c"),
                                  "-n", "2", "--out", str(out), *sets], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    ds = xr.open_dataset(out)
    assert ds["temperature"].attrs["units"] == "K" and ds.sizes["member"] == 2
    assert ds["surface_pressure"].dims == ("member", "latitude", "longitude")
    assert np.all(np.isfinite(ds["geopotential"].sel(level=500).values))
    assert np.all(np.isnan(ds["geopotential"].sel(level=850).values))  # not a channel
    assert np.all(np.isfinite(ds["temperature"].sel(level=850).values))
    again = runner.invoke(main, ["prior", "sample", "--checkpoint", str(tmp_path / "c"),
                                 "-n", "2", "--out", str(out)])
    assert again.exit_code == 1 and "already exists" in again.output
    result = runner.invoke(main, ["prior", "report", "--checkpoint", str(tmp_path / "c"),
                                  "--data", str(data), "-n", "2", "--data-times", "4",
                                  "--lmax", "5", "--out", str(tmp_path / "q"), *sets],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "| z500 | m**2 s**-2 |" in result.output
    assert (tmp_path / "q" / "spectra.png").stat().st_size > 0
    bad = runner.invoke(main, ["prior", "sample", "--checkpoint", str(tmp_path / "c"),
                               "--out", str(tmp_path / "x.nc"), "--set",
                               "prior.sampler.steps=0"])
    assert bad.exit_code == 1 and "prior.sampler.steps: must be >= 1" in bad.output


@pytest.mark.slow
def test_data_parallel_training_under_torchrun(tmp_path):
    """Two Gloo processes on the CPU: DDP runs, rank 0 writes one checkpoint."""
    import os
    import subprocess
    import sys

    data = _wb2(tmp_path)
    out = tmp_path / "ddp"
    sets = [f"data.path={data}", f"data.channels={CHANNELS}", "data.train_start=2020-01-01",
            "data.train_end=2020-01-02", "prior.network.base_channels=8",
            "prior.network.channel_mult=[1,2]", "prior.network.attention_resolutions=[]",
            "prior.train.batch_size=2"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           "--master_port=29517", "-m", "dafusion.cli", "prior", "train", "--out", str(out),
           "--steps", "2"] + [a for s in sets for a in ("--set", s)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((out / "record.json").read_text())
    assert record["step"] == 2 and record["hardware"].startswith("2 x ")
    assert load_prior(out)[2].channels == ["t850", "z500", "sp"]


@pytest.mark.slow
def test_training_as_a_submitit_job_of_two_tasks_equals_torchrun(tmp_path, monkeypatch):
    """The Slurm path of ``prior train`` through submitit's local executor: 2 tasks
    take their ranks from submitit and train exactly as 2 torchrun ranks (same weights,
    same loss curve)."""
    import os
    import subprocess
    import sys

    pytest.importorskip("submitit", reason="the 'slurm' extra (submitit) is not installed")
    data = _wb2(tmp_path)
    sets = [f"data.path={data}", f"data.channels={CHANNELS}", "data.train_start=2020-01-01",
            "data.train_end=2020-01-02", "prior.network.base_channels=8",
            "prior.network.channel_mult=[1,2]", "prior.network.attention_resolutions=[]",
            "prior.train.batch_size=2"]
    args = ["prior", "train", "--steps", "3"] + [a for s in sets for a in ("--set", s)]
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # both: one thread per process
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           "--nproc_per_node=2", "-m", "dafusion.cli"] + args + ["--out", str(tmp_path / "tr")]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                            env=dict(os.environ))
    assert result.returncode == 0, result.stderr[-3000:]
    res = CliRunner().invoke(main, args + ["--out", str(tmp_path / "job"), "--executor",
                                           "submitit-local", "--tasks-per-node", "2",
                                           "--time", "10"])
    assert res.exit_code == 0, res.output
    assert "2 tasks" in res.output and "step 3" in res.output
    job, ref = (json.loads((tmp_path / d / "record.json").read_text()) for d in ("job", "tr"))
    assert job["loss"] == ref["loss"] and job["hardware"] == ref["hardware"]
    a, b = (torch.load(tmp_path / d / "weights.pt", weights_only=True) for d in ("job", "tr"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    bad = CliRunner().invoke(main, args + ["--out", str(tmp_path / "x"), "--executor",
                                           "submitit-local", "--nodes", "2"])
    assert bad.exit_code != 0 and "need --executor slurm" in bad.output


@pytest.mark.slow
def test_data_parallel_training_resumed_equals_uninterrupted(tmp_path):
    """2 torchrun ranks: 2 steps, then --resume to 4, equals 4 steps at once — each rank
    resumes its own random states (not rank 0's, which would give both ranks the same
    batches)."""
    import os
    import subprocess
    import sys

    data = _wb2(tmp_path)
    sets = [f"data.path={data}", f"data.channels={CHANNELS}", "data.train_start=2020-01-01",
            "data.train_end=2020-01-02", "prior.network.base_channels=8",
            "prior.network.channel_mult=[1,2]", "prior.network.attention_resolutions=[]",
            "prior.train.batch_size=2", "prior.train.checkpoint_every=2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def train(out, steps, *extra):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", "-m", "dafusion.cli", "prior", "train", "--out",
               str(tmp_path / out), "--steps", str(steps), *extra] + \
              [a for s in sets for a in ("--set", s)]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
        assert result.returncode == 0, result.stderr[-3000:]

    train("whole", 4)
    train("cut", 2)
    train("cut", 4, "--resume")
    a, b = (torch.load(tmp_path / d / "weights.pt", weights_only=True) for d in ("cut", "whole"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    state = torch.load(tmp_path / "cut" / "training_state.pt", weights_only=True)
    data_states = state["rng"]["ranks"]["data"]
    assert data_states.shape[0] == 2 and not torch.equal(data_states[0], data_states[1])
