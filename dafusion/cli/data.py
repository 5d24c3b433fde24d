"""Data commands."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from dafusion.cli.main import config_options, friendly, main
from dafusion.config import load_config


@main.group()
def data() -> None:
    """Read ERA5-like gridded data (zarr, netCDF, GRIB)."""


@data.command("inspect")
@click.argument("path", type=click.Path(), required=False)
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Use data.channels from this configuration.")
@click.option("--channels", help="Comma-separated channels, e.g. t850,z500,sp.")
@click.option("--member", type=int, help="One member of an ensemble file (its 'number').")
@friendly
def data_inspect(path: str | None, config_path: str | None, channels: str | None,
                 member: int | None) -> None:
    """Print channels, units, grid, time range and per-channel statistics of
    PATH (default: the shipped demo truth). PATH may be an fsspec URL of a zarr
    store (e.g. gs://...; the 'cloud' extra)."""
    from dafusion.data import (
        GriddedSource,
        available_channels,
        demo_truth_path,
        describe,
        no_channel_reason,
        open_dataset,
    )

    path = path or demo_truth_path()
    if channels:
        names = channels.split(",")
    elif config_path:
        cfg = load_config(config_path)
        names, member = cfg.data.channels, member if member is not None else cfg.data.member
    else:
        ds = open_dataset(path, member)
        names = available_channels(ds)
        if not names:
            raise click.ClickException(f"{path}: {no_channel_reason(ds)}")
    click.echo(describe(GriddedSource.open(path, names, member=member)))


@data.command("export")
@click.argument("path", type=click.Path())
@click.option("--out", required=True, type=click.Path(dir_okay=False))
@click.option("--start", required=True, help="First valid time (ISO).")
@click.option("--end", required=True, help="Last valid time (ISO), inclusive.")
@click.option("--every", "every_hours", default=12, show_default=True, type=int,
              help="Keep valid times whose hour is a multiple of this.")
@click.option("--channels", help="Comma-separated channels (default: data.channels).")
@click.option("--no-pack", is_flag=True, help="Store float32 instead of packed int16.")
@click.option("--member", type=int, help="One member of an ensemble file (its 'number').")
@click.option("--force", is_flag=True)
@config_options
@friendly
def data_export(path: str, out: str, start: str, end: str, every_hours: int,
                channels: str | None, no_pack: bool, member: int | None, force: bool,
                config_path: str | None, overrides: tuple[str, ...]) -> None:
    """Write a time window as compact WeatherBench-2-layout netCDF."""
    from dafusion.data import GriddedSource, export

    cfg = load_config(config_path, overrides)
    names = channels.split(",") if channels else cfg.data.channels
    source = GriddedSource.open(path, names,
                                member=member if member is not None else cfg.data.member)
    command = " ".join(["cycler", "data", "export", Path(path).name] + sys.argv[4:])
    export(source, out, start=start, end=end, every_hours=every_hours, pack=not no_pack,
           force=force, attrs={"history": command},
           warn=lambda text: click.echo(f"Warning: {text}", err=True))
    click.echo(f"wrote {out} ({Path(out).stat().st_size / 1e6:.2f} MB)")


@data.command("normaliser")
@click.option("--data", "data_path", type=click.Path(),
              help="Training data (default: data.path of the configuration).")
@click.option("--out", required=True, type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True)
@config_options
@friendly
def data_normaliser(data_path: str | None, out: str, force: bool, config_path: str | None,
                    overrides: tuple[str, ...]) -> None:
    """Compute per-channel normalisation statistics over the training period."""
    from dafusion.data import GriddedSource
    from dafusion.normalise import Normaliser

    cfg = load_config(config_path, overrides)
    if Path(out).exists() and not force:
        raise click.ClickException(f"{out}: already exists; pass --force to overwrite")
    source = GriddedSource.open(data_path or cfg.data.path, cfg.data.channels,
                                member=cfg.data.member)
    stack = source.stack(cfg.data.train_start, cfg.data.train_end)
    if stack.sizes["time"] == 0:
        raise click.ClickException(f"{source.path}: no times in the training period "
                                   f"{cfg.data.train_start} .. {cfg.data.train_end}")
    norm = Normaliser.fit(stack, source.grid)
    norm.save(out)
    click.echo(f"wrote {out} from {stack.sizes['time']} times")
    for name, mean, std in zip(norm.channels, norm.mean, norm.std):
        click.echo(f"{name:<8} mean {mean:12.5g}  std {std:10.4g}")


