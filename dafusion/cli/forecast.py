"""``cycler forecast``: the emulator's forecasts from a run's analyses."""

from __future__ import annotations

import click

from dafusion.cli.main import friendly, main, progress_bar


@main.command("forecast")
@click.argument("run", type=click.Path(file_okay=False, exists=True))
@click.option("--days", default=7.0, show_default=True, type=float,
              help="Forecast length from each analysis.")
@click.option("--force", is_flag=True, help="Replace RUN/forecasts.")
@friendly
def forecast_cmd(run: str, days: float, force: bool) -> None:
    """The emulator's forecasts from every analysis of RUN and from the truth at the same
    times, scored by lead against the truth (RUN/forecasts/; lead time lost in the table
    and in cycler compare)."""
    from dafusion.cycler.reporting import forecasts

    path = forecasts.forecast_run(run, days, force=force, progress=progress_bar)
    click.echo(forecasts.summary(forecasts.read_scores(run)))
    click.echo(f"wrote {path.parent}")
