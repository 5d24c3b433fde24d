"""Where a sweep's runs execute (``cycler sweep --executor``).

Every executor runs the same job, :class:`RunJob`: one ordinary run directory,
started from its configuration file or, when the directory exists, resumed from its
``state.npz``. A job never depends on which executor ran it, so a campaign
interrupted under one can be continued under another.

* ``local`` (default): in this process (``--jobs 1``) or in ``--jobs`` child
  processes (spawned, each calling :class:`RunJob` with its share of this process's
  threads); Ctrl-C or SIGTERM of the sweep interrupts them (resumable) and waits for
  them.
* ``slurm``: one Slurm array job through ``submitit`` (the ``slurm`` extra):
  ``--partition``, ``--time`` (minutes), ``--gpus-per-job``, ``--cpus-per-job``,
  ``--jobs`` as the array's parallelism, ``--slurm KEY=VALUE`` for anything else
  sbatch takes (account, qos, constraint, …). A job that reaches its time limit (or
  is pre-empted) is requeued by submitit and resumes its run from the last
  complete cycle (:meth:`RunJob.checkpoint`).
* ``submitit-local``: the same jobs through submitit's local executor (child
  processes on this machine, ``--jobs`` at a time, with submitit's time limit and
  requeue): the Slurm path without a cluster.

Jobs' logs go to ``<root>/submitit/``. The sweep waits for its jobs; stopping it
(Ctrl-C, SIGTERM) cancels the ones still running, which stop resumable, and the
same command later continues the sweep.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from dafusion.cycler.rundir import RunDir, RunError

EXECUTORS = ("local", "slurm", "submitit-local")
SUBMITIT_FOLDER = "submitit"


@dataclasses.dataclass(frozen=True)
class Job:
    """One run: its directory and the configuration file that starts it."""

    path: Path
    config: Path
    device: str = "cpu"
    threads: int | None = None  # None: leave as it is; 0: the CPUs the job may use


class Executor(Protocol):
    """Runs a sweep's jobs somewhere."""

    def threads_per_job(self) -> int | None:
        """CPU threads of each job: a share of this process's when the jobs run beside
        each other here, None when a job uses the CPUs it is given (or this process's)."""
        ...

    def run(self, jobs: Sequence[Job], root: Path) -> dict[Path, str]:
        """Run every job; returns the failures' messages by run directory."""
        ...


def _share(jobs: int) -> int:
    """This process's threads split among ``jobs`` jobs beside each other."""
    import torch

    return max(1, torch.get_num_threads() // jobs)


class RunJob:
    """The job every executor runs (a submitit-checkpointable callable).

    ``RunJob()(path, config, device, threads)`` completes the run in ``path``: nothing
    if it is complete, resumed if it exists, started from ``config`` otherwise.
    """

    def __call__(self, path: str, config: str, device: str = "cpu",
                 threads: int | None = None) -> str:
        from dafusion.config import load_config
        from dafusion.cycler.run import resume_run, start_run

        if threads is not None:  # a job process of its own: as cycler --threads does
            from dafusion import threads as dafusion_threads

            dafusion_threads.prepare_environment()
            dafusion_threads.apply(dafusion_threads.choose_threads(threads or None))
        run = RunDir(path)
        if run.complete:
            return f"{path}: complete"
        if run.path.exists():
            state = resume_run(run.path, device=device)
        else:
            state = start_run(load_config(config), run.path, device=device)
        return f"{path}: {state.cycle} analyses"

    def checkpoint(self, path: str, config: str, device: str = "cpu",
                   threads: int | None = None) -> Any:
        """submitit calls this at the time limit or on pre-emption: the same job again,
        which resumes the run from its ``state.npz`` (the cycles written so far stay)."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(RunJob(), path, config, device, threads)


def make_executor(name: str = "local", *, jobs: int = 1, partition: str | None = None,
                  time_min: int = 60, gpus_per_job: int = 0, cpus_per_job: int = 0,
                  slurm: dict[str, str] | None = None) -> Executor:
    """The executor ``name`` (one of :data:`EXECUTORS`) with its options, checked now."""
    if jobs < 1:
        raise RunError(f"sweep: --jobs must be >= 1, got {jobs}")
    if name == "local":
        if partition or slurm or gpus_per_job or cpus_per_job:
            raise RunError("sweep: --partition, --gpus-per-job, --cpus-per-job and --slurm "
                           "are options of --executor slurm / submitit-local")
        return InProcess() if jobs == 1 else Processes(jobs)
    if name not in EXECUTORS:
        raise RunError(f"sweep: --executor {name!r}: expected one of {', '.join(EXECUTORS)}")
    if time_min < 1 or gpus_per_job < 0 or cpus_per_job < 0:
        raise RunError("sweep: --time must be >= 1 minute and --gpus-per-job, "
                       "--cpus-per-job >= 0")
    if name == "submitit-local" and (partition or slurm):
        raise RunError("sweep: --partition and --slurm are options of --executor slurm")
    return Submitit("slurm" if name == "slurm" else "local", jobs=jobs, partition=partition,
                    time_min=time_min, gpus_per_job=gpus_per_job, cpus_per_job=cpus_per_job,
                    slurm=dict(slurm or {}))


class InProcess:
    """One run after the other in this process; a failed run does not stop the others."""

    def threads_per_job(self) -> None:
        return None

    def run(self, jobs: Sequence[Job], root: Path) -> dict[Path, str]:
        failed = {}
        for job in jobs:
            try:
                RunJob()(str(job.path), str(job.config), job.device, job.threads)
            except Exception as err:  # noqa: BLE001 - one failed run does not stop the sweep
                failed[job.path] = f"{type(err).__name__}: {err}"
        return failed


class Processes:
    """``jobs`` child processes at a time, each running :class:`RunJob` on one job."""

    def __init__(self, jobs: int) -> None:
        self.jobs = jobs

    def threads_per_job(self) -> int:
        return _share(self.jobs)

    def run(self, jobs: Sequence[Job], root: Path) -> dict[Path, str]:
        failed = {}
        for i in range(0, len(jobs), self.jobs):
            procs = [Child(job) for job in jobs[i:i + self.jobs]]
            try:
                with _sigterm_interrupts():
                    for proc in procs:
                        proc.wait()
            except BaseException:  # Ctrl-C or SIGTERM of the sweep: its runs stop, resumable
                for proc in procs:
                    if proc.poll() is None:
                        proc.send_signal(signal.SIGINT)
                for proc in procs:
                    proc.wait()
                raise
            for job, proc in zip(jobs[i:i + self.jobs], procs):
                if proc.poll():
                    failed[job.path] = f"exit status {proc.poll()} (its messages above)"
        return failed


class Child:
    """One job in a spawned process: :class:`RunJob`, called as a library function
    (the command line is not involved); ``wait``/``poll`` give its exit status (0: done,
    1: failed, with its message on stderr; 130: interrupted, resumable)."""

    _context = multiprocessing.get_context("spawn")  # no copy of this process's state

    def __init__(self, job: Job) -> None:
        self.process = self._context.Process(
            target=_child_main, args=(str(job.path), str(job.config), job.device, job.threads),
            name=f"run {job.path.name}")
        self.process.start()

    def wait(self) -> int | None:
        self.process.join()
        return self.process.exitcode

    def poll(self) -> int | None:
        return self.process.exitcode

    def send_signal(self, sig: int) -> None:
        if self.process.pid is not None:
            os.kill(self.process.pid, sig)


def _child_main(path: str, config: str, device: str, threads: int | None) -> None:
    """A child process's whole work: one job; one line on stderr when it stops early.
    SIGINT interrupts it even where the sweep was started with SIGINT ignored (a
    background job of a script): that is how the sweep stops it."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        print(RunJob()(path, config, device, threads), flush=True)
    except KeyboardInterrupt:
        print(f"{path}: interrupted; resumable", file=sys.stderr, flush=True)
        sys.exit(130)
    except Exception as err:  # noqa: BLE001 - the parent reports the run as failed
        print(f"{path}: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
        sys.exit(1)


class Submitit:
    """The jobs through ``submitit``: a Slurm array (``cluster="slurm"``) or its local
    executor (``cluster="local"``, ``jobs`` at a time)."""

    def __init__(self, cluster: str, *, jobs: int, partition: str | None, time_min: int,
                 gpus_per_job: int, cpus_per_job: int, slurm: dict[str, str]) -> None:
        self.cluster, self.jobs = cluster, jobs
        self.parameters: dict[str, Any] = {"timeout_min": time_min,
                                           "gpus_per_node": gpus_per_job}
        if cpus_per_job:
            self.parameters["cpus_per_task"] = cpus_per_job
        if cluster == "slurm":
            self.parameters["slurm_array_parallelism"] = jobs
            if partition:
                self.parameters["slurm_partition"] = partition
            if slurm:
                self.parameters["slurm_additional_parameters"] = dict(slurm)

    def threads_per_job(self) -> int | None:
        return _share(self.jobs) if self.cluster == "local" else None

    def executor(self, folder: Path) -> Any:
        submitit = _submitit()
        executor = submitit.AutoExecutor(folder=folder, cluster=self.cluster)
        executor.update_parameters(name="cycler", **self.parameters)
        return executor

    def run(self, jobs: Sequence[Job], root: Path) -> dict[Path, str]:
        if not jobs:
            return {}
        executor = self.executor(root / SUBMITIT_FOLDER)
        args = [[str(j.path) for j in jobs], [str(j.config) for j in jobs],
                [j.device for j in jobs], [j.threads or 0 for j in jobs]]
        waves = [range(len(jobs))] if self.cluster == "slurm" else \
            [range(i, min(i + self.jobs, len(jobs))) for i in range(0, len(jobs), self.jobs)]
        failed: dict[Path, str] = {}
        for wave in waves:
            submitted = executor.map_array(RunJob(), *[[a[i] for i in wave] for a in args])
            try:
                with _sigterm_interrupts():
                    for i, job in zip(wave, submitted):
                        error = _outcome(job)
                        if error:
                            failed[jobs[i].path] = f"job {job.job_id}: {error}"
            except BaseException:
                for job in submitted:
                    with contextlib.suppress(Exception):
                        job.cancel(check=False)
                raise
        return failed


def _outcome(job: Any) -> str:
    """'' when the job finished, else why not (the last line of its error)."""
    try:
        job.result()
    except Exception as err:  # noqa: BLE001 - a failed job is reported, not raised
        lines = [line for line in str(err).strip().splitlines() if line.strip()]
        return lines[-1] if lines else type(err).__name__
    return ""


def _submitit() -> Any:
    try:
        import submitit
    except ImportError:
        raise RunError("sweep --executor slurm/submitit-local needs submitit: "
                       "pip install 'dafusion[slurm]'") from None
    return submitit


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM (what Slurm and kill send) while waiting acts like Ctrl-C, so the jobs
    are stopped too instead of being left running."""
    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave SIGTERM alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
