"""Members across processes: ``torchrun`` with 2 Gloo ranks on CPU gives the run of one
process with the same members and threads per process, file for file."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

import fakes as cycle_fakes
from dafusion.config import dump_config
from dafusion.cycler.ranks import Ranks, check
from dafusion.cycler.rundir import RunError


def test_the_ranks_split_every_member_once_in_order():
    for members in range(1, 11):
        for size in range(1, members + 1):
            spans = [Ranks(r, size).span(members) for r in range(size)]
            assert spans[0][0] == 0 and spans[-1][1] == members
            assert all(a < b for a, b in spans)  # every rank has a member
            assert all(spans[i][1] == spans[i + 1][0] for i in range(size - 1))
            sizes = [b - a for a, b in spans]
            assert max(sizes) - min(sizes) <= 1


def test_what_cannot_be_split_is_refused_before_anything_runs():
    check(Ranks(0, 1), "letkf", 1)  # one process: anything
    with pytest.raises(RunError, match="run.method oi runs in one process"):
        check(Ranks(1, 2), "oi", 8)
    with pytest.raises(RunError, match="fewer than the 4 ranks"):
        check(Ranks(0, 4), "diffusion", 3)


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ranks")
    sets = cycle_fakes.setup(tmp)
    # reinit members with perturbed pseudo-observations: per-member terms; 3 members on
    # 2 ranks: an uneven split (1 + 2)
    cfg = cycle_fakes.config(sets, "run.mode=reinit", "run.reinit=members", "run.days=1",
                             "run.members=3", "run.sources.emulator.perturb=true")
    path = tmp / "run.yaml"
    path.write_text(dump_config(cfg))
    return path


def _cycler(*args: str, ranks: int = 1, cwd=None) -> None:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc-per-node", str(ranks)] if ranks > 1 else [sys.executable]
    done = subprocess.run(launcher + ["-m", "dafusion.cli", "--threads", "1", *args],
                          capture_output=True, text=True, timeout=600, cwd=cwd)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def _same_run(a, b):
    for name in ("metrics.csv", "obs_diagnostics.csv"):
        assert (a / name).read_text() == (b / name).read_text(), name
    for cycle in sorted(p.name for p in a.glob("cycle_*")):
        for name in ("analysis.nc", "members.nc"):
            with xr.open_dataset(a / cycle / name) as x, xr.open_dataset(b / cycle / name) as y:
                for v in x.data_vars:
                    np.testing.assert_array_equal(x[v].values, y[v].values)


@pytest.mark.slow
def test_two_gloo_ranks_give_the_one_process_run(config_file, tmp_path):
    _cycler("run", "--config", str(config_file), "--out", str(tmp_path / "one"))
    _cycler("run", "--config", str(config_file), "--out", str(tmp_path / "two"), ranks=2)
    _same_run(tmp_path / "one", tmp_path / "two")
    import json

    versions = json.loads((tmp_path / "two" / "versions.json").read_text())
    assert versions["ranks"] == "2" and "ranks" not in json.loads(
        (tmp_path / "one" / "versions.json").read_text())
    assert not list((tmp_path / "two").glob("*.partial"))


@pytest.mark.slow
def test_a_run_interrupted_in_one_process_is_resumed_on_two_ranks(config_file, tmp_path,
                                                                  monkeypatch):
    """Rank 0 owns the resume: the run's state from a crash here, resumed by torchrun."""
    import torch

    from dafusion import threads
    from dafusion.config import load_config
    from dafusion.cycler.run import start_run

    before = torch.get_num_threads()
    threads.apply(1)  # as the subprocesses, which run with --threads 1
    try:
        cycle_fakes.crash_at_metrics_write(monkeypatch, 2)  # in the second analysis
        with pytest.raises(KeyboardInterrupt):
            start_run(load_config(str(config_file)), tmp_path / "cut")
        monkeypatch.undo()
    finally:
        threads.apply(before)
    _cycler("run", "--resume", str(tmp_path / "cut"), ranks=2)
    _cycler("run", "--config", str(config_file), "--out", str(tmp_path / "whole"))
    assert "resumed at cycle 1" in (tmp_path / "cut" / "log.txt").read_text()
    _same_run(tmp_path / "cut", tmp_path / "whole")


@pytest.mark.slow
def test_a_classical_method_on_two_ranks_is_refused_by_name(config_file, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
         "2", "-m", "dafusion.cli", "--threads", "1", "run", "--config", str(config_file),
         "--method", "oi", "--out", str(tmp_path / "oi")],
        capture_output=True, text=True, timeout=600)
    assert done.returncode != 0
    assert "run.method oi runs in one process" in done.stdout + done.stderr
    assert not (tmp_path / "oi").exists()  # refused before anything was written


def _cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dafusion.cli", *args], capture_output=True,
                          text=True, timeout=600, cwd=cwd)


@pytest.mark.slow
def test_ranks_option_takes_the_commands_own_options_and_equals_one_process(config_file,
                                                                           tmp_path):
    """``cycler run --ranks 2`` (torch's elastic launcher) with ``--start`` as a user types
    it: the one-process run file for file, with the same members per network pass
    (``micro_batch``) and threads per process."""
    args = ["run", "--config", str(config_file), "--mode", "plain", "--start", "2020-01-01",
            "--days", "0.5", "--members", "4", "--set", "prior.sampler.micro_batch=2"]
    one = _cli("--threads", "1", *args, "--out", str(tmp_path / "one"))
    assert one.returncode == 0, one.stderr[-3000:]
    two = _cli("--threads", "1", *args, "--ranks", "2", "--out", str(tmp_path / "two"))
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.splitlines()[0].startswith(f"{tmp_path / 'two'}: 2 analyses")
    assert two.stderr.count("Error") == 0 and "Traceback" not in two.stderr
    _same_run(tmp_path / "one", tmp_path / "two")
    names = sorted(p.relative_to(tmp_path / "one").as_posix()
                   for p in (tmp_path / "one").rglob("*"))
    assert names == sorted(p.relative_to(tmp_path / "two").as_posix()
                           for p in (tmp_path / "two").rglob("*"))
    import json

    assert json.loads((tmp_path / "two" / "versions.json").read_text())["ranks"] == "2"
    refused = _cli("run", "--config", str(config_file), "--members", "1", "--ranks", "2",
                   "--out", str(tmp_path / "few"))
    assert refused.returncode == 1 and not (tmp_path / "few").exists()
    assert refused.stderr.strip() == "Error: run.members=1 is fewer than the 2 ranks: each " \
        "rank needs at least one member"


@pytest.mark.slow
def test_ctrl_c_of_ranks_is_one_line_and_the_run_resumes(config_file, tmp_path):
    """Ctrl-C reaches the launcher and every rank (one process group): exit 130, rank 0's
    one line, and the same --ranks command with --resume finishes the same run."""
    import os
    import signal
    import time

    run = tmp_path / "cut"
    args = ["--threads", "1", "run", "--config", str(config_file), "--mode", "plain",
            "--days", "3.5"]
    proc = subprocess.Popen([sys.executable, "-m", "dafusion.cli", *args, "--ranks", "2",
                             "--out", str(run)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 300
    while not (run / "state.npz").exists() and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-3000:]
    assert [ln for ln in err.splitlines() if ln.strip()] == \
        [f"Interrupted: {run} is resumable: cycler run --resume {run}"]
    assert not (run / "COMPLETE").exists()
    resumed = _cli("--threads", "1", "run", "--ranks", "2", "--resume", str(run))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    whole = _cli(*args, "--out", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr[-3000:]
    _same_run(run, tmp_path / "whole")
