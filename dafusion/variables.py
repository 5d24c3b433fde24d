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


VARIABLES: dict[str, Variable] = {v.name: v for v in [
    Variable("temperature", "t", "K", False, "air_temperature", (120.0, 380.0)),
    Variable("geopotential", "z", "m**2 s**-2", False, "geopotential", (-1.0e4, 6.0e5)),
    Variable("u_component_of_wind", "u", "m s**-1", False, "eastward_wind", (-250.0, 250.0)),
    Variable("v_component_of_wind", "v", "m s**-1", False, "northward_wind", (-250.0, 250.0)),
    Variable("specific_humidity", "q", "kg kg**-1", False, "specific_humidity",
             (-1.0e-3, 0.05)),
    Variable("surface_pressure", "sp", "Pa", True, "surface_air_pressure", (3.0e4, 1.2e5)),
    Variable("mean_sea_level_pressure", "msl", "Pa", True,
             "air_pressure_at_mean_sea_level", (8.0e4, 1.15e5)),
    Variable("2m_temperature", "t2m", "K", True, "air_temperature", (150.0, 360.0)),
    Variable("10m_u_component_of_wind", "u10", "m s**-1", True, "eastward_wind",
             (-150.0, 150.0)),
    Variable("10m_v_component_of_wind", "v10", "m s**-1", True, "northward_wind",
             (-150.0, 150.0)),
    Variable("total_precipitation_6hr", "tp6", "m", True,
             "precipitation_amount", (-1.0e-3, 1.0)),
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
