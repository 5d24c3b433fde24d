"""Distances on the sphere and the correlation functions of the classical methods.

* :func:`great_circle_km`: the geodesic distance, used for localisation (a weight
  per observation, which needs no positive-definiteness);
* :func:`chordal_km`: the straight-line distance through the sphere,
  2 R sin(θ/2). A correlation function that is positive definite in R³ is
  positive definite on the sphere when evaluated at the chordal distance, for
  any length scale; the Gaussian evaluated at the great-circle distance is not
  (Gneiting 2013, "Strictly and non-strictly positive definite functions on
  spheres"). The static B therefore uses the chordal distance; the two differ by
  θ²/24 relatively (0.2 % at 1,500 km, 2.5 % at 5,000 km).

Correlations of separation r and length scale L:

* Gaussian: exp(−r² / (2 L²));
* SOAR (second-order auto-regressive): (1 + r/L) exp(−r/L);
* Gaspari–Cohn (1999, eq. 4.10): the compactly supported fifth-order piecewise
  rational function of r/c, 1 at 0, 0 from r = 2c on.
"""

from __future__ import annotations

import numpy as np

EARTH_RADIUS_KM = 6371.0


def _unit_vectors(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """``(..., 3)`` unit vectors of points in degrees."""
    phi, lam = np.radians(np.asarray(lat, float)), np.radians(np.asarray(lon, float))
    return np.stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)], -1)


def chordal_km(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray,
               lon2: np.ndarray) -> np.ndarray:
    """Chordal distances ``(n1, n2)`` in km between two sets of points (degrees)."""
    a, b = _unit_vectors(lat1, lon1), _unit_vectors(lat2, lon2)
    return EARTH_RADIUS_KM * np.linalg.norm(a[:, None, :] - b[None, :, :], axis=-1)


def great_circle_km(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray,
                    lon2: np.ndarray) -> np.ndarray:
    """Great-circle distances ``(n1, n2)`` in km between two sets of points (degrees)."""
    a, b = _unit_vectors(lat1, lon1), _unit_vectors(lat2, lon2)
    cross = np.linalg.norm(np.cross(a[:, None, :], b[None, :, :]), axis=-1)
    return EARTH_RADIUS_KM * np.arctan2(cross, a @ b.T)  # stable at 0 and at π


def correlation(r: np.ndarray, length_km: float, model: str) -> np.ndarray:
    """The correlation model ``gaussian`` or ``soar`` at separations ``r`` (km)."""
    x = np.asarray(r, float) / length_km
    if model == "gaussian":
        return np.exp(-0.5 * x * x)
    if model == "soar":
        return (1.0 + x) * np.exp(-x)
    raise ValueError(f"correlation model {model!r}: use 'gaussian' or 'soar'")


def gaspari_cohn(r: np.ndarray, c: float) -> np.ndarray:
    """Gaspari and Cohn's (1999) eq. 4.10 at ``r / c``: 1 at 0, 0 for r >= 2c."""
    z = np.abs(np.asarray(r, float)) / c
    inner = (((-0.25 * z + 0.5) * z + 0.625) * z - 5.0 / 3.0) * z * z + 1.0
    with np.errstate(divide="ignore"):
        outer = ((((z / 12.0 - 0.5) * z + 0.625) * z + 5.0 / 3.0) * z - 5.0) * z + 4.0 \
            - 2.0 / (3.0 * np.where(z > 0, z, 1.0))
    return np.where(z <= 1.0, inner, np.where(z < 2.0, outer, 0.0))


def grid_points(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ``(H·W,)`` latitudes and longitudes of a grid's points, row-major."""
    la, lo = np.meshgrid(np.asarray(lat, float), np.asarray(lon, float), indexing="ij")
    return la.ravel(), lo.ravel()
