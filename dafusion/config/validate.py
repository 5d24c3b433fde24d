"""The configuration's error and the checks its sections share (key paths in every
message)."""

from __future__ import annotations

import datetime as dt
from typing import Any


class ConfigError(ValueError):
    """A configuration problem, with the file and key path in the message."""


def parse_time(text: str, path: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise ConfigError(f"{path}: expected an ISO date/time, got {text!r}") from None
    if when.tzinfo is not None:
        raise ConfigError(f"{path}: {text!r} has a time zone; times are UTC without one "
                          f"(here: {when.astimezone(dt.timezone.utc):%Y-%m-%dT%H:%M})")
    return when


def positive(obj: Any, path: str, *names: str) -> None:
    for name in names:
        if not getattr(obj, name) > 0:
            raise ConfigError(f"{path}.{name}: must be > 0, got {getattr(obj, name)!r}")


def per_variable(value: Any, path: str, *, strict: bool, default_key: bool) -> None:
    """A number (> 0 if ``strict``, else >= 0) or ``{variable: number}``."""
    from dafusion.variables import VARIABLES

    items = value.items() if isinstance(value, dict) else [(None, value)]
    for name, v in items:
        key = path if name is None else f"{path}.{name}"
        if name is not None and name not in VARIABLES and not (default_key and
                                                               name == "default"):
            raise ConfigError(f"{key}: unknown variable; known: {sorted(VARIABLES)}"
                              + (" or 'default'" if default_key else ""))
        if v is not None and not (v > 0 if strict else v >= 0):
            raise ConfigError(f"{key}: must be {'> 0' if strict else '>= 0'}, got {v!r}")


def non_negative(obj: Any, path: str, *names: str) -> None:
    for name in names:
        if getattr(obj, name) < 0:
            raise ConfigError(f"{path}.{name}: must be >= 0, got {getattr(obj, name)!r}")
