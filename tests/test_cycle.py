"""The cycle driver on tiny fakes: every mode end to end, run directories, checks before
compute, resume after SIGKILL, compare and sweep."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from click.testing import CliRunner

import fakes as cycle_fakes
from dafusion.cli import main
from dafusion.cycler.campaigns.compare import CompareError, compare
from dafusion.cycler.experiment import build_experiment as prepare
from dafusion.cycler.metrics import crps_field, ensemble_scores
from dafusion.cycler.run import RunError, resume_run, run_experiment, start_run
from dafusion.cycler.rundir import STATE_VERSION
from dafusion.grids import EquiangularGrid


def rows(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


# --------------------------------------------------------------------------- metrics


def test_crps_matches_the_pairwise_definition():
    rng = np.random.default_rng(0)
    ens, truth = rng.normal(size=(5, 3, 4)), rng.normal(size=(3, 4))
    m = ens.shape[0]
    pair = np.abs(ens[:, None] - ens[None, :]).sum((0, 1))
    brute = np.abs(ens - truth).mean(0) - pair / (2 * m * (m - 1))
    np.testing.assert_allclose(crps_field(ens, truth), brute, rtol=1e-12)
    np.testing.assert_allclose(crps_field(ens[:1], truth), np.abs(ens[0] - truth))


def test_scores_brute_force():
    grid = EquiangularGrid(4, 8)
    rng = np.random.default_rng(1)
    ens, truth = rng.normal(size=(3, 2, 4, 8)), rng.normal(size=(2, 4, 8))
    s = ensemble_scores(ens, truth, grid)
    w = np.broadcast_to(grid.lat_weights[:, None], (4, 8))
    for c in range(2):
        err = ens[:, c].mean(0) - truth[c]
        np.testing.assert_allclose(s["rmse"][c], np.sqrt(np.average(err ** 2, weights=w)))
        np.testing.assert_allclose(s["bias"][c], np.average(err, weights=w))
        np.testing.assert_allclose(s["spread"][c],
                                   np.sqrt(np.average(ens[:, c].var(0, ddof=1), weights=w)))


# --------------------------------------------------------------------------- modes


@pytest.mark.parametrize("mode,extra,sources", [
    ("plain", [], {"stations"}),
    ("forecast", [], {"stations", "emulator"}),
    ("reinit", [], {"stations", "emulator"}),
    ("reinit", ["run.reinit=members"], {"stations", "emulator"}),
    ("plain", ["run.sources.stations.enabled=false", "run.sources.gridded.enabled=true"],
     {"gridded"}),
    ("plain", ["run.sources.stations.enabled=false", "run.unconditional=true"], set()),
], ids=["plain", "forecast", "reinit-mean", "reinit-members", "gridded-only", "unconditional"])
def test_every_mode_end_to_end(fakes, tmp_path, mode, extra, sources):
    tmp, sets = fakes
    cfg = cycle_fakes.config(sets, f"run.mode={mode}", *extra)
    run_dir = tmp_path / "run"
    state = start_run(cfg, run_dir)
    assert state.cycle == 3 and (run_dir / "COMPLETE").exists()
    for name in ("config.yaml", "versions.json", "inputs.json", "seeds.json", "log.txt",
                 "metrics.csv", "obs_diagnostics.csv", "timing.csv"):
        assert (run_dir / name).stat().st_size > 0, name
    metrics = rows(run_dir / "metrics.csv")
    assert len(metrics) == 3 * 3
    assert [int(r["lead_hours"]) for r in metrics[::3]] == [0, 12, 24]
    assert all(np.isfinite(float(r["rmse"])) and float(r["spread"]) >= 0 for r in metrics)
    assert {r["source"] for r in rows(run_dir / "obs_diagnostics.csv")} == sources
    ana = xr.open_dataset(run_dir / "cycle_001" / "analysis.nc")
    assert {"temperature", "temperature_std", "surface_pressure_std"} <= set(ana.data_vars)
    assert str(ana["time"].values)[:13] == "2020-01-01T12"
    fc = run_dir / "cycle_001" / "forecast.nc"
    assert fc.exists() == (mode != "plain")
    assert (run_dir / "observations.nc").exists() == ("stations" in sources)
    assert xr.open_dataset(run_dir / "cycle_002" / "members.nc").sizes["member"] == 2
    if "run.reinit=members" in extra:
        assert xr.open_dataset(fc).sizes["member"] == 2


def test_forecast_mode_uses_the_precomputed_forecast_and_reinit_its_own(fakes, tmp_path):
    """Cycle 0 of both sees the regridded truth; later cycles differ by construction."""
    tmp, sets = fakes
    a = start_run(cycle_fakes.config(sets, "run.mode=forecast"), tmp_path / "f")
    b = start_run(cycle_fakes.config(sets, "run.mode=reinit"), tmp_path / "r")
    f0 = xr.open_dataset(tmp_path / "f" / "cycle_000" / "forecast.nc")
    r0 = xr.open_dataset(tmp_path / "r" / "cycle_000" / "forecast.nc")
    assert np.array_equal(f0["temperature"].values, r0["temperature"].values, equal_nan=True)
    f2 = xr.open_dataset(tmp_path / "f" / "cycle_002" / "forecast.nc")
    r2 = xr.open_dataset(tmp_path / "r" / "cycle_002" / "forecast.nc")
    assert not np.allclose(f2["temperature"].values, r2["temperature"].values, equal_nan=True)
    assert a.tables.metrics[:3] == b.tables.metrics[:3]  # identical first analysis


# --------------------------------------------------------------------------- checks


def test_checks_before_compute(fakes, tmp_path):
    tmp, sets = fakes
    with pytest.raises(RunError, match=r"run window 2020-01-03T00:00 \.\. 2020-01-10T00:00: "
                                       r"the truth truth.nc has no state at"):
        prepare(cycle_fakes.config(sets, "run.start=2020-01-03T00", "run.days=7"))
    with pytest.raises(RunError, match="no observation source is enabled"):
        prepare(cycle_fakes.config(sets, "run.mode=plain", "run.sources.stations.enabled=false"))
    with pytest.raises(ValueError, match=r"trained on channels \['t850', 'z500', 'sp'\], but"):
        prepare(cycle_fakes.config(sets, "data.channels=[t850,sp]"))
    run_dir = tmp_path / "r"
    start_run(cycle_fakes.config(sets, "run.mode=plain"), run_dir)
    with pytest.raises(RunError, match="already exists; runs are never overwritten"):
        start_run(cycle_fakes.config(sets, "run.mode=plain"), run_dir)


def test_a_cycle_without_observations_is_an_error(fakes, tmp_path):
    from dafusion.obs.table import read_table

    tmp, sets = fakes
    runner = CliRunner()
    res = runner.invoke(main, ["obs", "synth", "--truth", str(tmp / "truth.nc"), "--out",
                               str(tmp_path / "obs.nc"), "--start", "2020-01-01T00",
                               "--end", "2020-01-01T12", "--set", "data.channels=[t850,z500,sp]",
                               "--set", "obs.n_stations=20"])
    assert res.exit_code == 0, res.output
    table = read_table(tmp_path / "obs.nc")
    assert len(table) > 0
    with pytest.raises(RunError, match=r"no station observations within ±3.0 h of the "
                                       r"analyses at \['2020-01-02T00:00'\]"):
        prepare(cycle_fakes.config(sets, f"run.observations={tmp_path / 'obs.nc'}"))


# --------------------------------------------------------------------------- resume


def _cli(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "dafusion.cli", *args]


def test_resume_after_sigkill_gives_the_same_metrics(fakes, tmp_path):
    tmp, sets = fakes
    # over 7 cycles the untrained emulator's own error statistics (a few K at 12 h) let the
    # 3-step untrained prior diverge; resume is about the state, so the emulator term
    # gets one constant Σ_y here (its perturbations, seeded per cycle, stay on)
    args = ["run", "--mode", "reinit", "--days", "3", "--set",
            "run.sources.emulator.error_model=constant", "--set",
            "run.sources.emulator.covariance=diagonal"]
    for s in sets:
        args += ["--set", s]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    full = tmp_path / "full"
    subprocess.run(_cli(args + ["--out", str(full)]), check=True, env=env, capture_output=True)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_cli(args + ["--out", str(killed)]), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (killed / "state.npz").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "COMPLETE").exists(), "the run finished before it could be killed"
    done_before = len(rows(killed / "metrics.csv")) // 3
    assert 1 <= done_before < 7
    res = subprocess.run(_cli(["run", "--resume", str(killed)]), env=env, capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stderr
    assert (killed / "metrics.csv").read_text() == (full / "metrics.csv").read_text()
    assert "resumed at cycle" in (killed / "log.txt").read_text()
    res = subprocess.run(_cli(["run", "--resume", str(killed)]), env=env, capture_output=True,
                         text=True)
    assert res.returncode == 1 and "already complete" in res.stderr


@pytest.mark.parametrize("extra", [[], ["run.sources.emulator.adaptive_inflation=true"]],
                         ids=["default", "adaptive-inflation"])
def test_resume_after_a_crash_inside_a_cycle_write(fakes, tmp_path, monkeypatch, extra):
    """A crash while cycle 2 writes its tables leaves a '.partial' file and the state of
    cycle 1 (with the adaptive inflation factors it estimated): resume recomputes cycle 2
    and ends as an uninterrupted run."""
    tmp, sets = fakes
    cfg = cycle_fakes.config(sets, "run.mode=reinit", *extra)
    start_run(cfg, tmp_path / "full")
    cycle_fakes.crash_at_metrics_write(monkeypatch, 3, partial=True)
    with pytest.raises(KeyboardInterrupt):
        start_run(cfg, tmp_path / "cut")
    monkeypatch.undo()
    assert len(rows(tmp_path / "cut" / "metrics.csv")) == 2 * 3  # cycles 0 and 1 only
    assert (tmp_path / "cut" / "cycle_002" / "analysis.nc").exists()  # written, not counted
    resume_run(tmp_path / "cut")
    assert ((tmp_path / "cut" / "metrics.csv").read_text()
            == (tmp_path / "full" / "metrics.csv").read_text())
    if extra:  # the factors were estimated and logged every cycle after the first
        assert (tmp_path / "full" / "log.txt").read_text().count("; emulator inflation ") == 2


# --------------------------------------------------------------------------- compare, sweep


def test_compare_marks_the_best_and_refuses_other_windows(fakes, tmp_path):
    tmp, sets = fakes
    a = tmp_path / "a"
    b = tmp_path / "b"
    start_run(cycle_fakes.config(sets, "run.mode=plain"), a)
    start_run(cycle_fakes.config(sets, "run.mode=plain", "run.sources.stations.weight=0.1"), b)
    table, files = compare([a, b], tmp_path / "cmp")
    assert "| t850 | a |" in table and "| t850 | b |" in table
    # three tables (RMSE, spread-skill, CRPS), exactly one bold cell per (variable, column),
    # then the overall ranking (tests/test_baselines.py checks its numbers)
    tables = [t for t in table.split("### ")[1:]]
    assert [t.split("\n")[0].split()[0] for t in tables] == ["RMSE", "Spread-skill", "Fair",
                                                            "Overall"]
    for t in tables[:3]:
        assert "| 0 h | day 0 |" in t  # the first analysis is reported on its own
        body = [line.split("|")[3:-1] for line in t.strip().splitlines()[4:]]
        for i in range(0, len(body), 2):
            for col in range(len(body[i])):
                assert ("**" in body[i][col]) + ("**" in body[i + 1][col]) == 1
    assert all(f.stat().st_size > 0 for f in files)
    c = tmp_path / "c"
    start_run(cycle_fakes.config(sets, "run.mode=plain", "run.days=0.5"), c)
    with pytest.raises(CompareError, match=r"differs from .* in \['days'\]"):
        compare([a, c])


def test_scores_by_lead_day_against_hand_computed_values():
    from dafusion.cycler.campaigns.compare import scores_by_lead

    rows = [{"channel": "t850", "lead_hours": h, "rmse": r, "spread": s, "crps": c}
            for h, r, s, c in [(0, 0.5, 0.4, 0.1), (12, 1.0, 0.5, 0.3), (24, 2.0, 1.0, 0.6),
                               (36, 4.0, 1.0, 1.0)]]
    got = scores_by_lead(rows, members=8)
    assert list(got["rmse"]["t850"]) == ["0 h", "day 0", "day 1", "mean"]
    assert got["rmse"]["t850"]["0 h"] == 0.5
    assert got["rmse"]["t850"]["day 1"] == pytest.approx(math.sqrt((4 + 16) / 2))
    assert got["rmse"]["t850"]["mean"] == pytest.approx(math.sqrt((1 + 4 + 16) / 3))
    assert got["spread_skill"]["t850"]["day 1"] == pytest.approx(
        math.sqrt(9 / 8) * 1.0 / math.sqrt(10))
    assert got["crps"]["t850"]["mean"] == pytest.approx((0.3 + 0.6 + 1.0) / 3)


def test_sweep_runs_the_grid_and_compares(fakes, tmp_path, monkeypatch):
    tmp, sets = fakes
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parent.parent))
    args = ["sweep", "--mode", "forecast", "--days", "0.5", "--name", "sw",
            "--set", "run.sources.emulator.weight=0,1"]
    for s in sets:
        args += ["--set", s]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert (tmp_path / "runs" / "sw" / "emulator.weight=0" / "COMPLETE").exists()
    assert (tmp_path / "runs" / "sw" / "emulator.weight=1" / "COMPLETE").exists()
    md = (tmp_path / "runs" / "sw" / "compare.md").read_text()
    assert "emulator.weight=0" in md and "**" in md


def test_a_diverged_analysis_stops_the_run_before_writing_the_cycle(fakes, tmp_path):
    """A sampler that blows up without NaN (too stiff a guidance) must not produce
    'analyses': the run stops, names cycle and channels, writes nothing of that cycle and
    says so in log.txt. Forced here with a tiny limit; on the demo, stations weight 2
    without guidance_clip reached 1.9e3 standard deviations in t850."""
    tmp, sets = fakes
    run_dir = tmp_path / "div"
    with pytest.raises(RunError, match=r"cycle 0 \(2020-01-01T00:00\): the analysis diverged, "
                                       r"reaching more than run.max_normalised=0.5 standard "
                                       r"deviations in \['t850 \("):
        start_run(cycle_fakes.config(sets, "run.mode=plain", "run.max_normalised=0.5"), run_dir)
    assert not (run_dir / "cycle_000").exists() and not (run_dir / "metrics.csv").exists()
    assert "stopped at cycle 0: RunError" in (run_dir / "log.txt").read_text()


def test_float_settings_accept_exponents_without_a_dot():
    from dafusion.config import load_config

    assert load_config(None, ["run.sources.stations.weight=1e3"]).run.sources.stations.weight \
        == 1000.0


# --------------------------------------------------------------------------- parts, state


@pytest.mark.parametrize("mode", ["plain", "forecast", "reinit"])
def test_an_experiment_from_in_memory_parts(tmp_path, mode):
    """No file goes in: truth, prior, emulator and stations are objects (fakes.experiment)."""
    from dafusion.emulator.persistence import PersistenceEmulator

    emulator = PersistenceEmulator(cycle_fakes.EMU_GRID, cycle_fakes.CHANNELS)
    exp = cycle_fakes.experiment(f"run.mode={mode}",
                                 emulator=emulator if mode != "plain" else None)
    state = run_experiment(exp, tmp_path / "run")
    assert state.cycle == 3 and (tmp_path / "run" / "COMPLETE").exists()
    obs = rows(tmp_path / "run" / "obs_diagnostics.csv")
    assert {r["source"] for r in obs} == ({"stations"} if mode == "plain"
                                          else {"stations", "emulator"})
    # O−B: none at the first cycle, then for stations; never for the emulator term
    assert [r["omb_rms"] != "" for r in obs if r["source"] == "stations"] == [False, True, True]
    assert all(r["omb_rms"] == "" for r in obs if r["source"] == "emulator")
    if mode == "forecast":  # persistence: the pseudo-observation is always the initial state
        first = xr.open_dataset(tmp_path / "run" / "cycle_000" / "forecast.nc")
        last = xr.open_dataset(tmp_path / "run" / "cycle_002" / "forecast.nc")
        np.testing.assert_array_equal(first["temperature"].values, last["temperature"].values)


def test_seeds_json_holds_the_seeds_the_run_used(tmp_path):
    from dafusion.cycler import seeding
    from dafusion.prior.sampler import member_generators

    exp = cycle_fakes.experiment("run.mode=plain", "run.seed=3")
    run_experiment(exp, tmp_path / "run")
    record = json.loads((tmp_path / "run" / "seeds.json").read_text())
    assert [c["valid_time"] for c in record["cycles"]] == [str(t)[:16] for t in exp.times]
    for c in record["cycles"]:
        used = member_generators(seeding.analysis_seed(3, c["cycle"]), range(2))
        fresh = [torch.Generator().manual_seed(s) for s in c["members"]]
        for g, h in zip(used, fresh):
            assert torch.equal(torch.randn(4, generator=g), torch.randn(4, generator=h))


def test_a_crafted_state_file_runs_no_code(tmp_path):
    """state.npz is arrays and JSON read with allow_pickle=False: a pickle planted in it
    is refused with an error naming the file, and its payload never runs."""
    import pickle

    exp = cycle_fakes.experiment("run.mode=plain")
    run_experiment(exp, tmp_path / "run")
    (tmp_path / "run" / "COMPLETE").unlink()
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    for content in (pickle.dumps(Payload()), b"garbage"):
        (tmp_path / "run" / "state.npz").write_bytes(content)
        with pytest.raises(RunError, match=r"state.npz: not a readable run state"):
            run_cycles_again(exp, tmp_path / "run")
    with open(tmp_path / "run" / "state.npz", "wb") as f:  # object arrays need pickle too
        np.savez(f, meta=np.array(json.dumps({"version": STATE_VERSION})),
                 array_previous=np.array([Payload()], dtype=object))
    with pytest.raises(RunError, match=r"state.npz: not a readable run state"):
        run_cycles_again(exp, tmp_path / "run")
    with open(tmp_path / "run" / "state.npz", "wb") as f:  # right format, wrong content
        np.savez(f, meta=np.array(json.dumps({"version": STATE_VERSION, "cycle": 1})))
    with pytest.raises(RunError, match=r"incomplete run state \(KeyError"):
        run_cycles_again(exp, tmp_path / "run")
    (tmp_path / "run" / "state.npz").unlink()
    (tmp_path / "run" / "state.pt").write_bytes(pickle.dumps(Payload()))  # the old format
    with pytest.raises(RunError, match=r"state.pt: a run state of an earlier version"):
        run_cycles_again(exp, tmp_path / "run")
    assert not marker.exists()


def run_cycles_again(exp, run_dir):
    from dafusion.cycler.run import run_cycles

    return run_cycles(exp, run_dir)


def test_a_run_killed_while_being_created_resumes(fakes, tmp_path, monkeypatch):
    """Killed after config.yaml, before inputs.json: --resume writes the rest of the
    header and runs every cycle, ending as an uninterrupted run."""
    import dafusion.cycler.rundir as rundir

    tmp, sets = fakes
    cfg = cycle_fakes.config(sets, "run.mode=plain")
    start_run(cfg, tmp_path / "full")
    real = rundir.write_text

    def killed(path, text):
        if Path(path).name == "versions.json":
            raise KeyboardInterrupt("killed while creating the run")
        return real(path, text)

    monkeypatch.setattr(rundir, "write_text", killed)
    with pytest.raises(KeyboardInterrupt):
        start_run(cfg, tmp_path / "cut")
    monkeypatch.setattr(rundir, "write_text", real)
    assert sorted(p.name for p in (tmp_path / "cut").iterdir()) == ["config.yaml", "lock"]
    with pytest.raises(RunError, match="interrupted while it was being created; 'cycler run "
                                       "--resume"):
        compare([tmp_path / "full", tmp_path / "cut"])
    resume_run(tmp_path / "cut")
    assert ((tmp_path / "cut" / "metrics.csv").read_text()
            == (tmp_path / "full" / "metrics.csv").read_text())
    assert "header completed on resume" in (tmp_path / "cut" / "log.txt").read_text()


def test_background_check_is_wired_and_counted(tmp_path):
    """run.sources.stations.background_check: gross errors planted in the table are
    rejected from the second cycle on (the first has no background) and counted."""
    from dafusion.cycler.experiment import observation_table

    exp = cycle_fakes.experiment("run.mode=plain")
    table = observation_table(exp.cfg, exp.truth, {})
    bad = table.variable == "temperature"
    table.value[bad] += 50.0  # 50 K: far beyond any background
    exp = cycle_fakes.experiment("run.mode=plain", "run.sources.stations.background_check=4",
                                 table=table)
    run_experiment(exp, tmp_path / "run")
    obs = rows(tmp_path / "run" / "obs_diagnostics.csv")
    assert int(obs[0]["rejected"]) == 0
    for r in obs[1:]:
        t = np.datetime64(r["valid_time"])
        window = table.window(t, np.timedelta64(3, "h"))
        n_bad = int((window.variable == "temperature").sum())
        assert int(r["rejected"]) >= n_bad > 0
        assert int(r["used"]) + int(r["rejected"]) == len(window)


def test_sweep_as_a_library(fakes, tmp_path):
    from dafusion.cycler.campaigns.sweep import label, sweep

    tmp, sets = fakes
    base = cycle_fakes.config(sets, "run.mode=plain", "run.days=0.5")
    result = sweep(base, {"run.sources.stations.weight": ["0.5", "1"]}, tmp_path / "sw")
    assert [r.label for r in result.runs] == ["stations.weight=0.5", "stations.weight=1"]
    assert not result.failed and "stations.weight=0.5" in result.table
    assert label({"foo": "1"}) == "foo=1"
    from dafusion.config import ConfigError

    with pytest.raises(ConfigError, match="run: expected a mapping"):
        sweep(base, {"run": ["1", "2"]}, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_sweep_in_child_processes_gives_the_same_runs(fakes, tmp_path, monkeypatch):
    """--jobs 2: each run is ``RunJob`` on ``<root>/<label>.yaml`` in a spawned process;
    the metrics are those of the same settings run here."""
    from dafusion.cycler.campaigns.executors import make_executor
    from dafusion.cycler.campaigns.sweep import sweep

    tmp, sets = fakes
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parent.parent))
    base = cycle_fakes.config(sets, "run.mode=plain", "run.days=0.5")
    axes = {"run.sources.stations.weight": ["0.5", "1"]}
    here = sweep(base, axes, tmp_path / "here")
    there = sweep(base, axes, tmp_path / "there", executor=make_executor("local", jobs=2))
    assert not there.failed and (tmp_path / "there" / "stations.weight=1.yaml").exists()
    for a, b in zip(here.runs, there.runs):
        assert (a.path / "metrics.csv").read_text() == (b.path / "metrics.csv").read_text()


def test_a_truth_at_an_fsspec_url_gives_the_same_run(fakes, tmp_path):
    fsspec = pytest.importorskip("fsspec")
    tmp, sets = fakes
    local = next(s.split("=", 1)[1] for s in sets if s.startswith("run.truth="))
    url = "memory://cycle-test/truth.zarr"
    xr.open_dataset(local).to_zarr(url, mode="w", zarr_format=2, consolidated=True)
    try:
        runs = {}
        for name, truth in (("file", local), ("url", url)):
            start_run(cycle_fakes.config(sets, "run.mode=plain", f"run.truth={truth}"),
                      tmp_path / name)
            runs[name] = rows(tmp_path / name / "metrics.csv")
        assert runs["url"] == runs["file"] and len(runs["file"]) == 9
        inputs = json.loads((tmp_path / "url" / "inputs.json").read_text())
        assert inputs["truth"] == {"url": url}
    finally:
        fsspec.filesystem("memory").rm("/cycle-test", recursive=True)
