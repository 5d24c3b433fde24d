"""``cycler forecast RUN``: forecasts from a run's analyses are those of ``cycler emulator
forecast`` from the same states, scored against the truth by a computation written here."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

import fakes
from dafusion.cli import main
from dafusion.cycler.reporting.forecasts import lead_time_lost
from dafusion.cycler.run import start_run


def _sets(sets):
    return [a for s in sets for a in ("--set", s)]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("forecast")
    sets = fakes.setup(tmp)
    start_run(fakes.config(sets, "run.mode=reinit", "run.days=0.5"), tmp / "run")
    result = CliRunner().invoke(main, ["forecast", str(tmp / "run"), "--days", "1"])
    assert result.exit_code == 0, result.output
    return tmp, sets, result.output


@pytest.mark.parametrize("cycle", [0, 1])
def test_forecasts_equal_cycler_emulator_forecast_from_the_same_states(run, cycle):
    tmp, sets, _ = run
    init = ["2020-01-01T00", "2020-01-01T12"][cycle]
    for start, written in ((tmp / "run" / f"cycle_{cycle:03d}" / "analysis.nc",
                            f"cycle_{cycle:03d}.nc"),
                           (tmp / "truth.nc", f"truth_{cycle:03d}.nc")):
        out = tmp / f"direct_{cycle}_{written}"
        result = CliRunner().invoke(main, [
            "emulator", "forecast", "--truth", str(start), "--init", init, "--days", "1",
            "--out", str(out), *_sets(sets)])
        assert result.exit_code == 0, result.output
        ours = xr.load_dataset(tmp / "run" / "forecasts" / written)
        direct = xr.load_dataset(out)
        assert set(ours.data_vars) == set(direct.data_vars)
        for name in direct.data_vars:
            np.testing.assert_array_equal(ours[name].values, direct[name].values)
        np.testing.assert_array_equal(ours["valid_time"].values, direct["valid_time"].values)


def test_scores_are_the_area_weighted_rmse_against_the_regridded_truth(run):
    """RMSE per lead and channel from the written forecast and the truth on the emulator
    grid, with Gauss-Legendre weights from numpy (the emulator grid is Legendre-Gauss)."""
    from dafusion.data import GriddedSource
    from dafusion.emulator.checkpoint import load_emulator
    from dafusion.emulator.states import on_grid

    tmp, sets, _ = run
    model = load_emulator(tmp / "emulator")
    lat_nodes, weights = np.polynomial.legendre.leggauss(model.grid.lat.size)
    np.testing.assert_allclose(np.sort(np.rad2deg(np.arcsin(lat_nodes))),
                               np.sort(model.grid.lat), atol=1e-9)
    weights = weights[np.argsort(np.rad2deg(np.arcsin(lat_nodes)))]
    if model.grid.lat[0] > model.grid.lat[-1]:
        weights = weights[::-1]
    with open(tmp / "run" / "forecasts" / "scores.csv") as f:
        rows = list(csv.DictReader(f))
    truth = GriddedSource.open(tmp / "truth.nc", model.channels)
    fc = xr.load_dataset(tmp / "run" / "forecasts" / "cycle_001.nc")
    checked = 0
    for r in rows:
        if r["start"] != "analysis" or r["init_cycle"] != "1":
            continue
        lead = np.timedelta64(int(r["lead_hours"]), "h")
        k = int(np.flatnonzero(fc["lead_time"].values == lead)[0])
        valid = fc["valid_time"].values[k]
        verifying = on_grid(truth, np.array([valid]), model.grid, model.channels)
        c = model.channels.index(r["channel"])
        name = {"t850": ("temperature", 850), "z500": ("geopotential", 500),
                "sp": ("surface_pressure", None)}[r["channel"]]
        field = fc[name[0]].isel(lead_time=k, member=0)
        field = field.sel(level=name[1]) if name[1] else field
        err2 = (field.values - verifying.values[0, c]) ** 2
        rmse = np.sqrt((err2.mean(-1) * weights).sum() / weights.sum())
        assert float(r["rmse"]) == pytest.approx(rmse, rel=1e-5)
        checked += 1
    # 4 six-hourly leads in one day, all verifiable (the truth has 4 days), 3 channels
    assert checked == 4 * 3


def test_lead_time_lost_is_exact_on_linear_error_curves():
    leads = np.array([12, 24, 36, 48])
    truth = 2.0 * leads  # the truth's forecasts: error 2 per hour from 0
    analysis = 2.0 * (leads + 12)  # as bad as the truth's forecasts 12 h later
    np.testing.assert_allclose(lead_time_lost(leads, analysis, truth), [12, 12, 12, np.nan])
    # a non-monotone truth curve is made non-decreasing first (0, 24, 24, 72, 96 at
    # 0, 12, 24, 36, 48 h), and the first lead that reaches the error counts: 22 at
    # 11 h, 24 at 12 h, 48 at 30 h, 96 at 48 h
    wavy = np.array([24.0, 20.0, 72.0, 96.0])
    np.testing.assert_allclose(lead_time_lost(leads, np.array([22.0, 24, 48, 96]), wavy),
                               [11 - 12, 12 - 24, 30 - 36, 48 - 48])


def test_compare_sets_the_forecasts_and_the_lead_time_lost_beside_the_scores(run):
    tmp, _, printed = run
    assert "| t850 | 1 |" in printed
    result = CliRunner().invoke(main, ["compare", str(tmp / "run")])
    assert result.exit_code == 0, result.output
    assert "### Forecasts from the analyses" in result.output
    assert "| t850 | from the truth |" in result.output


def test_forecast_refuses_bad_days_and_keeps_what_exists(run):
    tmp, _, _ = run
    before = (tmp / "run" / "forecasts" / "scores.csv").read_bytes()
    again = CliRunner().invoke(main, ["forecast", str(tmp / "run"), "--days", "1"])
    assert again.exit_code == 1 and "already exists; pass --force" in again.output
    bad = CliRunner().invoke(main, ["forecast", str(tmp / "run"), "--days", "0.1",
                                    "--force"])
    assert bad.exit_code == 1 and "--days 0.1: not a positive whole number of 6-hour" \
        in bad.output
    assert (tmp / "run" / "forecasts" / "scores.csv").read_bytes() == before
