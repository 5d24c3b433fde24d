"""The ``cycler`` command line. Click stays here, at the edge: every command
resolves a typed configuration, calls the library, and turns the library's
boundary errors into one clear message and exit status 1."""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import click
import numpy as np

from dafusion import __version__
from dafusion.config import ConfigError, dump_config, load_config

_USER_ERRORS = (ConfigError, ValueError, FileExistsError, FileNotFoundError, RuntimeError)


def _friendly(fn: Callable) -> Callable:
    """Report the library's boundary errors as ``Error: <message>``, exit 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except _USER_ERRORS as err:
            raise click.ClickException(str(err)) from err

    return wrapper


def _config_options(fn: Callable) -> Callable:
    fn = click.option("--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE",
                      help="Override a configuration value (repeatable).")(fn)
    return click.option("--config", "config_path", type=click.Path(dir_okay=False),
                        help="YAML configuration file (defaults if omitted).")(fn)


@contextlib.contextmanager
def _bar(total: int, desc: str) -> Iterator[Any]:
    from tqdm import tqdm

    with tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True,
              disable=None, file=sys.stderr) as bar:
        yield bar


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cycler")
def main() -> None:
    """dafusion: data assimilation cycling with a diffusion prior and an emulator."""


# --------------------------------------------------------------------------- config


@main.group()
def config() -> None:
    """Inspect configurations."""


@config.command("show")
@_config_options
@_friendly
def config_show(config_path: str | None, overrides: tuple[str, ...]) -> None:
    """Print the resolved configuration (file + --set overrides + defaults)."""
    click.echo(dump_config(load_config(config_path, overrides)), nl=False)


# --------------------------------------------------------------------------- world


@main.group()
def world() -> None:
    """The Held-Suarez OSSE world (needs the 'world' extra)."""


@world.command("generate")
@_config_options
@click.option("--out", default="data/world.zarr", show_default=True,
              type=click.Path(), help="Zarr store to write (WeatherBench-2 layout).")
@click.option("--days", type=float, help="Shortcut for --set world.days=N.")
@click.option("--force", is_flag=True, help="Overwrite an existing store.")
@click.option("--resume", is_flag=True, help="Continue an interrupted generation.")
@_friendly
def world_generate(config_path: str | None, overrides: tuple[str, ...], out: str,
                   days: float | None, force: bool, resume: bool) -> None:
    """Spin up Held-Suarez and write a 6-hourly nature run."""
    from dafusion.world import generate_world

    if days is not None:
        overrides = overrides + (f"world.days={days}",)
    cfg = load_config(config_path, overrides)
    timing = generate_world(cfg.world, out, force=force, resume=resume, progress=_bar)
    rate = timing["simulated_days"] / max(timing["seconds"], 1e-9)
    click.echo(f"wrote {out}: {timing['simulated_days']:g} simulated days in "
               f"{timing['seconds']:.1f} s ({rate:.2f} days/s, spin-up excluded)")


# --------------------------------------------------------------------------- data


@main.group()
def data() -> None:
    """Read ERA5-like gridded data (zarr, netCDF, GRIB)."""


@data.command("inspect")
@click.argument("path", type=click.Path(), required=False)
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Use data.channels from this configuration.")
@click.option("--channels", help="Comma-separated channels, e.g. t850,z500,sp.")
@_friendly
def data_inspect(path: str | None, config_path: str | None, channels: str | None) -> None:
    """Print channels, units, grid, time range and per-channel statistics of
    PATH (default: the shipped demo truth)."""
    from dafusion.data import (GriddedSource, available_channels, demo_truth_path, describe,
                               open_dataset)

    path = path or demo_truth_path()
    if channels:
        names = channels.split(",")
    elif config_path:
        names = load_config(config_path).data.channels
    else:
        names = available_channels(open_dataset(path))
    click.echo(describe(GriddedSource.open(path, names)))


@data.command("export")
@click.argument("path", type=click.Path())
@click.option("--out", required=True, type=click.Path(dir_okay=False))
@click.option("--start", required=True, help="First valid time (ISO).")
@click.option("--end", required=True, help="Last valid time (ISO), inclusive.")
@click.option("--every", "every_hours", default=12, show_default=True, type=int,
              help="Keep valid times whose hour is a multiple of this.")
@click.option("--channels", help="Comma-separated channels (default: data.channels).")
@click.option("--no-pack", is_flag=True, help="Store float32 instead of packed int16.")
@click.option("--force", is_flag=True)
@_config_options
@_friendly
def data_export(path: str, out: str, start: str, end: str, every_hours: int,
                channels: str | None, no_pack: bool, force: bool,
                config_path: str | None, overrides: tuple[str, ...]) -> None:
    """Write a time window as compact WeatherBench-2-layout netCDF."""
    from dafusion.data import GriddedSource, export

    cfg = load_config(config_path, overrides)
    names = channels.split(",") if channels else cfg.data.channels
    source = GriddedSource.open(path, names)
    command = " ".join(["cycler", "data", "export", Path(path).name] + sys.argv[4:])
    export(source, out, start=start, end=end, every_hours=every_hours, pack=not no_pack,
           force=force, attrs={"history": command})
    click.echo(f"wrote {out} ({Path(out).stat().st_size / 1e6:.2f} MB)")


@data.command("normaliser")
@click.option("--data", "data_path", type=click.Path(),
              help="Training data (default: data.path of the configuration).")
@click.option("--out", required=True, type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True)
@_config_options
@_friendly
def data_normaliser(data_path: str | None, out: str, force: bool, config_path: str | None,
                    overrides: tuple[str, ...]) -> None:
    """Compute per-channel normalisation statistics over the training period."""
    from dafusion.data import GriddedSource
    from dafusion.normalise import Normaliser

    cfg = load_config(config_path, overrides)
    if Path(out).exists() and not force:
        raise click.ClickException(f"{out}: already exists; pass --force to overwrite")
    source = GriddedSource.open(data_path or cfg.data.path, cfg.data.channels)
    stack = source.stack(cfg.data.train_start, cfg.data.train_end)
    if stack.sizes["time"] == 0:
        raise click.ClickException(f"{source.path}: no times in the training period "
                                   f"{cfg.data.train_start} .. {cfg.data.train_end}")
    norm = Normaliser.fit(stack, source.grid)
    norm.save(out)
    click.echo(f"wrote {out} from {stack.sizes['time']} times")
    for name, mean, std in zip(norm.channels, norm.mean, norm.std):
        click.echo(f"{name:<8} mean {mean:12.5g}  std {std:10.4g}")


# --------------------------------------------------------------------------- prior


@main.group()
def prior() -> None:
    """The EDM diffusion prior: train, sample."""


@prior.command("train")
@_config_options
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Checkpoint directory (rewritten at every checkpoint).")
@click.option("--steps", type=int, help="Train until this many steps (default prior.train.steps).")
@click.option("--resume", is_flag=True, help="Continue from the checkpoint in --out.")
@click.option("--force", is_flag=True, help="Start again, replacing --out.")
@_friendly
def prior_train(config_path: str | None, overrides: tuple[str, ...], out: str,
                steps: int | None, resume: bool, force: bool) -> None:
    """Train the prior (single device, or data-parallel under torchrun)."""
    from dafusion.prior.train import train_prior

    cfg = load_config(config_path, overrides)
    record = train_prior(cfg, out, resume=resume, force=force, steps=steps, progress=_bar)
    last = record["loss"][-1][1] if record["loss"] else float("nan")
    click.echo(f"{out}: step {record['step']}, last loss {last:.4f}, "
               f"{record['wall_seconds']:.0f} s of training")


@prior.command("export")
@click.argument("checkpoint", type=click.Path(file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False))
@click.option("--half", is_flag=True, help="Store the weights as float16.")
@click.option("--force", is_flag=True)
@_friendly
def prior_export(checkpoint: str, out: str, half: bool, force: bool) -> None:
    """Copy a checkpoint without its training state (for shipping)."""
    from dafusion.prior.checkpoint import export_checkpoint

    path = export_checkpoint(checkpoint, out, half=half, force=force)
    size = sum(f.stat().st_size for f in path.iterdir())
    click.echo(f"wrote {path} ({size / 1e6:.2f} MB)")


@prior.command("sample")
@_config_options
@click.option("--checkpoint", type=click.Path(file_okay=False),
              help="Checkpoint directory (default: prior.checkpoint, else the demo prior).")
@click.option("-n", "--members", default=8, show_default=True, type=int)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--out", required=True, type=click.Path(dir_okay=False))
@click.option("--device", default="cpu", show_default=True)
@click.option("--force", is_flag=True)
@_friendly
def prior_sample(config_path: str | None, overrides: tuple[str, ...], checkpoint: str | None,
                 members: int, seed: int, out: str, device: str, force: bool) -> None:
    """Unconditional samples in physical units (CF netCDF)."""
    from dafusion.io import state_dataset, write_netcdf
    from dafusion.prior import demo_prior_path
    from dafusion.prior.checkpoint import load_prior
    from dafusion.prior.sampler import PosteriorSampler, member_generators

    cfg = load_config(config_path, overrides)
    if members < 1:
        raise click.ClickException(f"-n/--members must be >= 1, got {members}")
    if Path(out).exists() and not force:
        raise click.ClickException(f"{out}: already exists; pass --force to overwrite")
    path = checkpoint or cfg.prior.checkpoint or demo_prior_path()
    denoiser, normaliser, meta = load_prior(path, device=device)
    shape = (len(meta.channels),) + meta.grid.shape
    with _bar(cfg.prior.sampler.steps, "sampling") as bar:
        sampler = PosteriorSampler(cfg.prior.sampler, callback=lambda i, x: bar.update(1))
        x = sampler(denoiser, shape, member_generators(seed, range(members), device),
                    device=device)
    values = normaliser.denormalise(x.detach().cpu().numpy().astype(np.float64))
    ds = state_dataset(values, meta.channels, meta.grid, attrs={
        "title": "dafusion unconditional prior samples", "checkpoint": Path(path).name,
        "seed": seed, "dafusion_config": dump_config(cfg)})
    write_netcdf(ds, out, force=force)
    click.echo(f"wrote {out}: {members} samples on {meta.grid.name}")


@prior.command("report")
@_config_options
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
@_friendly
def prior_report(config_path: str | None, overrides: tuple[str, ...], checkpoint: str | None,
                 data_path: str | None, members: int, data_times: int, lmax: int, seed: int,
                 out: str) -> None:
    """Quality report: sample vs data statistics, zonal means, power spectra."""
    from dafusion.data import GriddedSource, demo_truth_path
    from dafusion.prior import demo_prior_path
    from dafusion.prior.checkpoint import load_prior
    from dafusion.prior.quality import compare, write_report
    from dafusion.prior.sampler import PosteriorSampler, member_generators

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
    shape = (len(meta.channels),) + meta.grid.shape
    with _bar(cfg.prior.sampler.steps, "sampling") as bar:
        sampler = PosteriorSampler(cfg.prior.sampler, callback=lambda i, x: bar.update(1))
        x = sampler(denoiser, shape, member_generators(seed, range(members)))
    samples = normaliser.denormalise(x.detach().numpy().astype(np.float64))
    report = compare(samples, data, meta.channels, meta.grid, lmax)
    times = stack["time"].values[idx]
    report.update(checkpoint=str(path), n_samples=members, n_data=int(idx.size),
                  data=str(reference), data_span=f"{str(times[0])[:16]} .. {str(times[-1])[:16]}",
                  sampler=dump_config(cfg.prior.sampler))
    files = write_report(report, [source.channels[i].units for i in range(len(meta.channels))],
                         out)
    click.echo((Path(out) / "quality.md").read_text())
    click.echo("wrote " + ", ".join(str(f) for f in files))


# --------------------------------------------------------------------------- obs


@main.group()
def obs() -> None:
    """Observation tables."""


@obs.command("synth")
@click.option("--truth", type=click.Path(), help="Truth data (default: shipped demo truth).")
@click.option("--out", required=True, type=click.Path(dir_okay=False))
@click.option("--station-list", type=click.Path(dir_okay=False),
              help="IGRA2 station list: place stations at its coordinates.")
@click.option("--start", help="First valid time (default: start of the truth).")
@click.option("--end", help="Last valid time (default: end of the truth).")
@click.option("--force", is_flag=True)
@_config_options
@_friendly
def obs_synth(truth: str | None, out: str, station_list: str | None, start: str | None,
              end: str | None, force: bool, config_path: str | None,
              overrides: tuple[str, ...]) -> None:
    """Observe the truth with a radiosonde-like network; write the observation table."""
    from dafusion.data import GriddedSource, demo_truth_path
    from dafusion.obs.synth import land_network, station_list_network, synthesise
    from dafusion.obs.table import write_table

    if station_list:
        overrides = overrides + (f"obs.station_list={json.dumps(station_list)}",)
    cfg = load_config(config_path, overrides)
    if Path(out).exists() and not force:
        raise click.ClickException(f"{out}: already exists; pass --force to overwrite")
    source = GriddedSource.open(truth or demo_truth_path(), cfg.data.channels)
    if cfg.obs.station_list:
        network = station_list_network(cfg.obs.station_list, cfg.obs.n_stations, cfg.obs.seed)
    else:
        network = land_network(cfg.obs.n_stations, cfg.obs.northern_fraction, cfg.obs.seed)
    table = synthesise(source, network, cfg.obs, start, end)
    write_table(table, out, force=force,
                attrs={"dafusion_config": dump_config(cfg), "truth": Path(source.path).name})
    click.echo(f"wrote {out}: {len(table)} observations from {network.lat.size} stations")


@obs.command("import-igra")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False))
@click.option("--station-list", type=click.Path(dir_okay=False),
              help="IGRA2 station list: fixed stations take its coordinates.")
@click.option("--levels", default="850,500", show_default=True, help="Pressure levels, hPa.")
@click.option("--times", default="00,12", show_default=True, help="Synoptic hours, UTC.")
@click.option("--window", default="3h", show_default=True,
              help="Largest distance from a synoptic hour, e.g. 3h or 90m.")
@click.option("--variables", help="Comma-separated long names (default: those with an "
              "error std in obs.error_std).")
@click.option("--force", is_flag=True)
@_config_options
@_friendly
def obs_import_igra(files: tuple[str, ...], out: str, station_list: str | None, levels: str,
                    times: str, window: str, variables: str | None, force: bool,
                    config_path: str | None, overrides: tuple[str, ...]) -> None:
    """Convert IGRA2 sounding files (text or .zip) into an observation table."""
    from dafusion.obs.igra_import import SUPPORTED, ImportSettings, import_igra
    from dafusion.obs.table import write_table

    cfg = load_config(config_path, overrides)
    if Path(out).exists() and not force:
        raise click.ClickException(f"{out}: already exists; pass --force to overwrite")
    names = (variables.split(",") if variables
             else [v for v in SUPPORTED if v in cfg.obs.error_std])
    settings = ImportSettings(_int_list(levels, "--levels"), _int_list(times, "--times"),
                              _hours(window), names, cfg.obs.error_std)
    table, rejected = import_igra(list(files), settings, station_list=station_list)
    click.echo("rejected (count, reason):\n" + rejected.report())
    if len(table) == 0:
        raise click.ClickException("no usable observations in " + ", ".join(files))
    write_table(table, out, force=force, attrs={
        "dafusion_config": dump_config(cfg), "igra_files": " ".join(Path(f).name for f in files),
        "rejections": rejected.report()})
    click.echo(f"wrote {out}: {len(table)} observations from "
               f"{len(set(table.station_id))} stations")


def _int_list(text: str, option: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise click.ClickException(f"{option}: expected comma-separated integers, "
                                   f"got {text!r}") from None


def _hours(text: str) -> float:
    text = text.strip().lower()
    try:
        if text.endswith("h"):
            return float(text[:-1])
        if text.endswith("m"):
            return float(text[:-1]) / 60
        return float(text)
    except ValueError:
        raise click.ClickException(f"--window: expected e.g. 3h or 90m, got {text!r}") from None


if __name__ == "__main__":  # pragma: no cover
    main()
