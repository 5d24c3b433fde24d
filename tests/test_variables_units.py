import numpy as np
import pytest

from dafusion import units
from dafusion.variables import parse_channel, parse_channels


def test_channel_names():
    t850 = parse_channel("t850")
    assert (t850.variable.name, t850.level, t850.units) == ("temperature", 850, "K")
    sp = parse_channel("sp")
    assert (sp.variable.name, sp.level) == ("surface_pressure", None)
    assert parse_channel("t2m").variable.name == "2m_temperature"
    assert [c.name for c in parse_channels(["z500", "u10", "q850"])] == ["z500", "u10", "q850"]


@pytest.mark.parametrize("name", ["x850", "sp850", "t", "t99999", "T850", ""])
def test_bad_channel_names(name):
    with pytest.raises(ValueError, match="channel"):
        parse_channel(name)


def test_unit_conversions():
    assert units.to_canonical(np.array([0.0, -40.0]), "degC", "K") == pytest.approx(
        [273.15, 233.15])
    assert units.to_canonical(5000.0, "gpm", "m**2 s**-2") == pytest.approx(5000 * 9.80665)
    assert units.to_canonical(850.0, "hPa", "Pa") == 85000.0
    assert units.conversion("K", "kelvin") == (1.0, 0.0)
    assert units.celsius_tenths_to_kelvin(np.array([-123])) == pytest.approx([260.85])
    with pytest.raises(ValueError, match="cannot convert 'K' to 'Pa'"):
        units.conversion("K", "Pa")
    with pytest.raises(ValueError, match="unknown units 'furlongs'"):
        units.conversion("furlongs", "m")
