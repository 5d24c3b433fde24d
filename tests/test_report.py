"""``cycler report``: calibration metrics against brute force, and the figures of a tiny
run (files exist, non-empty, the expected set)."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

import fakes as cycle_fakes
from dafusion.cli import main
from dafusion.cycler.metrics import rank_histogram, spread_skill
from dafusion.cycler.reporting.report import ReportError, RunView, make_report, obs_summary
from dafusion.cycler.run import start_run


def test_rank_histogram_brute_force():
    rng = np.random.default_rng(2)
    ens, truth = rng.normal(size=(4, 5, 6)), rng.normal(size=(5, 6))
    expected = np.zeros(5, int)
    for i in range(5):
        for j in range(6):
            expected[int(np.sum(ens[:, i, j] < truth[i, j]))] += 1
    np.testing.assert_array_equal(rank_histogram(ens, truth), expected)
    # a calibrated ensemble (truth drawn like the members) gives a flat histogram
    big = rng.normal(size=(9, 200_000))
    hist = rank_histogram(big[:8], big[8])
    np.testing.assert_allclose(hist / hist.sum(), np.full(9, 1 / 9), atol=0.005)


def test_spread_skill_is_one_for_a_calibrated_ensemble():
    rng = np.random.default_rng(3)
    m = 5
    draws = rng.normal(size=(m + 1, 400_000))
    ens, truth = draws[:m], draws[m]
    rmse = np.sqrt(np.mean((ens.mean(0) - truth) ** 2))
    spread = np.sqrt(np.mean(ens.var(0, ddof=1)))
    assert abs(spread_skill(spread, rmse, m) - 1.0) < 0.01


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    sets = cycle_fakes.setup(tmp)
    a, b = tmp / "plain", tmp / "reinit"
    start_run(cycle_fakes.config(sets, "run.mode=plain"), a)
    start_run(cycle_fakes.config(sets, "run.mode=reinit"), b)
    return tmp, a, b


def test_report_of_two_runs(tiny_runs):
    tmp, a, b = tiny_runs
    res = CliRunner().invoke(main, ["report", str(a), str(b), "--variables", "t850,sp",
                                    "--cycles", "0,2", "--out", str(tmp / "rep")])
    assert res.exit_code == 0, res.output
    out = tmp / "rep"
    expected = {"skill.png", "calibration.png", "obs_space.png"}
    for ch in ("t850", "sp"):
        expected |= {f"map_{ch}_c000.png", f"map_{ch}_c002.png", f"superres_{ch}_c000.png",
                     f"spectra_{ch}.png", f"trace_{ch}.png", f"scatter_{ch}.png"}
    assert {p.name for p in out.glob("*.png")} == expected
    assert all(p.stat().st_size > 5000 for p in out.glob("*.png"))
    page = (out / "report.md").read_text()
    for name in expected:
        assert f"]({name})" in page, name
    assert "| plain | stations |" in page and "| reinit | emulator |" in page


def test_obs_summary_matches_the_csv(tiny_runs):
    _, _, b = tiny_runs
    run = RunView.open(b)
    rows = [r for r in run.obs_rows if r["source"] == "stations"]
    s = next(x for x in obs_summary([run]) if x["source"] == "stations")
    assert s["cycles"] == 3
    np.testing.assert_allclose(s["oma_rms"], np.sqrt(np.mean([float(r["oma_rms"]) ** 2
                                                             for r in rows])))
    assert np.isfinite(s["omb_rms"])  # cycles 1 and 2 have a background


def test_report_refuses_unknown_variables_and_cycles(tiny_runs):
    tmp, a, _ = tiny_runs
    with pytest.raises(ReportError, match=r"--variables \['q850'\]"):
        make_report([a], tmp / "x", variables=["q850"])
    with pytest.raises(ReportError, match=r"--cycles \[9\]: plain has cycles \[0, 1, 2\]"):
        make_report([a], tmp / "x", cycles=[9])
