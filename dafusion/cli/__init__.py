"""The ``cycler`` command line. Click stays here, at the edge: every command
resolves a typed configuration, calls the library, and turns the library's
boundary errors into one clear message and exit status 1. One module per
command group."""

from dafusion.cli import data, emulator, obs, prior, run, world  # noqa: F401 - registers the groups
from dafusion.cli.main import main

__all__ = ["main"]
