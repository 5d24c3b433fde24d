import numpy as np
import pytest
import torch
from scipy.special import sph_harm_y

from dafusion.grids import EquiangularGrid, LegendreGaussGrid
from dafusion.spectra import power_spectrum


def _real_harmonic(grid, ell, m):
    theta = np.deg2rad(90 - grid.lat)[:, None]  # colatitude
    phi = np.deg2rad(grid.lon)[None, :]
    y = sph_harm_y(ell, m, theta, phi)
    return np.sqrt(2) * y.real if m else y.real  # unit L2 norm on the sphere


@pytest.mark.parametrize("ell, m", [(0, 0), (3, 0), (5, 2), (12, 7), (21, 21)])
def test_a_single_harmonic_puts_unit_power_at_its_wavenumber(ell, m):
    grid = LegendreGaussGrid(32, 64)
    spectrum = power_spectrum(_real_harmonic(grid, ell, m), grid, lmax=25)
    expected = np.zeros(26)
    expected[ell] = 1.0
    np.testing.assert_allclose(spectrum, expected, atol=1e-10)


def test_parseval_on_the_equiangular_grid():
    grid = EquiangularGrid(64, 128)
    rng = np.random.default_rng(0)
    field = sum(rng.normal() * _real_harmonic(grid, ell, m)
                for ell in range(10) for m in range(ell + 1))
    spectrum = power_spectrum(field, grid, lmax=20)
    energy = 4 * np.pi * np.sum(field**2 * grid.lat_weights[:, None]) / grid.nlon
    assert spectrum.sum() == pytest.approx(energy, rel=2e-3)
    assert spectrum[10:].sum() < 2e-3 * energy  # nothing leaks beyond the band


def test_shape_check():
    with pytest.raises(ValueError, match="does not end in"):
        power_spectrum(np.zeros((3, 4)), EquiangularGrid(32, 64))


def test_legendre_stays_orthonormal_at_era5_degrees():
    """The normalised recursion neither overflows nor loses orthonormality at l ~ 250
    (the unnormalised scipy route overflowed above l ~ 90, breaking 128x256 regridding)."""
    from dafusion.spectra import legendre

    x, w = np.polynomial.legendre.leggauss(260)
    p = legendre(255, x)
    assert np.isfinite(p).all()
    for m in (0, 1, 100, 200):
        gram = p[m, m:] @ (p[m, m:] * w).T
        np.testing.assert_allclose(gram, np.eye(256 - m), atol=1e-10)


def test_era5_to_lucie_regrid_of_a_band_limited_field():
    from dafusion.grids import EquiangularGrid, LegendreGaussGrid
    from dafusion.regrid import SpectralRegridder

    src, dst = EquiangularGrid(128, 256), LegendreGaussGrid(48, 96)
    lat_s, lon_s = np.meshgrid(np.deg2rad(src.lat), np.deg2rad(src.lon), indexing="ij")
    lat_d, lon_d = np.meshgrid(np.deg2rad(dst.lat), np.deg2rad(dst.lon), indexing="ij")

    def field(lat, lon):  # degree <= 12
        return (np.sin(lat) ** 3 + np.cos(lat) ** 5 * np.cos(5 * lon)
                + np.cos(lat) ** 12 * np.sin(12 * lon))

    import torch

    out = SpectralRegridder(src, dst)(torch.as_tensor(field(lat_s, lon_s))).numpy()
    np.testing.assert_allclose(out, field(lat_d, lon_d), atol=1e-9)


def test_degree_covariance_is_the_power_spectrum_and_its_polarisation():
    """Its diagonal is ``power_spectrum`` / (2l + 1) (numpy's quadrature, written apart);
    off the diagonal, E(f + g) − E(f) − E(g) = 2 (2l + 1) cov(f, g)."""
    from dafusion.grids import LegendreGaussGrid
    from dafusion.spectra import analysis_matrix, degree_covariance, power_spectrum

    grid = LegendreGaussGrid(16, 32)
    lmax = 15
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3) + grid.shape)
    cov = degree_covariance(torch.as_tensor(x), torch.as_tensor(analysis_matrix(grid, lmax)))
    assert cov.shape == (2, lmax + 1, 3, 3)
    two_l_1 = 2 * np.arange(lmax + 1) + 1
    for b in range(2):
        for c in range(3):
            np.testing.assert_allclose(cov[b, :, c, c].numpy() * two_l_1,
                                       power_spectrum(x[b, c], grid, lmax), rtol=1e-10)
        cross = (power_spectrum(x[b, 0] + x[b, 2], grid, lmax) - power_spectrum(x[b, 0], grid, lmax)
                 - power_spectrum(x[b, 2], grid, lmax))
        np.testing.assert_allclose(2 * two_l_1 * cov[b, :, 0, 2].numpy(), cross, rtol=1e-9,
                                   atol=1e-9 * np.abs(cross).max())
        np.testing.assert_allclose(cov[b, :, 0, 2].numpy(), cov[b, :, 2, 0].numpy())
