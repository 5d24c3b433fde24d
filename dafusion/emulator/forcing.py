"""Forcing inputs of the emulator: insolation and orography.

``tisr``: top-of-atmosphere incident solar radiation as ERA5 defines it,
J m-2 accumulated over the hour that ends at the valid time. Computed here
from the sun's position (declination and equation of time from Spencer's
1971 Fourier series, the eccentricity factor from the same source, solar
constant 1361 W m-2), integrated over the hour with the midpoint rule on
5-minute steps. LUCIE feeds the tisr of its training data on a repeating
one-year, 6-hourly cycle; the computed field differs from ERA5's by the
orbital details (well under 1 % of the daily total, stated not measured
against ERA5 here: no ERA5 tisr sample is in the real-data folder).

``orography``: a static field read from a netCDF file on the emulator grid
(``orography`` in m, or ``geopotential_at_surface`` in m2 s-2, converted to m).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from dafusion.grids import AnyGrid, identify_grid

SOLAR_CONSTANT = 1361.0  # W m-2 (Kopp & Lean 2011)
G = 9.80665  # m s-2


def _solar_terms(time: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Declination (rad), equation of time (minutes) and (d0/d)^2 at UTC times."""
    t = np.asarray(time, dtype="datetime64[s]")
    year_start = t.astype("datetime64[Y]").astype("datetime64[s]")
    next_year = (t.astype("datetime64[Y]") + 1).astype("datetime64[s]")
    frac = (t - year_start) / (next_year - year_start)
    g = 2.0 * np.pi * frac  # fractional year (Spencer's day angle)
    decl = (0.006918 - 0.399912 * np.cos(g) + 0.070257 * np.sin(g)
            - 0.006758 * np.cos(2 * g) + 0.000907 * np.sin(2 * g)
            - 0.002697 * np.cos(3 * g) + 0.00148 * np.sin(3 * g))
    eot = 229.18 * (0.000075 + 0.001868 * np.cos(g) - 0.032077 * np.sin(g)
                    - 0.014615 * np.cos(2 * g) - 0.040849 * np.sin(2 * g))
    ecc = (1.000110 + 0.034221 * np.cos(g) + 0.001280 * np.sin(g)
           + 0.000719 * np.cos(2 * g) + 0.000077 * np.sin(2 * g))
    return decl, eot, ecc


def cos_zenith(time: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Cosine of the solar zenith angle, shape ``time.shape + (lat, lon)``."""
    t = np.atleast_1d(np.asarray(time, dtype="datetime64[s]"))
    decl, eot, _ = _solar_terms(t)
    minutes = (t - t.astype("datetime64[D]")).astype(float) / 60.0
    phi = np.deg2rad(np.asarray(lat))[:, None]
    lam = np.asarray(lon)[None, :]
    # true solar time in minutes -> hour angle
    solar = minutes[:, None, None] + eot[:, None, None] + 4.0 * lam[None]
    hour_angle = np.deg2rad(solar / 4.0 - 180.0)
    d = decl[:, None, None]
    return (np.sin(phi)[None] * np.sin(d)
            + np.cos(phi)[None] * np.cos(d) * np.cos(hour_angle))


def toa_incident_solar(valid_time: np.ndarray, lat: np.ndarray, lon: np.ndarray,
                       substeps: int = 12) -> np.ndarray:
    """ERA5-style ``tisr`` (J m-2 over the hour ending at each valid time),
    shape ``(time, lat, lon)``."""
    t = np.atleast_1d(np.asarray(valid_time, dtype="datetime64[s]"))
    step = 3600 // substeps
    out = np.zeros((t.size, len(lat), len(lon)))
    for k in range(substeps):
        mid = t - np.timedelta64(3600 - step // 2 - k * step, "s")
        _, _, ecc = _solar_terms(mid)
        out += ecc[:, None, None] * np.clip(cos_zenith(mid, lat, lon), 0.0, None)
    return out * SOLAR_CONSTANT * step


def read_orography(path: str | Path, grid: AnyGrid) -> np.ndarray:
    """Surface height (m) on ``grid`` (lat ascending) from a netCDF file."""
    path = Path(path)
    try:
        ds = xr.open_dataset(path)
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: cannot read orography ({err})") from None
    with ds:
        if "orography" in ds:
            field, scale = ds["orography"], 1.0
        elif "geopotential_at_surface" in ds:
            field, scale = ds["geopotential_at_surface"], 1.0 / G
        else:
            raise ValueError(f"{path}: no 'orography' or 'geopotential_at_surface' variable "
                             f"(has {sorted(ds.data_vars)})")
        field = field.squeeze(drop=True)
        lat_name = "latitude" if "latitude" in field.dims else "lat"
        lon_name = "longitude" if "longitude" in field.dims else "lon"
        if set(field.dims) != {lat_name, lon_name}:
            raise ValueError(f"{path}: orography has dims {field.dims}, expected (lat, lon)")
        field = field.sortby(lat_name).transpose(lat_name, lon_name)
        try:
            have = identify_grid(field[lat_name].values, field[lon_name].values)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
        if have != grid:
            raise ValueError(f"{path}: orography on {have.name}, the emulator runs on "
                             f"{grid.name}")
        values = field.values.astype(float) * scale
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{path}: orography has NaN or infinite values")
    return values
