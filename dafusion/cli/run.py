"""The cycle commands: run, compare, sweep."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click

from dafusion.cli.main import config_options, friendly, key_values, main, progress_bar, with_options
from dafusion.config import Config, load_config

if TYPE_CHECKING:
    from dafusion.cycler.ranks import Ranks


def _run_dir(cfg, out: str | None, name: str | None) -> Path:  # noqa: ANN001
    from dafusion.cycler.rundir import default_name

    if out is not None and name is not None:
        raise click.UsageError("give --out or --name, not both")
    if out is not None:
        return Path(out)
    return Path("runs") / (_name(name) if name is not None else default_name(cfg))


def _name(name: str) -> str:
    """A run name is one folder name inside runs/: no separators, no '..' (--out is the
    explicit way to write elsewhere)."""
    if not name.strip() or name in (".", "..") or any(c in name for c in "/\\\0") \
            or name != name.strip():
        raise click.BadParameter(f"{name!r} is not a folder name inside runs/ (no '/', "
                                 "'\\', '..' or surrounding spaces); use --out to write "
                                 "elsewhere", param_hint="--name")
    return name


_MODE = click.Choice(["plain", "forecast", "reinit"])
_METHOD = click.Choice(["diffusion", "oi", "letkf"])


@main.command("run")
@config_options
@click.option("--mode", type=_MODE, help="Default: run.mode (reinit).")
@click.option("--method", type=_METHOD, help="The analysis: diffusion (Algorithm 1), oi or "
              "letkf (default: run.method = diffusion; tuned settings: configs/oi.yaml, "
              "configs/letkf.yaml).")
@click.option("--start", help="First analysis time (default: run.start).")
@click.option("--days", type=float, help="Window length (default: run.days = 7).")
@click.option("--members", type=int, help="Ensemble size (default: run.members = 8).")
@click.option("--out", type=click.Path(file_okay=False), help="Run directory.")
@click.option("--name", help="Run name: the directory is runs/NAME.")
@click.option("--resume", "resume", type=click.Path(file_okay=False, exists=True),
              help="Continue the run in this directory (its own configuration).")
@click.option("--device", default="cpu", show_default=True)
@click.option("--ranks", "nranks", type=click.IntRange(min=1), help="Split the members over "
              "N processes on this machine (torch's elastic launcher, as torchrun "
              "--standalone; --threads is then per process, default: the CPUs / N). Across "
              "machines: torchrun (docs/scale-out.md).")
@friendly
def run_cmd(config_path: str | None, overrides: tuple[str, ...], mode: str | None,
            method: str | None, start: str | None, days: float | None, members: int | None,
            out: str | None, name: str | None, resume: str | None, device: str,
            nranks: int | None) -> None:
    """Cycle emulator forecasts and analyses (diffusion, OI or LETKF) every 12 h.

    With --ranks N, or under torchrun (torchrun --nproc-per-node N -m dafusion.cli run
    ...), the members are split across the N processes; rank 0 writes the run directory.
    """
    from dafusion.cycler.ranks import from_environment, under_launcher

    params = dict(config_path=config_path, overrides=overrides, mode=mode, method=method,
                  start=start, days=days, members=members, out=out, name=name, resume=resume)
    if nranks is not None and nranks > 1:
        if under_launcher():
            raise click.UsageError("--ranks: this process was already started by torchrun "
                                   "(WORLD_SIZE is set); give the ranks to one of them")
        from dafusion.cli.launch import launch, threads_per_rank

        _check_options(nranks, **params)  # a bad option is one line here, not one per rank
        launch(nranks, threads_per_rank(nranks), device, params)
        return
    ranks, device = from_environment(device)
    try:
        _run(ranks, device, **params)
    finally:
        ranks.close()


def _check_options(nranks: int, config_path: str | None, overrides: tuple[str, ...],
                   mode: str | None, method: str | None, start: str | None, days: float | None,
                   members: int | None, out: str | None, name: str | None,
                   resume: str | None) -> None:
    if resume:
        _refuse_settings_on_resume(config_path, overrides, mode, method, start, days,
                                   members, out, name)
        return
    from dafusion.cycler.ranks import Ranks, check

    cfg = _run_config(config_path, overrides, mode, method, start, days, members)
    _run_dir(cfg, out, name)
    check(Ranks(0, nranks), cfg.run.method, cfg.run.members)


def _run_config(config_path: str | None, overrides: tuple[str, ...], mode: str | None,
                method: str | None, start: str | None, days: float | None,
                members: int | None) -> Config:
    """The configuration a new run takes: the file, --set, then the typed options."""
    return with_options(load_config(config_path, list(overrides)), "run", mode=mode,
                        method=method, start=start, days=days, members=members)


def _refuse_settings_on_resume(*settings: object) -> None:
    if any(v is not None and v != () for v in settings):
        raise click.UsageError("--resume takes the run's own configuration; give no other "
                               "settings")


def _run(ranks: Ranks, device: str, config_path: str | None, overrides: tuple[str, ...],
         mode: str | None, method: str | None, start: str | None, days: float | None,
         members: int | None, out: str | None, name: str | None, resume: str | None) -> None:
    """``cycler run`` in this process (one of the ranks with --ranks or torchrun)."""
    from dafusion.cycler.run import resume_run, start_run
    from dafusion.cycler.rundir import METRICS

    progress = progress_bar if ranks.main else None
    if resume:
        _refuse_settings_on_resume(config_path, overrides, mode, method, start, days,
                                   members, out, name)
        run_dir = Path(resume)
        with _interruptible(run_dir, ranks.main):
            state = resume_run(run_dir, device=device, progress=progress, ranks=ranks)
    else:
        cfg = _run_config(config_path, overrides, mode, method, start, days, members)
        run_dir = Path(ranks.broadcast_text(str(_run_dir(cfg, out, name))))
        with _interruptible(run_dir, ranks.main):
            state = start_run(cfg, run_dir, device=device, progress=progress, ranks=ranks)
    if not ranks.main:
        return
    total = sum(r["total_s"] for r in state.tables.timing)
    click.echo(f"{run_dir}: {state.cycle} analyses, {total:.0f} s in cycles; "
               f"metrics in {run_dir / METRICS}")
    _summary(run_dir)


@contextlib.contextmanager
def _interruptible(run_dir: Path, say: bool = True) -> Iterator[None]:
    """Ctrl-C: one line saying how to continue (every file is written atomically and the
    run state last, so the directory is resumable), exit status 130; ``say``: rank 0."""
    try:
        yield
    except KeyboardInterrupt:
        if not say:
            sys.exit(130)
        if run_dir.exists():
            click.echo(f"\nInterrupted: {run_dir} is resumable: cycler run --resume {run_dir}",
                       err=True)
        else:
            click.echo("\nInterrupted before the run directory was created", err=True)
        sys.exit(130)


def _summary(run_dir: Path) -> None:
    from dafusion.cycler.campaigns.compare import compare
    from dafusion.cycler.rundir import RunDir

    table, _ = compare([run_dir])
    click.echo(table)
    rejected: dict[str, int] = {}
    for row in RunDir(run_dir).obs_rows():
        rejected[row["source"]] = rejected.get(row["source"], 0) + int(row["rejected"] or 0)
    if any(rejected.values()):
        click.echo("rejected by the background check: " + ", ".join(
            f"{source} {n}" for source, n in rejected.items() if n))


@main.command("compare")
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False, exists=True))
@click.option("--out", type=click.Path(file_okay=False),
              help="Write compare.md, compare.csv and compare.png here (campaign.* for a "
              "campaign).")
@click.option("--force", is_flag=True, help="Replace a comparison already in --out.")
@click.option("--steady-days", type=click.FloatRange(min=0, min_open=True), default=None,
              help="The steady state over the runs' last N days (default: their last third).")
@friendly
def compare_cmd(runs: tuple[str, ...], out: str | None, force: bool,
                steady_days: float | None) -> None:
    """RMSE by variable and lead day for runs over the same truth and window; one campaign
    directory (cycler sweep --starts): the settings over its windows, with confidence
    intervals and a paired comparison."""
    from dafusion.cycler.campaigns import compare as runs_compare
    from dafusion.cycler.campaigns import statistics
    from dafusion.cycler.campaigns.index import is_campaign

    twice = sorted({r for r in runs if [Path(x).resolve() for x in runs].count(
        Path(r).resolve()) > 1})
    if twice:
        raise click.UsageError(f"{', '.join(twice)}: given more than once; name each run once")
    campaign = len(runs) == 1 and is_campaign(Path(runs[0]))
    if campaign and steady_days is not None:
        raise click.UsageError("--steady-days: for runs; a campaign compares its windows")
    if out is not None and not force:
        names = statistics.FILES if campaign else runs_compare.FILES
        there = [n for n in names if (Path(out) / n).exists()]
        if there:
            raise click.ClickException(f"{out}: already holds a comparison ({', '.join(there)});"
                                       " pass --force to replace it, or another --out")
    if campaign:
        table, files = statistics.compare_campaign(Path(runs[0]), Path(out) if out else None)
    else:
        table, files = runs_compare.compare([Path(r) for r in runs], Path(out) if out else None,
                                            steady_days=steady_days)
    click.echo(table)
    for f in files:
        click.echo(f"wrote {f}")


@main.command("sweep")
@config_options
@click.option("--mode", type=_MODE)
@click.option("--method", type=_METHOD)
@click.option("--start")
@click.option("--days", type=float)
@click.option("--members", type=int)
@click.option("--starts", help="A campaign: every setting from each window start "
              "FIRST:LAST:STEP (e.g. 2020-01-01:2020-12-17:14d); runs go to "
              "runs/NAME/<setting>/<start>.")
@click.option("--name", default="sweep", show_default=True,
              help="Runs go to runs/NAME/<setting>; the comparison to runs/NAME. The same "
              "command again continues an interrupted sweep.")
@click.option("--jobs", default=1, show_default=True, type=int,
              help="Runs in parallel (separate processes; 1 = one after the other, here); "
              "with --executor slurm the array's parallelism.")
@click.option("--executor", type=click.Choice(["local", "slurm", "submitit-local"]),
              default="local", show_default=True,
              help="Where runs execute: here / child processes, Slurm array jobs through "
              "submitit, or submitit's local executor (pip install 'dafusion[slurm]').")
@click.option("--partition", help="Slurm partition (--executor slurm).")
@click.option("--time", "time_min", type=int, default=60, show_default=True,
              help="Minutes per job (submitit executors); a job reaching it is requeued "
              "and resumes its run.")
@click.option("--gpus-per-job", type=int, default=0, show_default=True,
              help="GPUs per job (submitit executors); use with --device cuda.")
@click.option("--cpus-per-job", type=int, default=0, show_default=True,
              help="CPUs per job (submitit executors; 0: the cluster's default).")
@click.option("--slurm", "slurm_options", multiple=True, metavar="KEY=VALUE",
              help="Any other sbatch option, e.g. --slurm account=abc --slurm qos=short.")
@click.option("--device", default="cpu", show_default=True)
@friendly
def sweep_cmd(config_path: str | None, overrides: tuple[str, ...], mode: str | None,
              method: str | None, start: str | None, days: float | None,
              members: int | None, starts: str | None, name: str, jobs: int,
              executor: str, partition: str | None, time_min: int, gpus_per_job: int,
              cpus_per_job: int, slurm_options: tuple[str, ...], device: str) -> None:
    """Run every combination of comma-separated --set values, then compare them.

    Example: cycler sweep --mode forecast --set run.sources.emulator.weight=0,0.5,1,2,4.
    A campaign over windows: add --starts 2020-01-01:2020-01-22:7d. On Slurm: add
    --executor slurm --partition gpu --gpus-per-job 1 --device cuda --time 120.
    """
    from dafusion.cycler.campaigns.executors import make_executor
    from dafusion.cycler.campaigns.sweep import sweep, window_starts

    fixed, axes = [], {}
    for item in overrides:
        key, _, values = item.partition("=")
        if "," in values and not values.strip().startswith(("[", "{")):
            axes[key.strip()] = values.split(",")
        else:
            fixed.append(item)
    if not axes and not starts:
        raise click.UsageError("sweep: give at least one --set key=v1,v2,... (or --starts)")
    if starts and start:
        raise click.UsageError("give --start or --starts, not both")
    cfg = with_options(load_config(config_path, fixed), "run", mode=mode, method=method,
                            start=start, days=days, members=members)
    extra = key_values(slurm_options, "--slurm")
    run_on = make_executor(executor, jobs=jobs, partition=partition, time_min=time_min,
                           gpus_per_job=gpus_per_job, cpus_per_job=cpus_per_job, slurm=extra)
    root = Path("runs") / _name(name)
    try:
        result = sweep(cfg, axes, root, device=device,
                       starts=window_starts(starts) if starts else (), executor=run_on)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the runs stopped resumable
        click.echo(f"\nInterrupted: {root} continues with the same command", err=True)
        sys.exit(130)
    click.echo(result.table)
    for f in result.files:
        click.echo(f"wrote {f}")
    if result.failed:
        raise RuntimeError(f"sweep: {len(result.failed)} run(s) failed: "
                           f"{[str(r.path) for r in result.failed]}")


@main.command("report")
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False, exists=True))
@click.option("--variables", help="Comma-separated channels (default: t850,z500,u500).")
@click.option("--cycles", help="Comma-separated cycle indices (default: first, middle, last).")
@click.option("--latitude", default=45.0, show_default=True, type=float,
              help="Latitude of the traces (°N).")
@click.option("--out", type=click.Path(file_okay=False),
              help="Output folder (default: <first run>/report).")
@friendly
def report_cmd(runs: tuple[str, ...], variables: str | None, cycles: str | None,
               latitude: float, out: str | None) -> None:
    """Figures and one Markdown page: maps, super-resolution, spectra, traces, scatter,
    skill, calibration and observation-space statistics."""
    from dafusion.cycler.reporting.report import make_report

    try:
        cyc = [int(c) for c in cycles.split(",")] if cycles else None
    except ValueError:
        raise click.BadParameter(f"{cycles!r}: expected comma-separated integers",
                                 param_hint="--cycles") from None
    page = make_report([Path(r) for r in runs], Path(out) if out else Path(runs[0]) / "report",
                       variables.split(",") if variables else None, cyc, latitude)
    n = len(list(page.parent.glob("*.png")))
    click.echo(f"wrote {page} and {n} figures")


@main.command("bench")
@config_options
@click.option("--members", type=int, help="Ensemble size (default: run.members).")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda.")
@click.option("--precision", type=click.Choice(["fp32", "tf32", "bf16"]),
              help="Default: prior.sampler.precision.")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the network "
              "(the first call's time is reported apart).")
@click.option("--channels-last", is_flag=True, help="NHWC activations.")
@click.option("--micro-batch", type=int, help="Members per guided network pass "
              "(default: prior.sampler.micro_batch; 0 = all).")
@click.option("--shape", default="128x256", show_default=True,
              help="Grid HxW of the random-weight networks (configurations without files).")
@click.option("--no-loop", is_flag=True, help="Skip the member-by-member comparison.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False),
              help="Also write the measurements as JSON.")
@click.option("--sweep-steps", "sweep_runs", is_flag=True,
              help="Cost against skill of sampler settings: RUNS (the reference first, e.g. "
              "a sweep over prior.sampler.steps/start) each timed here with its sampler, "
              "with its scores relative to the reference's.")
@click.option("--figure", type=click.Path(dir_okay=False),
              help="With --sweep-steps: skill against evaluations as a PNG.")
@click.argument("runs", nargs=-1, type=click.Path(file_okay=False, exists=True))
@friendly
def bench_cmd(config_path: str | None, overrides: tuple[str, ...], members: int | None,
              device: str, precision: str | None, compile_: bool, channels_last: bool,
              micro_batch: int | None, shape: str, no_loop: bool,
              json_out: str | None, sweep_runs: bool, figure: str | None,
              runs: tuple[str, ...]) -> None:
    """How fast one guided analysis is here, and how close to the network's own cost
    (dafusion/cycler/reporting/bench.py says what each line means); with --sweep-steps
    RUNS, the cost and skill of each run's sampler settings."""
    import json

    import torch

    from dafusion.cycler.reporting import bench
    from dafusion.io import write_text

    cfg = with_options(load_config(config_path, list(overrides)), "prior.sampler",
                       precision=precision, compile=compile_ or None,
                       channels_last=channels_last or None, micro_batch=micro_batch)
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise click.ClickException("--device cuda: no CUDA device is available")
    m = members or cfg.run.members
    if sweep_runs != bool(runs) or (sweep_runs and len(runs) < 2):
        raise click.UsageError("--sweep-steps takes two or more runs (the reference first); "
                               "runs are given only with --sweep-steps")
    if bench.files_present(cfg):
        parts = bench.demo_parts(cfg, m, dev)
    else:
        try:
            h, w = (int(v) for v in shape.lower().split("x"))
        except ValueError:
            raise click.BadParameter(f"expected HxW, got {shape!r}",
                                     param_hint="--shape") from None
        parts = bench.synthetic_parts(cfg, (len(cfg.data.channels), h, w), m, dev)
    if sweep_runs:
        rows = bench.sweep_steps(parts, cfg, [Path(r) for r in runs], members=m, device=dev)
        click.echo(bench.sweep_table(rows))
        if figure:
            click.echo(f"wrote {bench.plot_sweep(rows, Path(figure))}")
        if json_out:
            write_text(json_out, json.dumps(rows, indent=1) + "\n")
            click.echo(f"wrote {json_out}")
        return
    result = bench.run_bench(parts, cfg, members=m, device=dev, loop=not no_loop)
    click.echo(bench.table(result))
    if json_out:
        write_text(json_out, json.dumps(result, indent=1) + "\n")
        click.echo(f"wrote {json_out}")
