"""The emulator's forecast-error statistics (``emulator/errors.py``) against a case with a
known answer, and their file checks."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from dafusion.data import GriddedSource, standardise
from dafusion.emulator.errors import at_lead, error_statistics, load_statistics, point_rmse
from dafusion.emulator.persistence import PersistenceEmulator
from dafusion.grids import LegendreGaussGrid
from dafusion.io import write_netcdf

GRID = LegendreGaussGrid(16, 32)
A = 3.0  # K per 6 hours


def _truth(steps: int = 12) -> GriddedSource:
    """t850 = 280 K + k · A · Y_20 at step k (orthonormal Y_20), sp constant."""
    mu = np.sin(np.deg2rad(GRID.lat))
    y20 = np.sqrt(5 / (4 * np.pi)) * (3 * mu**2 - 1) / 2
    k = np.arange(steps)[:, None, None]
    t = 280.0 + k * A * y20[None, :, None] * np.ones((1, 1, GRID.nlon))
    times = np.datetime64("2020-01-01T00", "ns") + np.arange(steps) * np.timedelta64(6, "h")
    ds = xr.Dataset({"temperature": (("time", "level", "latitude", "longitude"), t[:, None]),
                     "surface_pressure": (("time", "latitude", "longitude"),
                                          np.full(t.shape, 1e5))},
                    coords={"time": times, "level": [850], "latitude": GRID.lat,
                            "longitude": GRID.lon})
    return GriddedSource("<memory>", [], standardise(ds, "<memory>"), GRID).select(
        ["t850", "sp"])


def test_persistence_of_a_growing_harmonic_has_the_error_spectrum_by_hand():
    """Persistence misses (j A) Y_20 at lead j: power (j A)² at degree 2, one real
    coefficient variance (j A)² / 5, nothing elsewhere; point variance (j A)² / 4π."""
    truth = _truth()
    model = PersistenceEmulator(GRID, ["t850", "sp"])
    stats = error_statistics(model, truth, truth.times[:4], 4)
    assert list(stats.lead_hours.values) == [6, 12, 18, 24]
    var = stats["error_variance"].sel(channel="t850").values  # (lead, degree)
    expected = np.zeros_like(var)
    expected[:, 2] = (np.arange(1, 5) * A) ** 2 / 5
    np.testing.assert_allclose(var, expected, atol=1e-9)
    np.testing.assert_allclose(stats["error_variance"].sel(channel="sp").values, 0, atol=1e-9)
    np.testing.assert_allclose(point_rmse(stats).sel(channel="t850").values,
                               np.arange(1, 5) * A / np.sqrt(4 * np.pi), rtol=1e-9)
    cov = stats["error_covariance"].values
    np.testing.assert_allclose(np.diagonal(cov, axis1=2, axis2=3).transpose(0, 2, 1),
                               stats["error_variance"].values, rtol=1e-12)
    # the same grid for truth and emulator: nothing unresolved
    np.testing.assert_allclose(stats["unresolved_variance"].values, 0.0)
    # between tabulated leads: linear; before the first: the first
    np.testing.assert_allclose(at_lead(stats, 9, ["t850"])[0, 2], (A**2 + (2 * A) ** 2) / 2 / 5,
                               rtol=1e-9)
    np.testing.assert_allclose(at_lead(stats, 0, ["t850"]), at_lead(stats, 6, ["t850"]))
    with pytest.raises(ValueError, match="reach 24 h"):
        at_lead(stats, 36, ["t850"])


def test_a_statistics_file_is_checked_when_read(tmp_path):
    truth = _truth()
    stats = error_statistics(PersistenceEmulator(GRID, ["t850", "sp"]), truth,
                             truth.times[:2], 2)
    with pytest.raises(FileNotFoundError, match="cycler emulator errors"):
        load_statistics(tmp_path / "none.nc", ["t850"], GRID.name)
    path = write_netcdf(stats, tmp_path / "errors.nc") or tmp_path / "errors.nc"
    with pytest.raises(ValueError, match="no statistics for channels \\['z500'\\]"):
        load_statistics(path, ["t850", "z500"], GRID.name)
    with pytest.raises(ValueError, match="statistics on legendre_gauss_16x32"):
        load_statistics(path, ["t850"], "legendre_gauss_48x96")
    with pytest.raises(ValueError, match="finite and > 0"):  # sp never errs: zero variance
        load_statistics(path, ["t850", "sp"], GRID.name)


def test_the_command_writes_statistics_the_cycle_reads(tmp_path):
    from click.testing import CliRunner

    import fakes
    from dafusion.cli.main import main

    truth = fakes.truth_file(tmp_path / "truth.nc", days=3)
    checkpoint = fakes.emulator_checkpoint(tmp_path / "emulator")
    out = tmp_path / "errors.nc"
    args = ["emulator", "errors", "--checkpoint", checkpoint, "--truth", truth, "--start",
            "2020-01-01T00", "--end", "2020-01-02T00", "--days", "1", "--out", out]
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "3 initial times, leads 6..24 h" in result.output
    stats = load_statistics(out, ["t850", "z500", "sp"], fakes.EMU_GRID.name)
    assert stats.attrs["inits"] == "2020-01-01T00:00 .. 2020-01-02T00:00, 3 times"
    again = CliRunner().invoke(main, [str(a) for a in args])
    assert again.exit_code != 0 and "already exists" in again.output


def test_the_skill_report_labels_an_in_sample_climatology_and_checks_its_window(tmp_path):
    from click.testing import CliRunner

    import fakes
    from dafusion.cli.main import main

    truth = fakes.truth_file(tmp_path / "truth.nc", days=4)
    checkpoint = fakes.emulator_checkpoint(tmp_path / "emulator")
    base = ["emulator", "report", "--checkpoint", checkpoint, "--truth", truth, "--start",
            "2020-01-01", "--every-days", "1", "--days", "1", "--free-days", "1"]
    ok = CliRunner().invoke(main, [str(a) for a in base + ["--inits", "2", "--out",
                                                            tmp_path / "rep"]])
    assert ok.exit_code == 0, ok.output
    assert "IN-SAMPLE" in (tmp_path / "rep" / "skill.md").read_text()
    late = CliRunner().invoke(main, [str(a) for a in base + ["--inits", "5", "--out",
                                                              tmp_path / "rep2"]])
    assert late.exit_code != 0
    assert "need the truth until 2020-01-06T00:00" in late.output
    missing = CliRunner().invoke(main, ["emulator", "report", "--checkpoint", str(checkpoint),
                                        "--truth", str(tmp_path / "none.zarr"), "--out",
                                        str(tmp_path / "rep3")])
    assert missing.exit_code != 0 and "cycler world generate" in missing.output
