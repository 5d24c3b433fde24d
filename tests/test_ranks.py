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
