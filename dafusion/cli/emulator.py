"""Emulator commands."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import numpy as np

from dafusion.cli.main import config_options, friendly, main, progress_bar
from dafusion.config import dump_config, load_config


@main.group()
def emulator() -> None:
    """The SFNO forecast emulator: train, forecast, skill report, LUCIE import."""


def _checkpoint(cfg, checkpoint: str | None) -> str:  # noqa: ANN001
    from dafusion.emulator.checkpoint import demo_emulator_path

    return checkpoint or cfg.emulator.checkpoint or str(demo_emulator_path())


@emulator.command("train")
@config_options
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Checkpoint directory (rewritten at every checkpoint).")
@click.option("--steps", type=int, help="Train until this many steps "
                                        "(default emulator.train.steps).")
@click.option("--resume", is_flag=True, help="Continue from the checkpoint in --out.")
@click.option("--force", is_flag=True, help="Start again, replacing --out.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--init-from", type=click.Path(file_okay=False, exists=True),
              help="Start from this checkpoint's weights (fine-tuning).")
@friendly
def emulator_train(config_path: str | None, overrides: tuple[str, ...], out: str,
                   steps: int | None, resume: bool, force: bool, device: str,
                   init_from: str | None) -> None:
    """Train the emulator on the truth data regridded to the emulator grid."""
    from dafusion.emulator.train import train_emulator

    cfg = load_config(config_path, overrides)
    record = train_emulator(cfg, out, resume=resume, force=force, steps=steps, device=device,
                            init_from=init_from, progress=progress_bar)
    last = record["valid_loss"][-1][1] if record["valid_loss"] else float("nan")
    click.echo(f"{out}: step {record['step']}, validation loss {last:.4f} (1 = persistence), "
               f"{record['wall_seconds']:.0f} s of training")


@emulator.command("export")
@click.argument("checkpoint", type=click.Path(file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False))
@click.option("--force", is_flag=True)
@friendly
def emulator_export(checkpoint: str, out: str, force: bool) -> None:
    """Copy a checkpoint without its training state (for shipping)."""
    from dafusion.emulator.checkpoint import load_emulator, read_record, save_emulator

    if Path(out).exists() and not force:
        raise FileExistsError(f"{out}: already exists; pass --force to overwrite")
    model = load_emulator(checkpoint)
    record = {k: v for k, v in read_record(checkpoint).items() if k != "weights_sha256"}
    path = save_emulator(out, model, record)
    size = sum(f.stat().st_size for f in path.iterdir())
    click.echo(f"wrote {path} ({size / 1e6:.2f} MB)")


@emulator.command("forecast")
@config_options
@click.option("--checkpoint", type=click.Path(file_okay=False),
              help="Checkpoint (default: emulator.checkpoint, else the demo emulator).")
@click.option("--truth", type=click.Path(), help="Truth data for the initial state "
                                                 "(default: the shipped demo truth).")
@click.option("--init", "init", required=True, help="Valid time of the initial state.")
@click.option("--days", default=7.0, show_default=True, type=float)
@click.option("--out", required=True, type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True)
@friendly
def emulator_forecast(config_path: str | None, overrides: tuple[str, ...],
                      checkpoint: str | None, truth: str | None, init: str, days: float,
                      out: str, force: bool) -> None:
    """Forecast from the truth at INIT (regridded to the emulator grid); write netCDF."""
    from dafusion.data import GriddedSource, demo_truth_path
    from dafusion.emulator.checkpoint import load_emulator
    from dafusion.emulator.states import initial_state
    from dafusion.io import forecast_dataset, write_netcdf

    cfg = load_config(config_path, overrides)
    if Path(out).exists() and not force:
        raise FileExistsError(f"{out}: already exists; pass --force to overwrite")
    path = _checkpoint(cfg, checkpoint)
    model = load_emulator(path)
    source = GriddedSource.open(truth or demo_truth_path(), model.channels,
                                member=cfg.data.member)
    try:
        t0 = np.datetime64(init, "ns")
    except ValueError:
        raise ValueError(f"--init {init!r}: not a date/time") from None
    hours = model.meta.time_step_hours
    if (days * 24) % hours:
        raise ValueError(f"--days {days}: not a whole number of {hours}-hour steps")
    state = initial_state(source, t0, model, cfg.emulator.regrid)
    fc = model.forecast(state, int(days * 24 // hours))
    ds = forecast_dataset(fc, model.grid, attrs={
        "title": "dafusion emulator forecast", "emulator": Path(path).name,
        "initial_state": f"{Path(source.path).name} regridded ({cfg.emulator.regrid})",
        "command": " ".join(["cycler"] + sys.argv[1:]), "dafusion_config": dump_config(cfg)})
    write_netcdf(ds, out, force=force)
    click.echo(f"wrote {out}: {fc.sizes['lead']} steps of {hours} h from {str(t0)[:16]} on "
               f"{model.grid.name}")


@emulator.command("report")
@config_options
@click.option("--checkpoint", type=click.Path(file_okay=False),
              help="Checkpoint (default: emulator.checkpoint, else the demo emulator).")
@click.option("--truth", type=click.Path(), help="Truth data (default: data.path).")
@click.option("--start", default="2020-01-01T00", show_default=True,
              help="First initial time (keep it outside the training period).")
@click.option("--inits", default=12, show_default=True, type=int)
@click.option("--every-days", default=4.0, show_default=True, type=float)
@click.option("--days", default=7.0, show_default=True, type=float, help="Forecast length.")
@click.option("--free-days", default=30.0, show_default=True, type=float)
@click.option("--out", required=True, type=click.Path(file_okay=False))
@friendly
def emulator_report(config_path: str | None, overrides: tuple[str, ...],
                    checkpoint: str | None, truth: str | None, start: str, inits: int,
                    every_days: float, days: float, free_days: float, out: str) -> None:
    """Skill vs persistence and climatology, and a free run's climate."""
    from dafusion.data import GriddedSource, is_url
    from dafusion.emulator.checkpoint import load_emulator
    from dafusion.emulator.skill import skill_report, write_report

    cfg = load_config(config_path, overrides)
    path = _checkpoint(cfg, checkpoint)
    model = load_emulator(path)
    truth_path = truth or cfg.data.path
    if not is_url(truth_path) and not Path(truth_path).exists():
        raise FileNotFoundError(
            f"{truth_path}: no truth; make the nature run first (cycler world generate "
            f"--config configs/osse.yaml --out {truth_path}) or pass --truth, e.g. the shipped "
            "demo truth (python -c 'import dafusion.data as d; print(d.demo_truth_path())') "
            "with --inits 6 --every-days 3 --days 7 --free-days 20")
    source = GriddedSource.open(truth_path, model.channels, member=cfg.data.member)
    result = {"checkpoint": Path(path).name, **skill_report(
        model, source, start=start, inits=inits, every_days=every_days, days=days,
        free_days=free_days, regrid=cfg.emulator.regrid,
        train_period=(cfg.data.train_start, cfg.data.train_end), progress=progress_bar,
        warn=lambda text: click.echo(f"warning: {text}", err=True)),
        "command": " ".join(["cycler"] + sys.argv[1:])}
    for f in write_report(result, Path(out)):
        click.echo(f"wrote {f}")


@emulator.command("errors")
@config_options
@click.option("--checkpoint", type=click.Path(file_okay=False),
              help="Checkpoint (default: emulator.checkpoint, else the demo emulator).")
@click.option("--truth", required=True, type=click.Path(exists=True),
              help="Truth the evaluation never sees (e.g. a nature run of another world seed).")
@click.option("--start", required=True, help="First initial time (ISO).")
@click.option("--end", required=True, help="Last initial time (ISO), inclusive.")
@click.option("--every-hours", default=12, show_default=True, type=int)
@click.option("--days", default=7.0, show_default=True, type=float, help="Longest lead.")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="netCDF to write; errors.nc in the checkpoint is found by default.")
@click.option("--force", is_flag=True)
@friendly
def emulator_errors(config_path: str | None, overrides: tuple[str, ...],
                    checkpoint: str | None, truth: str, start: str, end: str, every_hours: int,
                    days: float, out: str, force: bool) -> None:
    """Forecast-error spectra per lead and channel: the pseudo-observation's error model."""
    from dafusion.data import GriddedSource
    from dafusion.emulator.checkpoint import load_emulator
    from dafusion.emulator.errors import error_statistics, point_rmse
    from dafusion.io import write_netcdf

    cfg = load_config(config_path, overrides)
    if Path(out).exists() and not force:
        raise FileExistsError(f"{out}: already exists; pass --force to overwrite")
    path = _checkpoint(cfg, checkpoint)
    model = load_emulator(path)
    source = GriddedSource.open(truth, model.channels, member=cfg.data.member)
    first, last = (_time(value, key) for value, key in ((start, "--start"), (end, "--end")))
    inits = np.arange(first, last + np.timedelta64(1, "s"),
                      np.timedelta64(every_hours, "h")).astype("datetime64[ns]")
    hours = model.meta.time_step_hours
    if (days * 24) % hours:
        raise ValueError(f"--days {days}: not a whole number of {hours}-hour steps")
    stats = error_statistics(model, source, inits, int(days * 24 // hours),
                             cfg.emulator.regrid, progress=progress_bar)
    stats.attrs.update({"emulator": Path(path).name,
                        "command": " ".join(["cycler"] + sys.argv[1:])})
    write_netcdf(stats, out, force=force)
    rmse = point_rmse(stats)
    click.echo(f"wrote {out}: {inits.size} initial times, leads "
               f"{int(stats.lead_hours[0])}..{int(stats.lead_hours[-1])} h; error std at a point:")
    for lead in (12, 72, 168):
        if lead in stats.lead_hours:
            row = rmse.sel(lead_hours=lead)
            click.echo(f"  {lead:4d} h  " + "  ".join(
                f"{c} {float(v):.3g}" for c, v in zip(model.channels, row.values)))


def _time(value: str, key: str) -> np.datetime64:
    try:
        return np.datetime64(value, "ns")
    except ValueError:
        raise ValueError(f"{key} {value!r}: not a date/time") from None


@emulator.command("import-lucie")
@config_options
@click.option("--weights", required=True, type=click.Path(dir_okay=False, exists=True),
              help="LUCIE's state_dict (.pth).")
@click.option("--stats", "stats_file", required=True,
              type=click.Path(dir_okay=False, exists=True),
              help="LUCIE's preprocessed data file (.npz) with the statistics.")
@click.option("--out", required=True, type=click.Path(file_okay=False))
@click.option("--force", is_flag=True)
@friendly
def emulator_import_lucie(config_path: str | None, overrides: tuple[str, ...], weights: str,
                          stats_file: str, out: str, force: bool) -> None:
    """Turn a LUCIE checkpoint into a dafusion emulator (use --config configs/lucie.yaml)."""
    from dafusion.emulator.checkpoint import import_lucie, load_emulator

    cfg = load_config(config_path, overrides)
    path = import_lucie(weights, stats_file, cfg.emulator, out, force=force)
    info = load_emulator(path).describe()
    click.echo(f"wrote {path}: {info['parameters']:,} parameters on {info['grid']}, "
               f"channels {info['channels']} + diagnostics {info['diagnostics']}")
