"""The one place that converts between physical units.

Readers call :func:`to_canonical` once at the boundary; everything inside the
system is in the canonical units of :mod:`dafusion.variables`. (Physical <->
normalised conversion is the normaliser's job, not this module's.)
"""

from __future__ import annotations

import numpy as np

G0 = 9.80665  # standard gravity, m s-2 (WMO); geopotential = G0 * geopotential height

# spellings of the same unit, mapped to one key
_ALIASES = {
    "K": "K", "kelvin": "K", "degK": "K",
    "degC": "degC", "C": "degC", "celsius": "degC", "deg_C": "degC",
    "m**2 s**-2": "m2 s-2", "m2 s-2": "m2 s-2", "m^2 s^-2": "m2 s-2", "m2/s2": "m2 s-2",
    "m": "m", "gpm": "gpm", "metres": "m", "meters": "m",
    "m s**-1": "m s-1", "m s-1": "m s-1", "m/s": "m s-1",
    "Pa": "Pa", "hPa": "hPa", "mb": "hPa", "millibars": "hPa",
    "kg kg**-1": "kg kg-1", "kg kg-1": "kg kg-1", "kg/kg": "kg kg-1", "1": "1",
}

# (from, to) -> (scale, offset): canonical = value * scale + offset
_RULES: dict[tuple[str, str], tuple[float, float]] = {
    ("degC", "K"): (1.0, 273.15),
    ("hPa", "Pa"): (100.0, 0.0),
    ("gpm", "m2 s-2"): (G0, 0.0),  # geopotential height -> geopotential
    ("m", "m2 s-2"): (G0, 0.0),
    ("1", "kg kg-1"): (1.0, 0.0),
}


def canonical_key(units: str) -> str:
    """Normalise a units string to its key; ValueError if unknown."""
    key = _ALIASES.get(units.strip())
    if key is None:
        raise ValueError(f"unknown units {units!r}; known: {sorted(_ALIASES)}")
    return key


def conversion(units_from: str, units_to: str) -> tuple[float, float]:
    """(scale, offset) with ``to = from * scale + offset``; ValueError if impossible."""
    a, b = canonical_key(units_from), canonical_key(units_to)
    if a == b:
        return 1.0, 0.0
    if (a, b) in _RULES:
        return _RULES[(a, b)]
    raise ValueError(f"cannot convert {units_from!r} to {units_to!r}")


def to_canonical(values, units_from: str, units_to: str):
    """Convert an array (numpy, xarray or dask) from ``units_from`` to ``units_to``."""
    scale, offset = conversion(units_from, units_to)
    if scale == 1.0 and offset == 0.0:
        return values
    return values * scale + offset


def celsius_tenths_to_kelvin(values: np.ndarray) -> np.ndarray:
    """IGRA2 stores temperature in tenths of a degree Celsius."""
    return to_canonical(np.asarray(values, dtype=np.float64) / 10.0, "degC", "K")
