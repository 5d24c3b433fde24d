import numpy as np
import pytest
import torch
import xarray as xr

from dafusion.grids import EquiangularGrid
from dafusion.normalise import Normaliser


@pytest.fixture
def norm():
    return Normaliser(("t850", "z500"), np.array([270.0, 54000.0]), np.array([15.0, 3000.0]),
                      ("K", "m**2 s**-2"))


def test_round_trip_numpy_torch_xarray(norm):
    x = np.stack([np.full((4, 8), 285.0), np.full((4, 8), 57000.0)])[None]  # (1, 2, 4, 8)
    z = norm.normalise(x)
    assert z[0, 0, 0, 0] == 1.0 and z[0, 1, 0, 0] == 1.0
    np.testing.assert_allclose(norm.denormalise(z), x, rtol=1e-15)
    tz = norm.normalise(torch.tensor(x, dtype=torch.float32))
    assert tz.dtype == torch.float32 and torch.allclose(tz, torch.ones_like(tz))
    da = xr.DataArray(x, dims=["time", "channel", "lat", "lon"])
    np.testing.assert_allclose(norm.normalise(da).values, z)


def test_variance_scaling(norm):
    """Variances divide by std², covariances by std_c · std_o (std 15 and 3000 here)."""
    assert norm.variance_at(np.array([225.0, 9e6]), np.array([0, 1])) == \
        pytest.approx([1.0, 1.0], rel=1e-15)
    cov = np.array([[225.0, 4500.0], [4500.0, 9e6]])  # correlation 0.1
    np.testing.assert_allclose(norm.variance_at(cov, np.array([[0], [1]]), np.array([[0, 1]])),
                               [[1.0, 0.1], [0.1, 1.0]], rtol=1e-15)


def test_fit_matches_brute_force_area_weighted_stats():
    grid = EquiangularGrid(8, 16)
    rng = np.random.default_rng(0)
    scale, offset = np.array([2.0, 3.0])[:, None, None], np.array([1.0, -4.0])[:, None, None]
    values = rng.normal(size=(5, 2, 8, 16)) * scale + offset
    stack = xr.DataArray(values, dims=["time", "channel", "lat", "lon"],
                         coords={"channel": ["t850", "sp"]})
    fitted = Normaliser.fit(stack, grid)
    w = np.broadcast_to(grid.lat_weights[None, :, None], (5, 8, 16))
    for c in range(2):
        x = values[:, c]
        mean = np.sum(w * x) / np.sum(w)
        std = np.sqrt(np.sum(w * (x - mean) ** 2) / np.sum(w))
        assert fitted.mean[c] == pytest.approx(mean, rel=1e-12)
        assert fitted.std[c] == pytest.approx(std, rel=1e-12)


def test_netcdf_round_trip(tmp_path, norm):
    norm.save(tmp_path / "norm.nc")
    back = Normaliser.load(tmp_path / "norm.nc")
    assert back.channels == norm.channels and back.units == norm.units
    np.testing.assert_array_equal(back.mean, norm.mean)
    np.testing.assert_array_equal(back.std, norm.std)


def test_errors(tmp_path, norm):
    with pytest.raises(ValueError, match="non-positive std for \\['b'\\]"):
        Normaliser(("a", "b"), np.zeros(2), np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match="array has 3 on axis -3"):
        norm.normalise(np.zeros((3, 4, 4)))
    with pytest.raises(ValueError, match="do not match the normaliser's"):
        norm.check_channels(["z500", "t850"], "checkpoint x")
    bad = tmp_path / "bad.nc"
    bad.write_text("not netcdf")
    with pytest.raises(ValueError, match="bad.nc: not a readable normaliser file"):
        Normaliser.load(bad)
