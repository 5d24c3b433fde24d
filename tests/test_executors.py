"""Where a sweep's runs execute: child processes, and submitit (its local executor
for real, its Slurm executor up to the sbatch script). Every executor's runs equal
the in-process runs of the same plan, file for file."""

from __future__ import annotations

import os
import signal
import stat
import time

import pytest
import torch

import fakes as cycle_fakes
from dafusion.cycler.campaigns.executors import Job, RunJob, make_executor
from dafusion.cycler.campaigns.sweep import sweep
from dafusion.cycler.rundir import RunDir, RunError

submitit = pytest.importorskip("submitit", reason="the 'slurm' extra (submitit) is not "
                                                   "installed: pip install 'dafusion[slurm]'")

STARTS = ["2020-01-01T00:00", "2020-01-01T12:00"]
AXES = {"run.sources.stations.weight": ["0.5", "1"]}


def _settings(sets, days="0.5"):
    return cycle_fakes.config(sets, "run.mode=reinit", f"run.days={days}")


def _metrics(root, runs):
    return {r.path.relative_to(root).as_posix(): (r.path / "metrics.csv").read_text()
            for r in runs}


@pytest.mark.slow
def test_a_campaign_through_submitit_local_equals_the_campaign_in_process(fakes, tmp_path):
    """Two submitit jobs beside each other get this process's threads shared between them;
    the in-process campaign runs with that many threads too (results depend on it)."""
    _, sets = fakes
    executor = make_executor("submitit-local", jobs=2, time_min=10)
    threads = torch.get_num_threads()
    torch.set_num_threads(executor.threads_per_job())
    try:
        here = sweep(_settings(sets), AXES, tmp_path / "here", starts=STARTS)
    finally:
        torch.set_num_threads(threads)
    jobs = sweep(_settings(sets), AXES, tmp_path / "jobs", starts=STARTS, executor=executor)
    assert not here.failed and not jobs.failed and len(jobs.runs) == 4
    assert _metrics(tmp_path / "jobs", jobs.runs) == _metrics(tmp_path / "here", here.runs)
    logs = list((tmp_path / "jobs" / "submitit").glob("*_log.out"))
    assert len(logs) == 4  # one submitit job per run
    # continued under another executor: nothing left to do, nothing rerun
    stamps = {r.path: (r.path / "metrics.csv").stat().st_mtime_ns for r in jobs.runs}
    sweep(_settings(sets), AXES, tmp_path / "jobs", starts=STARTS)
    assert {r.path: (r.path / "metrics.csv").stat().st_mtime_ns for r in jobs.runs} == stamps


@pytest.mark.slow
def test_a_preempted_job_is_requeued_and_resumes_its_run(fakes, tmp_path):
    """submitit's pre-emption signal mid-run (the signal Slurm also sends before a
    time limit): RunJob.checkpoint requeues the same job, which resumes the run from
    its state; the run equals an uninterrupted one."""
    _, sets = fakes
    # 3 analyses of 100 sampler steps (seconds each: the signal arrives mid-run)
    cfg = cycle_fakes.config(sets, "run.mode=reinit", "run.days=1", "prior.sampler.steps=100")
    whole = tmp_path / "whole"
    executor = submitit.AutoExecutor(folder=tmp_path / "submitit", cluster="local")
    executor.update_parameters(timeout_min=10)
    from dafusion.config import dump_config

    config = tmp_path / "run.yaml"
    config.write_text(dump_config(cfg))
    import torch

    # the job with this process's threads (results change in the 6th digit with them)
    job = executor.submit(RunJob(), str(tmp_path / "cut"), str(config), "cpu",
                          torch.get_num_threads())
    deadline = time.time() + 300
    state = RunDir(tmp_path / "cut")
    while time.time() < deadline and "cycle 1 " not in _log(state):
        time.sleep(0.2)
    assert "cycle 1 " in _log(state), "the job did not get to its second cycle"
    # what submitit's controller does at the time limit (and Slurm on pre-emption):
    # USR2 to the job's task, the controller's child process
    controller = int(job.job_id)
    task = int(open(f"/proc/{controller}/task/{controller}/children").read().split()[0])
    os.kill(task, signal.SIGUSR2)
    job.result()
    assert state.complete and "resumed at cycle" in _log(state)
    RunJob()(str(whole), str(config), "cpu")
    assert (state.path / "metrics.csv").read_text() == (whole / "metrics.csv").read_text()


def test_the_checkpoint_of_an_interrupted_job_resumes_its_run(fakes, tmp_path, monkeypatch):
    """What submitit requeues (RunJob.checkpoint), run after a crash in the run's second
    analysis: the run resumes and equals an uninterrupted one."""
    from dafusion.config import dump_config

    _, sets = fakes
    config = tmp_path / "run.yaml"
    config.write_text(dump_config(_settings(sets, days="1")))
    args = (str(tmp_path / "cut"), str(config), "cpu")
    cycle_fakes.crash_at_metrics_write(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        RunJob()(*args)
    monkeypatch.undo()
    delayed = RunJob().checkpoint(*args)
    assert isinstance(delayed, submitit.helpers.DelayedSubmission)
    delayed.result()
    RunJob()(str(tmp_path / "whole"), str(config), "cpu")
    assert "resumed at cycle 1" in _log(RunDir(tmp_path / "cut"))
    assert ((tmp_path / "cut" / "metrics.csv").read_text()
            == (tmp_path / "whole" / "metrics.csv").read_text())


def _log(run: RunDir) -> str:
    path = run.path / "log.txt"
    return path.read_text() if path.exists() else ""


def test_the_slurm_executor_writes_an_sbatch_array_with_the_options(tmp_path, monkeypatch):
    """submitit's Slurm executor up to its sbatch script (no cluster here: a stand-in
    ``srun`` on PATH lets it be built): partition, time, GPUs, CPUs, extra options."""
    fake_srun = tmp_path / "bin" / "srun"
    fake_srun.parent.mkdir()
    fake_srun.write_text("#!/bin/sh\nexit 0\n")
    fake_srun.chmod(fake_srun.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake_srun.parent}:{os.environ['PATH']}")
    ex = make_executor("slurm", jobs=4, partition="gpu", time_min=120, gpus_per_job=1,
                       cpus_per_job=8, slurm={"account": "abc", "qos": "short"})
    slurm = ex.executor(tmp_path / "submitit")._executor  # AutoExecutor -> SlurmExecutor
    text = slurm._make_submission_file_text("CMD", "uid")
    for line in ("--partition=gpu", "--time=120", "--gpus-per-node=1", "--cpus-per-task=8",
                 "--account=abc", "--qos=short", "--signal=USR2@", "--open-mode=append"):
        assert f"#SBATCH {line}" in text, line
    assert ex.parameters["slurm_array_parallelism"] == 4


def test_executor_options_are_checked_before_anything_runs():
    with pytest.raises(RunError, match="--jobs must be >= 1"):
        make_executor("local", jobs=0)
    with pytest.raises(RunError, match="options of --executor slurm"):
        make_executor("local", partition="gpu")
    with pytest.raises(RunError, match="options of --executor slurm"):
        make_executor("submitit-local", slurm={"account": "abc"})
    with pytest.raises(RunError, match="--time must be >= 1"):
        make_executor("slurm", time_min=0)
    with pytest.raises(RunError, match="expected one of"):
        make_executor("pbs")


def test_sigterm_of_a_sweep_interrupts_its_child_runs(fakes, tmp_path, monkeypatch):
    """SIGTERM (a scheduler's stop) while waiting for child runs does what Ctrl-C does:
    each child still running gets SIGINT (and stops resumable)."""
    def sigterm():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler interrupts this

    signals = cycle_fakes.interrupted_children(monkeypatch, sigterm)
    before = signal.getsignal(signal.SIGTERM)
    jobs = [Job(tmp_path / f"r{i}", tmp_path / f"r{i}.yaml") for i in range(2)]
    with pytest.raises(KeyboardInterrupt):
        make_executor("local", jobs=2).run(jobs, tmp_path)
    assert signals == [signal.SIGINT, signal.SIGINT]
    assert signal.getsignal(signal.SIGTERM) == before  # the sweep's handler is gone again


def test_the_sweep_command_takes_the_executor_options(fakes, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from dafusion.cli import main

    _, sets = fakes
    monkeypatch.chdir(tmp_path)
    args = ["sweep", *sum((["--set", s] for s in sets), []), "--set", "run.days=0.5",
            "--starts", "2020-01-01:2020-01-01T12:00:12h", "--name", "camp"]
    res = CliRunner().invoke(main, args + ["--executor", "local", "--partition", "gpu"])
    assert res.exit_code != 0 and "options of --executor slurm" in res.output
    res = CliRunner().invoke(main, args + ["--executor", "slurm", "--slurm", "account"])
    assert res.exit_code != 0 and "expected KEY=VALUE" in res.output
    res = CliRunner().invoke(main, args + ["--executor", "submitit-local", "--time", "10"])
    assert res.exit_code == 0, res.output
    assert "1 settings x 2 windows" in res.output
    assert len(list((tmp_path / "runs" / "camp" / "submitit").glob("*_log.out"))) == 2
