"""The ``cycler`` command line. Click stays here, at the edge: every command
resolves a typed configuration, calls the library, and turns the library's
boundary errors into one clear message and exit status 1. One module per
command group."""

from dafusion.threads import prepare_environment

prepare_environment()  # before any command imports torch

from dafusion.cli import data, emulator, forecast, obs, prior, run, world  # noqa: E402,F401
from dafusion.cli.main import main  # noqa: E402

__all__ = ["main"]
