"""Prior commands."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from dafusion.cli.main import config_options, friendly, key_values, main, progress_bar
from dafusion.config import dump_config, load_config


@main.group()
def prior() -> None:
    """The EDM diffusion prior: train, sample."""


@prior.command("train")
@config_options
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Checkpoint directory (rewritten at every checkpoint).")
@click.option("--steps", type=int, help="Train until this many steps (default prior.train.steps).")
@click.option("--resume", is_flag=True, help="Continue from the checkpoint in --out.")
@click.option("--force", is_flag=True, help="Start again, replacing --out.")
@click.option("--executor", type=click.Choice(["local", "slurm", "submitit-local"]),
              default="local", show_default=True,
              help="local: this process (or torchrun's); slurm: one submitit job of --nodes "
              "x --tasks-per-node DDP tasks, requeued with --resume at its time limit; "
              "submitit-local: the same job on this machine.")
@click.option("--nodes", type=int, default=1, show_default=True)
@click.option("--tasks-per-node", type=int, help="DDP processes per node (default: "
              "--gpus-per-node, at least 1).")
@click.option("--gpus-per-node", type=int, default=0, show_default=True)
@click.option("--cpus-per-task", type=int, default=0, show_default=True,
              help="0: the cluster's default.")
@click.option("--partition", help="Slurm partition.")
@click.option("--time", "time_min", type=int, default=24 * 60, show_default=True,
              help="Minutes per job (a job reaching it is requeued and resumes).")
@click.option("--slurm", "slurm_options", multiple=True, metavar="KEY=VALUE",
              help="Any other sbatch option, e.g. --slurm account=abc.")
@friendly
def prior_train(config_path: str | None, overrides: tuple[str, ...], out: str,
                steps: int | None, resume: bool, force: bool, executor: str, nodes: int,
                tasks_per_node: int | None, gpus_per_node: int, cpus_per_task: int,
                partition: str | None, time_min: int, slurm_options: tuple[str, ...]) -> None:
    """Train the prior (single device, data-parallel under torchrun, or as a Slurm job).

    The batch size prior.train.batch_size is per process: N processes train with an
    effective batch of N x batch_size at the same prior.train.lr (docs/scale-out.md).
    """
    from dafusion.prior.train import train_prior

    cfg = load_config(config_path, overrides)
    if executor != "local":
        _submit_training(cfg, out, steps, resume, force, executor == "slurm", nodes,
                         tasks_per_node or max(gpus_per_node, 1), gpus_per_node,
                         cpus_per_task, partition, time_min,
                         key_values(slurm_options, "--slurm"))
        return
    record = train_prior(cfg, out, resume=resume, force=force, steps=steps, progress=progress_bar)
    last = record["loss"][-1][1] if record["loss"] else float("nan")
    click.echo(f"{out}: step {record['step']}, last loss {last:.4f}, "
               f"{record['wall_seconds']:.0f} s of training")


def _submit_training(cfg, out: str, steps: int | None, resume: bool, force: bool,  # noqa: ANN001
                     slurm: bool, nodes: int, tasks: int, gpus: int, cpus: int,
                     partition: str | None, time_min: int, extra: dict[str, str]) -> None:
    """One submitit job of ``nodes x tasks`` DDP processes; waits for it on this machine
    (submitit-local), returns after submitting it to Slurm."""
    from dafusion.io import write_text
    from dafusion.prior.train import PriorTrainJob

    if min(nodes, tasks, time_min) < 1 or min(gpus, cpus) < 0:
        raise click.BadParameter("--nodes, --tasks-per-node and --time must be >= 1; "
                                 "--gpus-per-node and --cpus-per-task >= 0")
    if not slurm and (nodes > 1 or partition or extra):
        raise click.BadParameter("--nodes > 1, --partition and --slurm need --executor slurm")
    try:
        import submitit
    except ImportError:
        raise click.ClickException("--executor slurm/submitit-local needs submitit: "
                                   "pip install 'dafusion[slurm]'") from None
    folder = Path(out).with_name(Path(out).name + ".jobs")
    folder.mkdir(parents=True, exist_ok=True)
    config = write_text(folder / "config.yaml", dump_config(cfg))
    params: dict = {"nodes": nodes, "tasks_per_node": tasks, "gpus_per_node": gpus,
                    "timeout_min": time_min}
    if cpus:
        params["cpus_per_task"] = cpus
    if partition:
        params["slurm_partition"] = partition
    if extra:
        params["slurm_additional_parameters"] = extra
    ex = submitit.AutoExecutor(folder=folder, cluster="slurm" if slurm else "local")
    ex.update_parameters(name="cycler-prior", **params)
    job = ex.submit(PriorTrainJob(), str(config), out, steps, resume, force)
    click.echo(f"submitted job {job.job_id}: {nodes} x {tasks} tasks; logs in {folder}")
    if slurm:
        click.echo(f"when it ends: cycler prior report --checkpoint {out} --out {out}/report")
        return
    record = job.results()[0]
    click.echo(f"{out}: step {record['step']}, {record['wall_seconds']:.0f} s of training")


@prior.command("export")
@click.argument("checkpoint", type=click.Path(file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False))
@click.option("--half", is_flag=True, help="Store the weights as float16.")
@click.option("--force", is_flag=True)
@friendly
def prior_export(checkpoint: str, out: str, half: bool, force: bool) -> None:
    """Copy a checkpoint without its training state (for shipping)."""
    from dafusion.prior.checkpoint import export_prior

    path = export_prior(checkpoint, out, half=half, force=force)
    size = sum(f.stat().st_size for f in path.iterdir())
    click.echo(f"wrote {path} ({size / 1e6:.2f} MB)")


@prior.command("sample")
@config_options
@click.option("--checkpoint", type=click.Path(file_okay=False),
              help="Checkpoint directory (default: prior.checkpoint, else the demo prior).")
@click.option("-n", "--members", default=8, show_default=True, type=int)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--out", required=True, type=click.Path(dir_okay=False))
@click.option("--device", default="cpu", show_default=True)
@click.option("--force", is_flag=True)
@friendly
def prior_sample(config_path: str | None, overrides: tuple[str, ...], checkpoint: str | None,
                 members: int, seed: int, out: str, device: str, force: bool) -> None:
    """Unconditional samples in physical units (CF netCDF)."""
    from dafusion.io import state_dataset, write_netcdf
    from dafusion.prior import demo_prior_path
    from dafusion.prior.checkpoint import load_prior
    from dafusion.prior.sampler import unconditional_samples

    cfg = load_config(config_path, overrides)
    if members < 1:
        raise click.ClickException(f"-n/--members must be >= 1, got {members}")
    if Path(out).exists() and not force:
        raise click.ClickException(f"{out}: already exists; pass --force to overwrite")
    path = checkpoint or cfg.prior.checkpoint or demo_prior_path()
    denoiser, normaliser, meta = load_prior(path, device=device)
    values = unconditional_samples(denoiser, normaliser, (len(meta.channels),) + meta.grid.shape,
                                   cfg.prior.sampler, members, seed, device, progress_bar)
    ds = state_dataset(values, meta.channels, meta.grid, attrs={
        "title": "dafusion unconditional prior samples", "checkpoint": Path(path).name,
        "seed": seed, "dafusion_config": dump_config(cfg)})
    write_netcdf(ds, out, force=force)
    click.echo(f"wrote {out}: {members} samples on {meta.grid.name}")


@prior.command("report")
@config_options
@click.option("--checkpoint", type=click.Path(file_okay=False),
              help="Checkpoint directory (default: prior.checkpoint, else the demo prior).")
@click.option("--data", "data_path", type=click.Path(),
              help="Reference data (default: data.path; else the shipped demo truth).")
@click.option("-n", "--members", default=16, show_default=True, type=int)
@click.option("--data-times", default=64, show_default=True, type=int,
              help="Evenly spaced reference times from the validation period.")
@click.option("--lmax", default=21, show_default=True, type=int,
              help="Highest total wavenumber compared (T21 truth: 21).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--out", required=True, type=click.Path(file_okay=False))
@friendly
def prior_report(config_path: str | None, overrides: tuple[str, ...], checkpoint: str | None,
                 data_path: str | None, members: int, data_times: int, lmax: int, seed: int,
                 out: str) -> None:
    """Quality report: sample vs data statistics, zonal means, power spectra."""
    from dafusion.data import GriddedSource, demo_truth_path
    from dafusion.prior import demo_prior_path
    from dafusion.prior.checkpoint import load_prior
    from dafusion.prior.quality import compare, write_report
    from dafusion.prior.sampler import unconditional_samples

    cfg = load_config(config_path, overrides)
    path = checkpoint or cfg.prior.checkpoint or demo_prior_path()
    denoiser, normaliser, meta = load_prior(path)
    reference = data_path or (cfg.data.path if Path(cfg.data.path).exists() else demo_truth_path())
    source = GriddedSource.open(reference, meta.channels)
    if source.grid != meta.grid:
        raise click.ClickException(f"{reference}: grid {source.grid.name} is not the "
                                   f"checkpoint's {meta.grid.name}")
    stack = source.stack(cfg.data.valid_start, cfg.data.valid_end)
    if stack.sizes["time"] == 0:
        stack = source.stack()
    idx = np.unique(np.linspace(0, stack.sizes["time"] - 1, data_times).astype(int))
    data = stack.isel(time=idx).values
    samples = unconditional_samples(denoiser, normaliser, (len(meta.channels),) + meta.grid.shape,
                                    cfg.prior.sampler, members, seed, progress=progress_bar)
    report = compare(samples, data, meta.channels, meta.grid, lmax)
    times = stack["time"].values[idx]
    report.update(checkpoint=_display(path), n_samples=members, n_data=int(idx.size),
                  data=_display(reference),
                  data_span=f"{str(times[0])[:16]} .. {str(times[-1])[:16]}",
                  sampler=dump_config(cfg.prior.sampler))
    files = write_report(report, [source.channels[i].units for i in range(len(meta.channels))],
                         out)
    click.echo((Path(out) / "quality.md").read_text())
    click.echo("wrote " + ", ".join(str(f) for f in files))




def _display(path: str | Path) -> str:
    """A path as a reader should see it: package files relative to the package."""
    import dafusion

    package = Path(dafusion.__file__).resolve().parent
    resolved = Path(path).resolve()
    if resolved.is_relative_to(package):
        return str(Path("dafusion") / resolved.relative_to(package))
    return str(path)
