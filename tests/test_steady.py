"""The steady-state summary of long cycles (``cycler.reporting.steady``) on series whose
answers are known, and compare's lead-day blocks for runs of months."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from dafusion.cycler.campaigns.compare import block_days, scores_by_lead
from dafusion.cycler.reporting.steady import effective_size, steady_state, table, trend


def _rows(error, days=30, spread=None):
    """metrics.csv rows of one channel every 12 h from lead 0 with RMSE ``error(day)``."""
    leads = np.arange(0, 24 * days + 1, 12)
    return [{"channel": "t850", "lead_hours": int(h), "rmse": float(error(h / 24)),
             "spread": float(spread(h / 24) if spread else 0.5 * error(h / 24)),
             "crps": 0.4 * float(error(h / 24))}
            for h in leads]


def test_a_noise_free_line_has_its_slope_and_no_interval():
    days = np.arange(20, 30.5, 0.5)
    slope, low, high, n_eff = trend(days, 3.0 + 0.2 * days)
    assert slope == pytest.approx(0.2, rel=1e-12)
    assert low == pytest.approx(0.2, rel=1e-9) and high == pytest.approx(0.2, rel=1e-9)
    assert n_eff == days.size


def test_uncorrelated_residuals_give_the_ordinary_interval():
    """Residuals with negative lag-1 correlation count as independent (r₁ clipped at 0):
    scipy's ordinary least squares and Student's t with n − 2."""
    days = np.arange(20, 30.5, 0.5)
    values = 1.0 + 0.05 * days + 0.3 * (-1.0) ** np.arange(days.size) \
        + 0.1 * np.sin(7 * days)
    fit = stats.linregress(days, values)
    slope, low, high, n_eff = trend(days, values)
    assert n_eff == days.size
    half = stats.t.ppf(0.975, days.size - 2) * fit.stderr
    assert slope == pytest.approx(fit.slope, rel=1e-10)
    assert (low, high) == pytest.approx((fit.slope - half, fit.slope + half), rel=1e-9)


def test_effective_size_of_a_series_with_known_lag_one_correlation():
    # 1, 1, −1, −1, ...: Σ x_i x_{i+1} = 1 over n = 8, Σ x² = 8, r₁ = 1/8
    x = np.array([1.0, 1, -1, -1, 1, 1, -1, -1])
    assert effective_size(x) == pytest.approx(8 * (1 - 1 / 8) / (1 + 1 / 8), rel=1e-12)


def test_an_error_that_grows_for_five_days_then_stays_settles_on_day_five():
    rows = _rows(lambda d: 2.0 * min(d, 5.0))
    s = steady_state(rows, "t850")
    assert s.error == pytest.approx(10.0) and s.spread == pytest.approx(5.0)
    assert (s.trend, s.trend_low, s.trend_high) == pytest.approx((0.0, 0.0, 0.0), abs=1e-9)
    assert s.settled_day == 5
    assert s.n == sum(1 for r in rows if r["lead_hours"] >= 24 * 30 * 2 / 3)
    # still growing at the end: a positive trend and no settling day
    growing = steady_state(_rows(lambda d: 1.0 + 0.1 * d), "t850")
    assert growing.trend == pytest.approx(1.0, rel=1e-9) and growing.trend_low > 0
    assert growing.settled_day is None
    # too short to tell: a 7-day run has 5 analyses in its last third
    assert steady_state(_rows(lambda d: 1.0, days=7), "t850") is None
    line = next(x for x in table([("r", rows)], ["t850"]).splitlines()
                if x.startswith("| t850 |"))
    assert line.startswith("| t850 | r | 10 | 5 | ") and line.endswith("] | 5 |")


def test_compare_groups_lead_days_of_a_long_run_in_blocks():
    assert [block_days(d) for d in (7, 14, 15, 30, 90)] == [1, 1, 2, 4, 10]
    rows = _rows(lambda d: 1.0 + d)
    scores = scores_by_lead(rows, members=8, block_days=4)
    assert list(scores["rmse"]["t850"])[:3] == ["0 h", "days 0-3", "days 4-7"]
    first = [r["rmse"] for r in rows if 0 < r["lead_hours"] < 96]
    assert scores["rmse"]["t850"]["days 0-3"] == pytest.approx(np.sqrt(np.mean(np.square(first))))


def test_the_steady_state_over_the_last_days_uses_exactly_those_analyses():
    """``days``: the analyses with lead ≥ last lead − 24·days, and no others (a 60-day run's
    last 30 days are 61 analyses); RMS error and the slope recomputed here."""
    rows = _rows(lambda d: 1.0 + 0.01 * d + 0.3 * np.sin(d), days=60)
    s = steady_state(rows, "t850", days=30)
    last = [r for r in rows if r["lead_hours"] >= 24 * 30]
    assert s.n == len(last) == 61
    rmse = np.array([r["rmse"] for r in last])
    assert s.error == pytest.approx(float(np.sqrt(np.mean(rmse ** 2))), rel=1e-12)
    days = np.array([r["lead_hours"] for r in last]) / 24
    assert s.trend == pytest.approx(10 * stats.linregress(days, rmse).slope, rel=1e-9)
    assert s.n != steady_state(rows, "t850").n  # the last third is 20 days
    assert table([("r", rows)], ["t850"], days=30).startswith(
        "### Steady state (the last 30 days of each run)")
