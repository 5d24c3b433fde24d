"""The ``cycler`` command group and the helpers every command uses."""

from __future__ import annotations

import contextlib
import functools
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import click

from dafusion import __version__
from dafusion import threads as dafusion_threads
from dafusion.config import ConfigError, dump_config, load_config

_USER_ERRORS = (ConfigError, ValueError, FileExistsError, FileNotFoundError, RuntimeError,
                FloatingPointError)


def friendly(fn: Callable) -> Callable:
    """Report the library's boundary errors as ``Error: <message>``, exit 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except _USER_ERRORS as err:
            raise click.ClickException(str(err)) from err
        except OSError as err:  # permissions, a full disk, a read-only run directory
            where = f"{err.filename}: " if err.filename else ""
            raise click.ClickException(f"{where}{err.strerror or err}") from err

    return wrapper


def config_options(fn: Callable) -> Callable:
    fn = click.option("--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE",
                      help="Override a configuration value (repeatable).")(fn)
    return click.option("--config", "config_path", type=click.Path(dir_okay=False),
                        help="YAML configuration file (defaults if omitted).")(fn)


@contextlib.contextmanager
def progress_bar(total: int, desc: str) -> Iterator[Any]:
    from tqdm import tqdm

    with tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True,
              disable=None, file=sys.stderr) as bar:
        yield bar


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cycler")
@click.option("--threads", type=int, default=None,
              help="CPU threads (default: OMP_NUM_THREADS, else the CPUs this process may "
                   "use: affinity and cgroup quota).")
def main(threads: int | None) -> None:
    """dafusion: data assimilation cycling with a diffusion prior and an emulator."""
    warnings.formatwarning = _one_line_warning
    try:
        dafusion_threads.apply(dafusion_threads.choose_threads(threads))
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--threads") from None


def _one_line_warning(message: Warning | str, category: type[Warning], filename: str,
                      lineno: int, line: str | None = None) -> str:
    """A warning as the command's user reads it: one line, no source location."""
    return f"Warning: {message}\n"


# --------------------------------------------------------------------------- config


@main.group()
def config() -> None:
    """Inspect configurations."""


@config.command("show")
@config_options
@friendly
def config_show(config_path: str | None, overrides: tuple[str, ...]) -> None:
    """Print the resolved configuration (file + --set overrides + defaults)."""
    click.echo(dump_config(load_config(config_path, overrides)), nl=False)


def key_values(items: tuple[str, ...], option: str) -> dict[str, str]:
    """``("account=abc", "qos=short")`` -> ``{"account": "abc", "qos": "short"}``."""
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE", param_hint=option)
        out[key.strip()] = value.strip()
    return out


def with_options(cfg: Any, section: str, **options: Any) -> Any:
    """A command's typed options (None: not given) over the configuration's ``section``
    (e.g. ``run``, ``prior.sampler``), validated like the file; a bad value is a usage
    error naming the key."""
    from dafusion.config import ConfigError, with_values

    given = {f"{section}.{k}": v for k, v in options.items() if v is not None}
    if not given:
        return cfg
    try:
        return with_values(cfg, given)
    except ConfigError as err:
        raise click.BadParameter(str(err)) from None
