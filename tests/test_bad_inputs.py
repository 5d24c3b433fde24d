"""The bad-input corpus: every command given what a careless or hostile user might give it.

Each case runs the real command line in a scratch folder that already holds the test
world (truth, checkpoints, an observation table, a complete run) and asserts: exit status
1 or 2, one ``Error:`` line naming the culprit, no traceback, and nothing already there
changed (every file's bytes compared; a run's ``lock`` holds only the last owner's pid).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from click.testing import CliRunner

import fakes as cycle_fakes
from dafusion.cli import main
from dafusion.cycler.rundir import STATE_VERSION
from dafusion.obs.table import read_table, write_table

MARKER = "code-ran.txt"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A scratch folder: fakes, an observation table, one complete run; and its settings."""
    tmp = tmp_path_factory.mktemp("bad-inputs")
    sets = cycle_fakes.setup(tmp)
    table = tmp / "obs.nc"
    result = CliRunner().invoke(main, ["obs", "synth", "--truth", str(tmp / "truth.nc"),
                                       "--out", str(table), *_set(sets)])
    assert result.exit_code == 0, result.output
    shutil.copy(table, tmp / "obs2.nc")
    for name, obs in (("done", table), ("done2", tmp / "obs2.nc")):
        result = CliRunner().invoke(main, ["run", "--mode", "plain", "--out",
                                           str(tmp / "runs" / name),
                                           *_set(sets, f"run.observations={obs}")])
        assert result.exit_code == 0, result.output
    _killed_after_first_analysis(tmp / "runs" / "killed1", sets, table)
    _files(tmp)
    return tmp, sets


def _killed_after_first_analysis(run: Path, sets: list[str], table: Path) -> None:
    """A run stopped while writing its second analysis: one cycle in state.npz."""
    from dafusion.cycler.run import start_run

    cfg = cycle_fakes.config(sets, "run.mode=plain", f"run.observations={table}")
    with pytest.MonkeyPatch.context() as mp:
        cycle_fakes.crash_at_metrics_write(mp, 2)
        with pytest.raises(KeyboardInterrupt):
            start_run(cfg, run)
    assert json.loads(str(np.load(run / "state.npz")["meta"]))["cycle"] == 1


def _set(sets, *extra):
    return [a for s in [*sets, *extra] for a in ("--set", s)]


def _files(root: Path) -> None:
    """The small files every case may name."""
    (root / "syntax.yaml").write_text("run:\n  members: [2\n")
    (root / "pytag.yaml").write_text(
        f"run: !!python/object/apply:os.system ['touch {root / MARKER}']\n")
    (root / "dup.yaml").write_text("run:\n  members: 2\n  members: 3\n")
    (root / "baddate.yaml").write_text("data:\n  train_start: 2020-13-01\n")
    (root / "binary.yaml").write_bytes(bytes(range(256)) * 4)
    (root / "text.nc").write_text("not netCDF at all\n")
    truth = (root / "truth.nc").read_bytes()
    (root / "cut_truth.nc").write_bytes(truth[:len(truth) // 2])
    (root / "prior_noweights").mkdir()
    shutil.copy(root / "prior" / "prior.yaml", root / "prior_noweights")
    shutil.copytree(root / "prior", root / "prior_corrupt")
    with open(root / "prior_corrupt" / "weights.pt", "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01\x02")
    (root / "notarun").mkdir()
    (root / "not-igra.txt").write_text("hello\n")
    with xr.open_dataset(root / "obs.nc") as ds:  # a table another tool wrote
        tiny = ds.load()
    tiny["error_std"][0] = 1e-30
    tiny.to_netcdf(root / "tiny_error.nc")
    (root / "cmp").mkdir()
    for name in ("compare.md", "compare.csv", "compare.png"):
        (root / "cmp" / name).write_text("an earlier comparison\n")


def _incomplete(run: Path) -> None:
    (run / "COMPLETE").unlink()
    lines = (run / "metrics.csv").read_text().splitlines()
    (run / "metrics.csv").write_text("\n".join(lines[:1] + [ln for ln in lines[1:]
                                                             if ln.startswith("0,")]) + "\n")


# (id, arguments, expected text of the error line, preparation of a copy of the run)
CASES = [
    ("unknown-key", ["run", "--set", "foo=1"], "foo: unknown key", None),
    ("wrong-type", ["run", "--set", "run.members=ten"], "run.members: expected int", None),
    ("zero-members", ["run", "--set", "run.members=0"], "run.members: must be > 0", None),
    ("negative-days", ["run", "--days", "-1"], "run.days: must be > 0", None),
    ("huge-days", ["run", "--days", "1e12"], "run.days: 1e+12 days is more than", None),
    ("yaml-syntax", ["run", "--config", "syntax.yaml"], "syntax.yaml: not valid YAML", None),
    ("python-tag", ["run", "--config", "pytag.yaml"], "pytag.yaml: not valid YAML", None),
    ("duplicate-key", ["run", "--config", "dup.yaml"],
     "dup.yaml: line 3: key 'members' given twice", None),
    ("date-in-file", ["run", "--config", "baddate.yaml"],
     "baddate.yaml: data.train_start: expected an ISO date/time, got '2020-13-01'", None),
    ("date-option", ["run", "--start", "2020-13-01"], "run.start: expected an ISO", None),
    ("timezone", ["run", "--start", "2020-01-01T05:00+05:00"], "has a time zone", None),
    ("binary-config", ["run", "--config", "binary.yaml"],
     "binary.yaml: not a UTF-8 text file", None),
    ("missing-config", ["run", "--config", "absent.yaml"], "absent.yaml: cannot read", None),
    ("negative-run-seed", ["run", "--set", "run.seed=-1"], "run.seed: must be in 0", None),
    ("letkf-plain", ["run", "--method", "letkf", "--mode", "plain"],
     "letkf needs an ensemble of forecasts", None),
    ("adaptive-inflation-forecast", ["run", "--mode", "forecast", "--set",
                                     "run.sources.emulator.adaptive_inflation=true"],
     "run.sources.emulator.adaptive_inflation: needs the members' forecasts", None),
    ("adaptive-inflation-no-stations", ["run", "--set", "run.sources.emulator.adaptive_inflation"
                                        "=true", "--set", "run.sources.stations.enabled=false"],
     "adaptive_inflation: estimated from the stations' innovations", None),
    ("hybrid-mean", ["run", "--set", "run.reinit=mean", "--set",
                     "run.sources.emulator.hybrid=true"],
     "run.sources.emulator.hybrid: needs the members' forecasts", None),
    ("oi-length", ["run", "--method", "oi", "--set", "run.oi.length_scale_km=0"],
     "run.oi.length_scale_km: must be > 0", None),
    ("oi-variable", ["run", "--set", "run.oi.variance={humidity: 0.1}"],
     "run.oi.variance.humidity: unknown variable", None),
    ("negative-obs-seed", ["run", "--set", "obs.seed=-1"], "obs.seed: must be in 0", None),
    ("name-parent", ["run", "--name", "../escaped"], "--name", None),
    ("name-absolute", ["run", "--name", "/tmp/escaped"], "--name", None),
    ("name-and-out", ["run", "--name", "a", "--out", "b"], "give --out or --name", None),
    ("out-exists", ["run", "--out", "runs/done"], "runs/done: already exists", None),
    ("sweep-unknown", ["sweep", "--set", "foo=1,2"], "foo: unknown key", None),
    ("sweep-section", ["sweep", "--set", "run=1,2"], "run: expected a mapping", None),
    ("sweep-no-axis", ["sweep", "--set", "run.members=2"], "at least one --set", None),
    ("sweep-name", ["sweep", "--name", "../x", "--set", "run.members=1,2"], "--name", None),
    ("observations-not-netcdf", ["run", "--set", "run.observations=text.nc"],
     "text.nc: not a readable netCDF observation table (not netCDF)", None),
    ("observations-absent", ["run", "--set", "run.observations=absent.nc"],
     "absent.nc: no such file", None),
    ("truth-absent", ["run", "--set", "run.truth=absent.nc"], "absent.nc: no such file",
     None),
    ("truth-text", ["run", "--set", "run.truth=text.nc"], "text.nc: not a netCDF, zarr or GRIB",
     None),
    ("truth-truncated", ["run", "--set", "run.truth=cut_truth.nc"], "cut_truth.nc: truncated",
     None),
    ("window-beyond-truth", ["run", "--days", "30"], "has no state at", None),
    ("prior-incomplete", ["run", "--set", "prior.checkpoint=prior_noweights"],
     "prior_noweights: incomplete checkpoint", None),
    ("prior-corrupt", ["run", "--set", "prior.checkpoint=prior_corrupt"],
     "weights.pt: corrupt (sha256 differs", None),
    ("resume-not-a-run", ["run", "--resume", "notarun"], "notarun: not a run directory", None),
    ("resume-complete", ["run", "--resume", "runs/done"], "runs/done: already complete", None),
    ("resume-with-settings", ["run", "--resume", "runs/done", "--members", "3"],
     "--resume takes the run's own configuration", None),
    ("resume-edited-config", ["run", "--resume", "runs/edited"],
     "config.yaml: changed since the run was created", "edited"),
    ("resume-other-observations", ["run", "--resume", "runs/other_obs"],
     "its input 'observations' is not what the run was created with", "other_obs"),
    ("resume-before-config", ["run", "--resume", "runs/empty"],
     "a run stopped before its config.yaml was written", "empty"),
    ("resume-garbage-state", ["run", "--resume", "runs/garbage_state"],
     "state.npz: not a readable run state", "garbage_state"),
    ("resume-state-without-cycle", ["run", "--resume", "runs/no_cycle"],
     "state.npz: incomplete run state (lacks ['cycle', 'fingerprint'", "no_cycle"),
    ("resume-without-inputs-edited", ["run", "--resume", "runs/bypass"],
     "state.npz: its cycles were computed from other inputs than the run's config.yaml",
     "bypass"),
    ("resume-cycle-beyond-window", ["run", "--resume", "runs/cycle99"],
     "state.npz: cycle 99 is not a cycle of this run (1..3 done)", "cycle99"),
    ("resume-state-wrong-shape", ["run", "--resume", "runs/wrong_shape"],
     "state.npz: array 'previous' has shape (3, 5, 7), not one of this run's", "wrong_shape"),
    ("resume-state-fewer-rows", ["run", "--resume", "runs/short_tables"],
     "state.npz: 0 metrics rows for 1 cycles done (expected 3)", "short_tables"),
    ("weight-nan", ["run", "--set", "run.sources.stations.weight=nan"],
     "run.sources.stations.weight: expected a number, got 'nan' (NaN)", None),
    ("weight-inf", ["run", "--set", "run.sources.stations.weight=inf"],
     "run.sources.stations.weight: must be a finite number, got inf", None),
    ("sigma-y-tiny", ["run", "--set", "run.sources.stations.sigma_y=1e-30"],
     "run.sources.stations.sigma_y: 1e-30 is below 1e-08", None),
    ("obs-error-tiny", ["run", "--set", "obs.error_std.temperature=1e-30"],
     "obs.error_std.temperature: must be a finite number >= 0.01 K", None),
    ("table-error-tiny", ["run", "--set", "run.observations=tiny_error.nc"],
     "tiny_error.nc: column error_std, row 0: invalid value 1e-30", None),
    ("name-empty", ["run", "--name", ""], "'' is not a folder name inside runs/", None),
    ("compare-twice", ["compare", "runs/done", "runs/done/"], "given more than once", None),
    ("compare-out-exists", ["compare", "runs/done", "runs/done2", "--out", "cmp"],
     "cmp: already holds a comparison (compare.md, compare.csv, compare.png); pass --force",
     None),
    ("compare-not-a-run", ["compare", "notarun"], "notarun: not a run directory", None),
    ("compare-interrupted", ["compare", "runs/done", "runs/partial"],
     "runs/partial: 1 analyses, other runs 3", "partial"),
    ("compare-other-window", ["compare", "runs/done", "runs/shifted"],
     "differs from runs/done in ['start']", "shifted"),
    ("report-not-a-run", ["report", "notarun"], "notarun: not a run directory", None),
    ("igra-not-igra", ["obs", "import-igra", "not-igra.txt", "--out", "o.nc"],
     "not-igra.txt: not an IGRA2 sounding-data file", None),
    ("igra-out-exists", ["obs", "import-igra", "not-igra.txt", "--out", "obs.nc"],
     "obs.nc: already exists", None),
    ("inspect-truncated", ["data", "inspect", "cut_truth.nc"], "cut_truth.nc: truncated", None),
    ("inspect-text", ["data", "inspect", "text.nc"], "text.nc: not a netCDF", None),
    ("config-section", ["config", "show", "--set", "run=1"], "run: expected a mapping", None),
]


def _prepare(root: Path, copy: str, sets: list[str]) -> None:
    """A copy of the complete run (or of the one killed after its first analysis),
    damaged as the case needs, made before the snapshot."""
    run = root / "runs" / copy
    if run.exists():
        return
    if copy in ("bypass", "cycle99", "wrong_shape", "short_tables"):
        shutil.copytree(root / "runs" / "killed1", run)
        _damage_state(run, copy)
        return
    if copy == "empty":  # killed between its mkdir and config.yaml
        run.mkdir()
        (run / "lock").write_text("")
        return
    shutil.copytree(root / "runs" / ("done2" if copy == "other_obs" else "done"), run)
    if copy in ("edited", "other_obs", "garbage_state"):
        (run / "COMPLETE").unlink()
    if copy == "edited":
        config = run / "config.yaml"
        config.write_text(config.read_text().replace("members: 2", "members: 3"))
    elif copy == "other_obs":  # the run's observation file replaced by another
        table = read_table(root / "obs2.nc")
        table.value[:] += 1.0
        write_table(table, root / "obs2.nc", force=True)
    elif copy == "garbage_state":
        (run / "state.npz").write_bytes(b"PK\x03\x04 not a zip")
    elif copy == "no_cycle":  # a readable state that lacks what a state holds
        (run / "COMPLETE").unlink()
        with open(run / "state.npz", "wb") as f:
            np.savez(f, meta=np.array(json.dumps({"version": STATE_VERSION})))
    elif copy == "partial":
        _incomplete(run)
    elif copy == "shifted":
        config = run / "config.yaml"
        config.write_text(config.read_text().replace("start: 2020-01-01T00",
                                                     "start: 2020-01-01T12"))


def _damage_state(run: Path, copy: str) -> None:
    if copy == "bypass":  # inputs.json deleted, the station weight edited 1 -> 0.5
        (run / "inputs.json").unlink()
        config = run / "config.yaml"
        text = config.read_text()
        assert text.count("weight: 1.0") >= 1
        config.write_text(text.replace("weight: 1.0", "weight: 0.5", 1))
        return
    with np.load(run / "state.npz") as z:
        meta = json.loads(str(z["meta"]))
        arrays = {k: z[k] for k in z.files if k != "meta"}
    if copy == "cycle99":
        meta["cycle"] = 99
    elif copy == "wrong_shape":
        arrays["array_previous"] = np.zeros((3, 5, 7))
    elif copy == "short_tables":
        meta["tables"]["metrics"] = []
    with open(run / "state.npz", "wb") as f:
        np.savez(f, meta=np.array(json.dumps(meta)), **arrays)


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != "lock"}


@pytest.mark.parametrize("args,expected,copy", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_line_and_changes_nothing(world, monkeypatch, args, expected,
                                                         copy):
    root, sets = world
    monkeypatch.chdir(root)
    if copy:
        _prepare(root, copy, sets)
    argv = args
    if args[0] in ("run", "sweep") and "--resume" not in args:  # the test world, then the case
        argv = args[:1] + _set(sets) + args[1:]
    before = _snapshot(root)
    result = CliRunner().invoke(main, argv)
    assert result.exit_code in (1, 2), (result.exit_code, result.output)
    assert "Traceback" not in result.output and result.exception is None or \
        isinstance(result.exception, SystemExit), result.output
    errors = [ln for ln in result.output.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1, result.output
    assert expected in errors[0], errors[0]
    assert _snapshot(root) == before
    assert not (root / MARKER).exists()
    assert not (root.parent / "escaped").exists() and not Path("/tmp/escaped").exists()


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 40 and len({c[0] for c in CASES}) == len(CASES)


# --------------------------------------------------------------------------- crafted files


class _Payload:
    """Pickles to a call that creates a marker file: what a crafted file would run."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_no_file_the_package_loads_can_run_code(tmp_path, monkeypatch):
    """A crafted pickle wherever the package loads a torch or numpy file: refused, and
    the code it carries never runs."""
    import dataclasses

    from dafusion.checkpoint import read_weights
    from dafusion.cycler.rundir import RunDir
    from dafusion.emulator.checkpoint import load_emulator
    from dafusion.emulator.train import _training_state as emulator_state
    from dafusion.prior.checkpoint import load_prior, read_meta
    from dafusion.prior.train import _load_training_state as prior_state

    sets = cycle_fakes.setup(tmp_path)
    cfg = cycle_fakes.config(sets)
    meta = read_meta(tmp_path / "prior")  # the configuration the prior was trained with
    cfg = dataclasses.replace(cfg, prior=dataclasses.replace(cfg.prior, network=meta.network,
                                                              edm=meta.edm))
    marker = tmp_path / MARKER
    crafted = {"model": _Payload(marker)}

    def plant(path: Path) -> None:
        torch.save(crafted, path)

    for ckpt, loader in (("prior", load_prior), ("emulator", load_emulator)):
        plant(tmp_path / ckpt / "weights.pt")
        record = tmp_path / ckpt / "record.json"
        record.write_text(record.read_text().replace('"weights_sha256"', '"was_sha256"'))
        with pytest.warns(UserWarning, match="no weights_sha256"), \
                pytest.raises(ValueError, match="weights.pt: unreadable"):
            loader(tmp_path / ckpt)
        with pytest.warns(UserWarning), pytest.raises(ValueError):
            read_weights(tmp_path / ckpt)
    for name, loader in (("prior", prior_state), ("emulator", emulator_state)):
        plant(tmp_path / name / "training_state.pt")
        with pytest.raises(ValueError, match="training_state.pt: unreadable"):
            loader(tmp_path / name, cfg)
    run = tmp_path / "run"
    run.mkdir()
    with open(run / "state.npz", "wb") as f:  # savez pickles an object array
        np.savez(f, meta=np.array([_Payload(marker)], dtype=object))
    with pytest.raises(ValueError, match="state.npz: not a readable run state"):
        RunDir(run).load_state()
    from dafusion.emulator.checkpoint import lucie_stats
    from dafusion.emulator.checkpoint import read_meta as emulator_meta

    with open(tmp_path / "stats.npz", "wb") as f:  # LUCIE's statistics file, crafted
        np.savez(f, **{k: np.array([_Payload(marker)], dtype=object) for k in
                       ("raw_means", "raw_stds", "diff_stds", "diag_means", "diag_stds")})
    with pytest.raises(ValueError, match="stats.npz"):
        lucie_stats(tmp_path / "stats.npz", emulator_meta(tmp_path / "emulator"))
    assert not marker.exists()


def test_emulator_training_state_is_read_without_pickle(tmp_path):
    from dafusion.emulator.train import _training_state

    sets = cycle_fakes.setup(tmp_path)
    cfg = cycle_fakes.config(sets)
    out = tmp_path / "training"
    out.mkdir()
    marker = tmp_path / MARKER
    torch.save({"config": _Payload(marker)}, out / "training_state.pt")
    with pytest.raises(ValueError, match="training_state.pt: unreadable, truncated or not a "
                                         "plain training state"):
        _training_state(out, cfg)
    assert not marker.exists()


# --------------------------------------------------------------------------- observations


def test_gross_values_duplicates_and_far_longitudes_at_the_table_boundary(tmp_path):
    from dafusion.obs.table import ObservationTable, ObsTableError, screen, validate

    n = 4
    rows = dict(time=np.full(n, np.datetime64("2020-01-01T00", "ns")),
                lat=[10.0, 20.0, 20.0, 30.0], lon=[-10.0, 350.0, 350.0, 5.0],
                level=[850.0] * n, variable=["temperature"] * n,
                value=[280.0, 270.0, 270.0, 1e6], error_std=[1.0] * n,
                station_id=["A", "B", "B", "C"], source=["test"] * n, qc=[0] * n)
    table = ObservationTable(**rows)
    assert table.lon[0] == 350.0  # -10 E is 350 E
    kept, removed = screen(table)
    assert removed == {"value outside the possible range of its variable": 1,
                       "exact duplicate of an earlier row": 1}
    assert kept.value.tolist() == [280.0, 270.0]
    # a second report of station B at the same time and level, 20 K warmer: which of the
    # two is right cannot be told, so both go; C's z500 in metres is outside z500's range
    extra = [np.datetime64("2020-01-01T00", "ns"), 20.0, 350.0, 850.0, "temperature", 290.0,
             1.0, "B", "test", 0]
    both = {k: list(v) + [w] for (k, v), w in zip(rows.items(), extra)}
    both["variable"][3], both["level"][3], both["value"][3] = "geopotential", 500.0, 5600.0
    conflicting = ObservationTable(**both)
    kept, removed = screen(conflicting)
    assert removed == {"value outside the possible range of its variable": 1,
                       "conflicting rows for one station, time, level and variable (all "
                       "removed)": 3}
    assert kept.value.tolist() == [280.0]
    far = ObservationTable(**{**rows, "lon": [-400.0, 0.0, 0.0, 0.0]})
    with pytest.raises(ObsTableError, match=r"column lon, row 0: invalid value -400.0"):
        validate(far, "far.nc")


def test_a_run_screens_its_observation_file(tmp_path):
    from dafusion.cycler.run import start_run

    sets = cycle_fakes.setup(tmp_path)
    table_path = tmp_path / "obs.nc"
    result = CliRunner().invoke(main, ["obs", "synth", "--truth", str(tmp_path / "truth.nc"),
                                       "--out", str(table_path), *_set(sets)])
    assert result.exit_code == 0, result.output
    table = read_table(table_path)
    table.value[0] = 1e6 if table.variable[0] == "temperature" else -1e9
    from dafusion.obs.table import ObservationTable

    doubled = ObservationTable.concat([table, table])
    write_table(doubled, table_path, force=True)
    cfg = cycle_fakes.config(sets, "run.mode=plain", f"run.observations={table_path}")
    with pytest.warns(UserWarning, match=r"obs.nc: rows removed before use: 2 value outside "
                                         r"the possible range of its variable, \d+ exact "
                                         "duplicate of an earlier row"):
        start_run(cfg, tmp_path / "run")
    inputs = (tmp_path / "run" / "inputs.json").read_text()
    assert '"value outside the possible range of its variable": 2' in inputs
    assert f'"exact duplicate of an earlier row": {len(table) - 1}' in inputs
    assert "observation rows removed before use" in (tmp_path / "run" / "log.txt").read_text()
    xr.open_dataset(tmp_path / "run" / "cycle_000" / "analysis.nc").close()


def test_a_run_that_lost_its_inputs_json_resumes_when_nothing_changed(world, tmp_path):
    """The fingerprint in state.npz lets the header be completed, as before, when the
    configuration and files are those the cycles were computed from."""
    from dafusion.cycler.run import resume_run

    root, _ = world
    run = tmp_path / "lost_inputs"
    shutil.copytree(root / "runs" / "killed1", run)
    (run / "inputs.json").unlink()
    resume_run(run)
    assert (run / "metrics.csv").read_text() == (root / "runs" / "done" / "metrics.csv"
                                                 ).read_text()
    assert json.loads((run / "inputs.json").read_text()) == json.loads(
        (root / "runs" / "done" / "inputs.json").read_text())


def test_compare_replaces_a_comparison_only_with_force(world, tmp_path, monkeypatch):
    root, _ = world
    monkeypatch.chdir(root)
    out = tmp_path / "cmp"
    shutil.copytree(root / "cmp", out)
    result = CliRunner().invoke(main, ["compare", "runs/done", "runs/done2", "--out", str(out),
                                       "--force"])
    assert result.exit_code == 0, result.output
    assert (out / "compare.md").read_text().startswith("# Runs by lead day")
    assert (out / "compare.csv").read_text().count("\n") == 1 + 3 * 3 * 2  # scores x ch x runs


def test_one_member_says_there_is_no_ensemble_and_rejections_reach_the_screen(world, tmp_path):
    root, sets = world
    run = tmp_path / "one"
    result = CliRunner().invoke(main, ["run", "--mode", "plain", "--members", "1", "--out",
                                       str(run), *_set(sets, "run.sources.stations."
                                                             "background_check=1.0")])
    assert result.exit_code == 0, result.output
    assert "Note: one has one member: no ensemble, so its spread is 0, its spread-skill " \
        "ratio is not defined (nan)" in result.output
    ratios = [ln for ln in result.output.splitlines() if ln.startswith("| t850 | one |")]
    assert ratios[1] == "| t850 | one | nan | nan | nan | nan |"  # the spread-skill table
    from dafusion.cycler.rundir import RunDir

    rejected = sum(int(r["rejected"]) for r in RunDir(run).obs_rows())
    assert rejected > 0
    assert f"rejected by the background check: stations {rejected}" in result.output
