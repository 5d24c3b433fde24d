"""The configuration's error and the checks its sections share (key paths in every
message)."""

from __future__ import annotations

import datetime as dt
import math
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
    """Each named field a finite number > 0."""
    for name in names:
        v = getattr(obj, name)
        if not v > 0:
            raise ConfigError(f"{path}.{name}: must be > 0, got {v!r}")
        _finite(v, f"{path}.{name}")


def per_variable(value: Any, path: str, *, strict: bool, default_key: bool) -> None:
    """A finite number (> 0 if ``strict``, else >= 0) or ``{variable: number}``."""
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
        if v is not None:
            _finite(v, key)


def non_negative(obj: Any, path: str, *names: str) -> None:
    """Each named field a finite number >= 0."""
    for name in names:
        v = getattr(obj, name)
        if not v >= 0:
            raise ConfigError(f"{path}.{name}: must be >= 0, got {v!r}")
        _finite(v, f"{path}.{name}")


def _finite(value: float, key: str) -> None:
    if not math.isfinite(value):
        raise ConfigError(f"{key}: must be a finite number, got {value!r}")


# a normalised variance below this (an error std 1e-4 of the climatological std, e.g.
# 0.3 m2 s-2 for z500) is no observation error but a typing slip: the guidance would be
# scaled by its inverse (1e30 for 1e-30)
MIN_NORMALISED_VARIANCE = 1e-8


def normalised_variance(value: Any, path: str) -> None:
    """A normalised variance (or ``{variable: variance}``; None = the default) that is at
    least :data:`MIN_NORMALISED_VARIANCE`."""
    items = value.items() if isinstance(value, dict) else [(None, value)]
    for name, v in items:
        if v is not None and v < MIN_NORMALISED_VARIANCE:
            key = path if name is None else f"{path}.{name}"
            raise ConfigError(f"{key}: {v!r} is below {MIN_NORMALISED_VARIANCE:g}, the "
                              "smallest normalised error variance taken (an error std of "
                              "1e-4 of the climatological std)")
