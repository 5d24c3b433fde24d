import numpy as np
import pytest

from dafusion.grids import (
    NAMED,
    EquiangularGrid,
    LegendreGaussGrid,
    grid_from_name,
    identify_grid,
    weighted_mean,
)

ALL = list(NAMED.values())


def test_weatherbench_coordinates():
    g = EquiangularGrid(32, 64)
    assert g.lat[0] == -87.1875 and g.lat[-1] == 87.1875
    assert g.lon[1] == 5.625 and g.lon[-1] == 354.375
    fine = EquiangularGrid(128, 256)
    assert fine.lat[0] == -90 + 1.40625 / 2
    assert np.allclose(np.diff(fine.lat), 1.40625) and np.allclose(np.diff(fine.lon), 1.40625)


@pytest.mark.parametrize("grid", ALL, ids=lambda g: g.name)
def test_weights_sum_to_one_and_are_symmetric(grid):
    w = grid.lat_weights
    assert w.shape == grid.lat.shape
    assert np.all(w > 0) and w.sum() == pytest.approx(1.0, abs=1e-14)
    assert np.allclose(w, w[::-1], atol=1e-15)
    assert np.all(np.diff(grid.lat) > 0)


@pytest.mark.parametrize("nlat", [8, 32, 48])
def test_gauss_quadrature_is_exact_for_polynomials(nlat):
    g = LegendreGaussGrid(nlat, 2 * nlat)
    mu = np.sin(np.deg2rad(g.lat))
    # mean over the sphere of mu^(2k) = 1 / (2k + 1), exact up to degree 2 nlat - 1
    for k in range(nlat):
        assert np.sum(g.lat_weights * mu ** (2 * k)) == pytest.approx(1 / (2 * k + 1), rel=1e-12)


def test_equiangular_weights_are_exact_band_areas():
    # the weight of a band is its share of the sphere's area: exact mean of any
    # field that is constant on each band
    g = EquiangularGrid(32, 64)
    edges = np.deg2rad(np.linspace(-90, 90, 33))
    assert np.allclose(g.lat_weights, np.diff(np.sin(edges)) / 2, rtol=1e-13)
    poles = EquiangularGrid(181, 360, poles=True)
    edges = np.deg2rad(np.clip(np.linspace(-90.5, 90.5, 182), -90, 90))
    assert np.allclose(poles.lat_weights, np.diff(np.sin(edges)) / 2, rtol=1e-12)


def test_weighted_mean_converges_for_smooth_fields():
    errors = []
    for n in (16, 32, 64):
        g = EquiangularGrid(n, 2 * n)
        field = np.sin(np.deg2rad(g.lat))[:, None] ** 2 * np.ones(2 * n)
        errors.append(abs(weighted_mean(field, g) - 1 / 3))
    assert errors[0] > 3.9 * errors[1] > 3.9 * 3.9 * errors[2]  # second order


@pytest.mark.parametrize("grid", ALL, ids=lambda g: g.name)
def test_identify_and_name_round_trip(grid):
    assert identify_grid(grid.lat, grid.lon) == grid
    assert grid_from_name(grid.name) == grid


def test_identify_rejects_unknown_coordinates():
    g = EquiangularGrid(32, 64)
    with pytest.raises(ValueError, match="match no supported grid: 32 latitudes"):
        identify_grid(g.lat[::-1], g.lon)
    with pytest.raises(ValueError, match="unknown grid"):
        grid_from_name("hexagonal_3x3")


def test_weighted_mean_checks_shape():
    with pytest.raises(ValueError, match="does not end in grid shape"):
        weighted_mean(np.zeros((3, 4)), EquiangularGrid(32, 64))
    g = LegendreGaussGrid(48, 96)
    assert weighted_mean(np.full((2, 48, 96), 7.0), g) == pytest.approx([7.0, 7.0])
