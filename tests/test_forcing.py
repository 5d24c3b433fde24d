"""Insolation (ERA5-style tisr) against closed-form astronomy, and the orography reader."""

import numpy as np
import pytest
import xarray as xr

from dafusion.emulator.forcing import (
    SOLAR_CONSTANT,
    _solar_terms,
    cos_zenith,
    read_orography,
    toa_incident_solar,
)
from dafusion.grids import LegendreGaussGrid


def test_daily_total_at_the_equator_near_equinox():
    """Sum of 24 hourly accumulations = S0 (d0/d)^2 86400 / pi when the declination is ~0
    (the day is 12 h long and cos z integrates to 1/pi of the day)."""
    day = np.datetime64("2020-03-20T01", "s") + np.arange(24) * np.timedelta64(1, "h")
    total = toa_incident_solar(day, np.array([0.0]), np.array([0.0, 90.0, 200.0])).sum(0)
    decl, _, ecc = _solar_terms(day)
    assert abs(decl).max() < 0.005  # within 0.3 degrees of the equinox
    expected = SOLAR_CONSTANT * ecc.mean() * 86400 / np.pi
    np.testing.assert_allclose(total[0], expected, rtol=2e-3)


def test_polar_night_and_polar_day():
    day = np.datetime64("2020-12-21T01", "s") + np.arange(24) * np.timedelta64(1, "h")
    tisr = toa_incident_solar(day, np.array([-89.0, 89.0]), np.array([0.0]))
    assert np.all(tisr[:, 1] == 0.0)  # north pole in December: night
    # 89 S at the solstice: the sun circles at 23.44 +- 1 degrees elevation all day
    hourly = tisr[:, 0, 0]
    s = lambda deg: np.sin(np.deg2rad(deg))  # noqa: E731
    np.testing.assert_allclose(hourly.min() / hourly.max(), s(22.44) / s(24.44), rtol=2e-3)
    _, _, ecc = _solar_terms(day)
    np.testing.assert_allclose(hourly.mean(), SOLAR_CONSTANT * ecc.mean() * 3600
                               * s(89.0) * s(23.44), rtol=2e-3)


def test_noon_follows_longitude():
    """Local solar noon moves 4 minutes per degree: at 12 UTC the subsolar point is near
    0 E (within the equation of time, +-16 min = +-4 degrees)."""
    lon = np.arange(0, 360, 1.0)
    cz = cos_zenith(np.array([np.datetime64("2020-06-01T12:00", "s")]), np.array([0.0]), lon)
    peak = lon[np.argmax(cz[0, 0])]
    assert min(peak, 360 - peak) <= 4.0
    assert cz.max() <= 1.0


def test_hourly_accumulation_bounded_by_the_solar_constant():
    grid = LegendreGaussGrid(16, 32)
    t = np.datetime64("2020-01-03T12", "s") + np.arange(4) * np.timedelta64(6, "h")
    tisr = toa_incident_solar(t, grid.lat, grid.lon)
    assert tisr.shape == (4, 16, 32)
    assert tisr.min() >= 0 and tisr.max() <= SOLAR_CONSTANT * 1.035 * 3600


def test_orography_reader(tmp_path):
    grid = LegendreGaussGrid(16, 32)
    z = np.arange(16 * 32, dtype=float).reshape(16, 32)
    xr.Dataset({"geopotential_at_surface": (("latitude", "longitude"), z[::-1] * 9.80665)},
               coords={"latitude": grid.lat[::-1], "longitude": grid.lon}
               ).to_netcdf(tmp_path / "z.nc")
    np.testing.assert_allclose(read_orography(tmp_path / "z.nc", grid), z)  # sorted, in m
    xr.Dataset({"height": (("lat", "lon"), z)}, coords={"lat": grid.lat, "lon": grid.lon}
               ).to_netcdf(tmp_path / "h.nc")
    with pytest.raises(ValueError, match=r"h.nc: no 'orography' or 'geopotential_at_surface'"):
        read_orography(tmp_path / "h.nc", grid)
