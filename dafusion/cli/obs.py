"""Observation commands."""

from __future__ import annotations

from pathlib import Path

import click

from dafusion.cli.main import config_options, friendly, main, with_options
from dafusion.config import dump_config, load_config


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
@config_options
@friendly
def obs_synth(truth: str | None, out: str, station_list: str | None, start: str | None,
              end: str | None, force: bool, config_path: str | None,
              overrides: tuple[str, ...]) -> None:
    """Observe the truth with a radiosonde-like network; write the observation table."""
    from dafusion.data import GriddedSource, demo_truth_path
    from dafusion.obs.synth import land_network, station_list_network, synthesise
    from dafusion.obs.table import write_table

    cfg = with_options(load_config(config_path, overrides), "obs",
                       station_list=station_list or None)
    if Path(out).exists() and not force:
        raise click.ClickException(f"{out}: already exists; pass --force to overwrite")
    source = GriddedSource.open(truth or demo_truth_path(), cfg.data.channels,
                                member=cfg.data.member)
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
@config_options
@friendly
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
    if len(rejected.by_file) > 1:
        click.echo("per file:\n" + rejected.report_by_file())
    if rejected.unlisted:
        ids = sorted(rejected.unlisted)
        click.echo(f"Warning: {sum(rejected.unlisted.values())} soundings of {len(ids)} "
                   f"station(s) not in {Path(station_list or '').name} use their file "
                   f"header's coordinates: {', '.join(ids[:5])}"
                   + (f" and {len(ids) - 5} more" if len(ids) > 5 else ""), err=True)
    if len(table) == 0:
        raise click.ClickException("no usable observations in " + ", ".join(files))
    write_table(table, out, force=force, attrs={
        "dafusion_config": dump_config(cfg), "igra_files": " ".join(Path(f).name for f in files),
        "rejections": rejected.report(),
        "header_coordinates": ", ".join(f"{k} ({n} soundings)"
                                        for k, n in sorted(rejected.unlisted.items()))})
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
