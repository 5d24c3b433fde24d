"""The variable registry and channel naming.

A *variable* is a physical quantity (``temperature``), on pressure levels or at
the surface. A *channel* is one 2-D slice of the state: a variable at one level
(``t850`` = temperature at 850 hPa) or a surface variable (``sp``). The order of
channels in a configuration is the channel order of every tensor.

Canonical units are SI as ERA5 stores them (K, m s-1, m2 s-2, Pa, kg kg-1);
readers convert to them once, through :mod:`dafusion.units`.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np


@dataclasses.dataclass(frozen=True)
class Variable:
    """A physical variable: WeatherBench-2 long name, CDS short name, units."""

    name: str  # WeatherBench-2 / ERA5 long name, e.g. "temperature"
    short: str  # CDS short name, e.g. "t"
    units: str  # canonical CF units string
    surface: bool  # True: a 2-D surface field; False: on pressure levels
    standard_name: str = ""
    # physically possible range in canonical units, any level and climate; values
    # outside it mean a damaged file or wrong units (checked when data are loaded)
    bounds: tuple[float, float] = (-float("inf"), float("inf"))
    # the smallest observation error std taken, canonical units: finer than any instrument
    # reports (0.01 K, 0.01 m s-1, 0.1 m2 s-2, 1 Pa); below it an error_std is a slip
    precision: float = 0.0


VARIABLES: dict[str, Variable] = {v.name: v for v in [
    Variable("temperature", "t", "K", False, "air_temperature", (120.0, 380.0), 0.01),
    Variable("geopotential", "z", "m**2 s**-2", False, "geopotential", (-1.0e4, 6.0e5), 0.1),
    Variable("u_component_of_wind", "u", "m s**-1", False, "eastward_wind", (-250.0, 250.0),
             0.01),
    Variable("v_component_of_wind", "v", "m s**-1", False, "northward_wind", (-250.0, 250.0),
             0.01),
    Variable("specific_humidity", "q", "kg kg**-1", False, "specific_humidity",
             (-1.0e-3, 0.05), 1.0e-6),
    Variable("surface_pressure", "sp", "Pa", True, "surface_air_pressure", (3.0e4, 1.2e5), 1.0),
    Variable("mean_sea_level_pressure", "msl", "Pa", True,
             "air_pressure_at_mean_sea_level", (8.0e4, 1.15e5), 1.0),
    Variable("2m_temperature", "t2m", "K", True, "air_temperature", (150.0, 360.0), 0.01),
    Variable("10m_u_component_of_wind", "u10", "m s**-1", True, "eastward_wind",
             (-150.0, 150.0), 0.01),
    Variable("10m_v_component_of_wind", "v10", "m s**-1", True, "northward_wind",
             (-150.0, 150.0), 0.01),
    Variable("total_precipitation_6hr", "tp6", "m", True,
             "precipitation_amount", (-1.0e-3, 1.0), 1.0e-6),
]}

BY_SHORT: dict[str, Variable] = {v.short: v for v in VARIABLES.values()}

_LEVELLED = re.compile(r"^([a-z]+)(\d+)$")


@dataclasses.dataclass(frozen=True)
class Channel:
    """One 2-D slice of the state: a variable, at a pressure level (hPa) or surface."""

    variable: Variable
    level: int | None  # hPa; None for surface variables

    @property
    def name(self) -> str:
        return self.variable.short + ("" if self.level is None else str(self.level))

    @property
    def units(self) -> str:
        return self.variable.units

    @property
    def bounds(self) -> tuple[float, float]:
        """The physically possible range of this channel in canonical units: the
        variable's, narrowed for geopotential to its level (:func:`geopotential_bounds`),
        where a height in metres labelled as geopotential falls outside."""
        if self.variable.name == "geopotential" and self.level is not None:
            return geopotential_bounds(self.level)
        return self.variable.bounds


R_DRY = 287.05  # gas constant of dry air, J kg-1 K-1
# the extremes of the hypsometric equation: mean (virtual) temperature of the layer from
# sea level to the level, and sea-level pressure (record lows and highs, with margin)
LAYER_TEMPERATURE = (180.0, 330.0)  # K
SEA_LEVEL_PRESSURE = (850.0, 1090.0)  # hPa


def geopotential_bounds(level_hpa: float) -> tuple[float, float]:
    """Possible geopotential (m2 s-2) at ``level_hpa``: Φ = R_d T̄ ln(p_sl / p) over the
    extremes of T̄ and p_sl. At 500 hPa 28,000..71,000 (ERA5 spans about 46,000..59,000);
    a height in metres (about 5,600 at 500 hPa) is outside at 700 hPa and above."""
    logs = [np.log(p_sl / level_hpa) for p_sl in SEA_LEVEL_PRESSURE]
    values = [R_DRY * t * x for t in LAYER_TEMPERATURE for x in logs]
    return min(values), max(values)


def parse_channel(name: str) -> Channel:
    """``"t850"`` -> temperature at 850 hPa; ``"sp"`` -> surface pressure.

    Raises ValueError naming the channel when it is not understood.
    """
    if name in BY_SHORT and BY_SHORT[name].surface:
        return Channel(BY_SHORT[name], None)
    match = _LEVELLED.match(name)
    if match and match.group(1) in BY_SHORT and not BY_SHORT[match.group(1)].surface:
        level = int(match.group(2))
        if not 1 <= level <= 1100:
            raise ValueError(f"channel {name!r}: level {level} hPa out of range")
        return Channel(BY_SHORT[match.group(1)], level)
    known = sorted(k for k, v in BY_SHORT.items() if v.surface)
    levelled = sorted(k for k, v in BY_SHORT.items() if not v.surface)
    raise ValueError(f"unknown channel {name!r}: use a surface name {known} or a "
                     f"pressure-level name {levelled} followed by hPa, e.g. 't850'")


def parse_channels(names: list[str]) -> list[Channel]:
    """Parse a channel list, keeping its order (the tensor channel order)."""
    return [parse_channel(n) for n in names]
