"""A real ``cycler run`` killed anywhere, interrupted, run twice at once, or out of disk.

The subprocess runs the command line under a small driver that counts the run's file
commits (``os.replace``: every file of a run directory is committed by one) and sends
itself a signal just before or just after the n-th: the moments a kill can fall between
(directory creation, a cycle's writes, between cycles, the very end) are all such points.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

import fakes as cycle_fakes
from dafusion.cli import main

ROOT = Path(__file__).resolve().parent.parent
DRIVER = """
import os, signal, sys, time
n, when, sig = int(os.environ["AT"]), os.environ["WHEN"], getattr(signal, os.environ["SIG"])
slow = float(os.environ.get("SLOW", "0"))
count, real = [0], os.replace
def replace(a, b):
    count[0] += 1
    time.sleep(slow)
    if count[0] == n and when == "before":
        os.kill(os.getpid(), sig)
    real(a, b)
    if count[0] == n and when == "after":
        os.kill(os.getpid(), sig)
    print("commit", count[0], b, file=sys.stderr, flush=True)
os.replace = replace
from dafusion.cli import main
main(sys.argv[1:], prog_name="cycler")
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("robust")
    sets = cycle_fakes.setup(tmp)
    args = ["run", "--mode", "reinit", "--set", "run.sources.emulator.error_model=constant",
            "--set", "run.sources.emulator.covariance=diagonal"]
    for s in sets:
        args += ["--set", s]
    full = tmp / "full"
    res = _drive(args + ["--out", str(full)], at=0)
    assert res.returncode == 0, res.stderr
    commits = [ln for ln in res.stderr.splitlines() if ln.startswith("commit ")]
    return tmp, args, full, len(commits)


def _drive(args: list[str], *, at: int, when: str = "before", sig: str = "SIGKILL",
           slow: float = 0.0, wait: bool = True):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AT": str(at), "WHEN": when, "SIG": sig,
           "SLOW": str(slow)}
    cmd = [sys.executable, "-c", DRIVER, *args]
    if not wait:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def _same_results(run: Path, full: Path) -> None:
    assert (run / "metrics.csv").read_text() == (full / "metrics.csv").read_text()
    cycles = sorted(p.name for p in full.glob("cycle_*"))
    assert sorted(p.name for p in run.glob("cycle_*")) == cycles
    for c in cycles:
        with xr.open_dataset(run / c / "analysis.nc") as a, \
                xr.open_dataset(full / c / "analysis.nc") as b:
            assert a.identical(b), c


@pytest.mark.slow
def test_killed_anywhere_and_resumed_gives_the_same_run(world, tmp_path):
    tmp, args, full, commits = world
    assert commits >= 20  # header (5), three cycles (6-7 each), COMPLETE
    from dafusion.cycler.run import resume_run

    # 13 moments from the first header file to after COMPLETE, before and after commits
    points = sorted({int(round(k)) for k in np.linspace(2, commits, 13)})
    moments = [(k, "before" if i % 2 else "after") for i, k in enumerate(points)]
    moments[-1] = (commits, "after")  # the very end
    assert len(moments) >= 12
    for k, when in moments:
        run = tmp_path / f"killed_{k}_{when}"
        res = _drive(args + ["--out", str(run)], at=k, when=when)
        assert res.returncode == -9, (k, when, res.stderr[-500:])
        if not (run / "COMPLETE").exists():
            resume_run(run)
        _same_results(run, full)


@pytest.mark.slow
def test_ctrl_c_prints_one_line_and_leaves_a_resumable_run(world, tmp_path):
    tmp, args, full, commits = world
    run = tmp_path / "interrupted"
    res = _drive(args + ["--out", str(run)], at=commits // 2, sig="SIGINT")
    assert res.returncode == 130
    lines = [ln for ln in res.stderr.splitlines() if ln.strip() and not ln.startswith("commit")
             and "cycles × sampler steps" not in ln]
    assert lines == [f"Interrupted: {run} is resumable: cycler run --resume {run}"], lines
    assert "Traceback" not in res.stderr
    resumed = CliRunner().invoke(main, ["run", "--resume", str(run)])
    assert resumed.exit_code == 0, resumed.output
    _same_results(run, full)


@pytest.mark.slow
def test_one_run_per_directory_at_a_time(world, tmp_path):
    tmp, args, full, commits = world
    # two runs started at once on one directory: one gets it
    both = [_drive(args + ["--out", str(tmp_path / "same")], at=0, wait=False)
            for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in both]
    codes = sorted(p.returncode for p in both)
    assert codes == [0, 1], outs
    loser = outs[[p.returncode for p in both].index(1)][1]
    assert "already exists; runs are never overwritten" in loser
    # a run interrupted, then resumed three times at once: one proceeds, two are refused
    run = tmp_path / "shared"
    assert _drive(args + ["--out", str(run)], at=8).returncode == -9
    first = _drive(["run", "--resume", str(run)], at=0, slow=0.3, wait=False)
    deadline = time.time() + 300
    while str(first.pid) not in _text(run / "lock") and time.time() < deadline:
        time.sleep(0.05)
    others = [subprocess.run([sys.executable, "-m", "dafusion.cli", "run", "--resume", str(run)],
                             env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                             text=True, timeout=600) for _ in range(2)]
    for other in others:
        assert other.returncode == 1, other.stderr
        assert f"in use by {{\"pid\": {first.pid}" in other.stderr
        assert "Traceback" not in other.stderr
    first.communicate(timeout=600)
    assert first.returncode == 0
    _same_results(run, full)


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def test_a_full_disk_stops_cleanly_and_the_run_resumes(tmp_path, monkeypatch):
    from dafusion.cycler.run import resume_run, start_run
    from dafusion.io import WriteError

    sets = cycle_fakes.setup(tmp_path)
    cfg = cycle_fakes.config(sets, "run.mode=plain")
    start_run(cfg, tmp_path / "full")
    real = xr.Dataset.to_netcdf

    def full_disk(self, path=None, *a, **k):
        if "cycle_001" in str(path):
            raise RuntimeError("NetCDF: HDF error")  # what a full disk looks like
        return real(self, path, *a, **k)

    monkeypatch.setattr(xr.Dataset, "to_netcdf", full_disk)
    with pytest.raises(WriteError, match=r"analysis.nc: could not be written \(NetCDF: HDF "
                                         r"error; \d+ MB free on its disk\)"):
        start_run(cfg, tmp_path / "run")
    assert not list((tmp_path / "run").rglob("*.partial"))
    monkeypatch.setattr(xr.Dataset, "to_netcdf", real)
    resume_run(tmp_path / "run")
    _same_results(tmp_path / "run", tmp_path / "full")
    result = CliRunner().invoke(main, ["run", "--resume", str(tmp_path / "run")])
    assert result.exit_code == 1 and "already complete" in result.output


def test_a_full_disk_is_called_full_whatever_the_writer_said(tmp_path, monkeypatch):
    """A library on a full disk may say 'Permission denied' or 'HDF error'; with (almost)
    no space left the message says the disk is full, and the old file stays."""
    import collections
    import errno
    import shutil

    from dafusion.io import WriteError, write_text

    target = tmp_path / "metrics.csv"
    target.write_text("old\n")
    usage = collections.namedtuple("usage", "total used free")

    def denied(tmp):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 4096, 4096))
    from dafusion.io import atomic_write

    with pytest.raises(WriteError) as caught:
        atomic_write(target, denied)
    assert str(caught.value) == (f"{target}: could not be written: its disk is full (0 MB free "
                                 "on its disk; the writer said 'Permission denied'); free "
                                 "some space and resume; the previous version, if any, is "
                                 "unchanged")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 0, 10**9))
    with pytest.raises(WriteError, match=r"could not be written \(Permission denied; 1000 MB "
                                         r"free on its disk\)"):
        atomic_write(target, denied)
    with pytest.raises(WriteError, match="its disk is full"):  # ENOSPC says so itself
        atomic_write(target, lambda tmp: (_ for _ in ()).throw(
            OSError(errno.ENOSPC, "No space left on device")))
    assert target.read_text() == "old\n" and not list(tmp_path.glob("*.partial"))
    write_text(target, "new\n")
    assert target.read_text() == "new\n"


def test_an_unwritable_place_is_one_line(tmp_path, monkeypatch):
    sets = cycle_fakes.setup(tmp_path)
    real = Path.mkdir

    def denied(self, *a, **k):
        if self.name == "ro":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "mkdir", denied)
    result = CliRunner().invoke(main, ["run", "--out", str(tmp_path / "ro"),
                                       *[a for s in sets for a in ("--set", s)]])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == \
        f"Error: {tmp_path / 'ro'}: Permission denied"


def test_metrics_rows_are_what_compare_reads(world):
    _, _, full, _ = world
    with open(full / "metrics.csv") as f:
        assert {int(r["cycle"]) for r in csv.DictReader(f)} == {0, 1, 2}
