"""The OSSE world commands."""

from __future__ import annotations

import click

from dafusion.cli.main import config_options, friendly, main, progress_bar, with_options
from dafusion.config import load_config


@main.group()
def world() -> None:
    """The Held-Suarez OSSE world (needs the 'world' extra)."""


@world.command("generate")
@config_options
@click.option("--out", default="data/world.zarr", show_default=True,
              type=click.Path(), help="Zarr store to write (WeatherBench-2 layout).")
@click.option("--days", type=float, help="Shortcut for --set world.days=N.")
@click.option("--force", is_flag=True, help="Overwrite an existing store.")
@click.option("--resume", is_flag=True, help="Continue an interrupted generation.")
@friendly
def world_generate(config_path: str | None, overrides: tuple[str, ...], out: str,
                   days: float | None, force: bool, resume: bool) -> None:
    """Spin up Held-Suarez and write a 6-hourly nature run."""
    from dafusion.world import generate_world

    cfg = with_options(load_config(config_path, overrides), "world", days=days)
    timing = generate_world(cfg.world, out, force=force, resume=resume, progress=progress_bar)
    rate = timing["simulated_days"] / max(timing["seconds"], 1e-9)
    click.echo(f"wrote {out}: {timing['simulated_days']:g} simulated days in "
               f"{timing['seconds']:.1f} s ({rate:.2f} days/s, spin-up excluded)")


