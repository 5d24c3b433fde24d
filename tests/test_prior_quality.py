import numpy as np
import pytest
from scipy import stats

from dafusion.grids import EquiangularGrid
from dafusion.prior.quality import compare, weighted_moments, write_report


def test_weighted_moments_match_a_brute_force_expansion():
    """Integer area weights: repeating each value by its weight gives the same moments."""
    grid = EquiangularGrid(4, 8)
    rng = np.random.default_rng(1)
    x = rng.gamma(2.0, size=(3, 4, 8))
    counts = np.rint(grid.lat_weights / grid.lat_weights.min() * 10).astype(int)
    grid_w = counts / counts.sum()

    class Rounded:  # the same grid with exactly proportional integer weights
        lat_weights, nlon, lat, lon, name = grid_w, 8, grid.lat, grid.lon, "rounded"

    got = weighted_moments(x, Rounded)
    expanded = np.concatenate([np.repeat(x[:, i].ravel(), counts[i]) for i in range(4)])
    assert got["mean"] == pytest.approx(expanded.mean(), rel=1e-12)
    assert got["std"] == pytest.approx(expanded.std(), rel=1e-12)
    assert got["skewness"] == pytest.approx(stats.skew(expanded), rel=1e-10)
    assert got["excess_kurtosis"] == pytest.approx(stats.kurtosis(expanded), rel=1e-10)


def test_identical_sets_compare_perfectly_and_the_report_is_written(tmp_path):
    grid = EquiangularGrid(8, 16)
    data = np.random.default_rng(0).normal(size=(5, 2, 8, 16))
    report = compare(data, data, ["t850", "sp"], grid, lmax=7)
    for r in report["channels"].values():
        assert r["zonal_mean_rms_difference"] == 0.0
        assert r["spectrum_rms_log10_ratio"] == 0.0
        assert r["samples"] == r["data"]
    shifted = compare(data + 1.0, data, ["t850", "sp"], grid, lmax=7)
    assert shifted["channels"]["sp"]["zonal_mean_rms_difference"] == pytest.approx(1.0)
    files = write_report({**report, "n_samples": 5, "n_data": 5}, ["K", "Pa"], tmp_path / "q")
    assert [f.name for f in files] == ["quality.json", "quality.md", "spectra.png"]
    assert all(f.stat().st_size > 0 for f in files)
    assert "| t850 | K |" in (tmp_path / "q" / "quality.md").read_text()
