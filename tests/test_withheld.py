"""Withheld stations (``run.sources.stations.withhold``): never assimilated, counted
exactly, and verified against with O−A computed here independently of the package."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import fakes
from dafusion.config import ConfigError
from dafusion.cycler.run import run_experiment
from dafusion.cycler.rundir import RunDir
from dafusion.cycler.sources import Cycle, build_sources
from dafusion.cycler.sources.stations import withheld_stations
from dafusion.variables import parse_channel

SETTINGS = ("run.mode=plain", "run.sources.stations.method=bilinear", "run.members=3",
            "run.sources.stations.withhold=0.3", "run.sources.stations.withhold_seed=7")


def test_withheld_stations_are_an_exact_share_and_never_in_an_analysis_term():
    exp = fakes.experiment(*SETTINGS)
    (stations,) = build_sources(exp)
    ids = np.unique(exp.table.station_id)
    assert ids.size == 30
    assert stations.withheld_ids.size == round(0.3 * 30) == 9
    assert set(stations.withheld_ids) <= set(ids)
    # the draw is numpy's, from the sorted ids, with the seed
    expected = np.random.default_rng(7).choice(ids, size=9, replace=False)
    assert set(stations.withheld_ids) == set(expected)
    half = np.timedelta64(3, "h")
    for k, t in enumerate(exp.times):
        cycle = Cycle(k, t, None, None, None)
        (used,) = stations.terms(cycle)
        withheld = stations.withheld(cycle)
        assert not set(used.rows.station_id) & set(stations.withheld_ids)
        window = exp.table.window(np.datetime64(t, "ns"), half)
        seen = set(used.rows.station_id) | {s for w in withheld for s in w.rows.station_id}
        assert seen == set(window.station_id)  # every station of the window, once
        for w in withheld:
            assert set(w.rows.station_id) <= set(stations.withheld_ids)
            assert len(w.rows) == int(np.isin(window.station_id, stations.withheld_ids).sum())


def test_a_run_with_withheld_stations_equals_one_whose_table_lacks_them(tmp_path):
    """The analyses are those of a run that never had the withheld stations, bit for bit:
    withholding changes only the diagnostics."""
    exp = fakes.experiment(*SETTINGS)
    out = withheld_stations(exp.table, 0.3, 7)
    run_experiment(exp, tmp_path / "withheld")
    table = exp.table.subset(~np.isin(exp.table.station_id, out))
    run_experiment(fakes.experiment(*SETTINGS[:-2], table=table), tmp_path / "absent")
    a, b = RunDir(tmp_path / "withheld"), RunDir(tmp_path / "absent")
    assert (a.path / "metrics.csv").read_bytes() == (b.path / "metrics.csv").read_bytes()
    for k in range(len(exp.times)):
        name = f"cycle_{k:03d}/members.nc"
        xr.testing.assert_identical(xr.load_dataset(a.path / name),
                                    xr.load_dataset(b.path / name))
    lines_a = (a.path / "obs_diagnostics.csv").read_text().splitlines()
    lines_b = (b.path / "obs_diagnostics.csv").read_text().splitlines()
    assert [line for line in lines_a if ",stations_withheld," not in line] == lines_b
    assert len(lines_a) == 1 + 2 * len(exp.times)


def test_withheld_o_minus_a_and_scores_computed_independently(tmp_path):
    """O−A, O−B, spread and CRPS at the withheld stations from the written members and
    the raw table: bilinear interpolation written out here (periodic in longitude,
    clamped to the outermost rows in latitude), normalised by the run's std."""
    exp = fakes.experiment(*SETTINGS)
    run_experiment(exp, tmp_path / "run")
    run = RunDir(tmp_path / "run")
    out = withheld_stations(exp.table, 0.3, 7)
    rows = [r for r in run.obs_rows() if r["source"] == "stations_withheld"]
    assert [int(r["cycle"]) for r in rows] == list(range(len(exp.times)))
    members = [xr.load_dataset(run.path / f"cycle_{k:03d}" / "members.nc")
               for k in range(len(exp.times))]
    for row, t in zip(rows, exp.times):
        k = int(row["cycle"])
        table = exp.table.window(np.datetime64(t, "ns"), np.timedelta64(3, "h"))
        table = table.subset(np.isin(table.station_id, out))
        assert int(row["used"]) == len(table) > 0
        hx, d = _observed(members[k], table, exp)
        oma = d - hx.mean(0)
        assert row["oma_rms"] == pytest.approx(np.sqrt(np.mean(oma**2)), rel=1e-4)
        assert row["oma_mean"] == pytest.approx(np.mean(oma), rel=1e-4, abs=1e-6)
        assert row["spread"] == pytest.approx(np.sqrt(hx.var(0, ddof=1).mean()), rel=1e-4)
        m = hx.shape[0]
        pairs = np.abs(hx[:, None] - hx[None]).sum((0, 1)) / (2 * m * (m - 1))
        crps = np.abs(hx - d).mean(0) - pairs
        assert row["crps"] == pytest.approx(crps.mean(), rel=1e-4)
        if k == 0:  # plain mode: no background before the first analysis
            assert np.isnan(row["omb_rms"])
        else:  # the background is the previous analysis mean
            omb = d - _observed(members[k - 1], table, exp)[0].mean(0)
            assert row["omb_rms"] == pytest.approx(np.sqrt(np.mean(omb**2)), rel=1e-4)


def _observed(members: xr.Dataset, table, exp) -> tuple[np.ndarray, np.ndarray]:
    """The members at the table's rows ``(M, n)`` and the observations ``(n,)``,
    normalised by the run's mean and std of each row's channel."""
    channels = {(parse_channel(c).variable.name, parse_channel(c).level): i
                for i, c in enumerate(exp.channels)}
    lat, lon = members["latitude"].values, members["longitude"].values
    hx, d = [], []
    for r in range(len(table)):
        level = None if np.isnan(table.level[r]) else int(table.level[r])
        c = channels[(str(table.variable[r]), level)]
        mean, std = exp.normaliser.mean[c], exp.normaliser.std[c]
        field = members[str(table.variable[r])]
        field = field.sel(level=level) if level is not None else field
        hx.append([(_bilinear(f, lat, lon, table.lat[r], table.lon[r]) - mean) / std
                   for f in field.values.astype(np.float64)])
        d.append((table.value[r] - mean) / std)
    return np.array(hx).T, np.array(d)


def _bilinear(field: np.ndarray, lat: np.ndarray, lon: np.ndarray, plat: float,
              plon: float) -> float:
    """Linear in longitude (periodic), then in latitude (clamped), on a regular grid."""
    order = np.argsort(lat)
    along = np.array([np.interp(plon, lon, row, period=360.0) for row in field[order]])
    return float(np.interp(plat, lat[order], along))


@pytest.mark.parametrize("share", ["-0.1", "1", "nan"])
def test_a_withheld_share_outside_0_1_is_refused(share):
    with pytest.raises(ConfigError, match="withhold"):
        fakes.config(fakes.CYCLE_SETTINGS, f"run.sources.stations.withhold={share}")


def test_compare_reports_the_withheld_stations_from_obs_diagnostics(tmp_path):
    """The table's numbers are the RMS and means over the analyses after the first of
    the rows written (read here with the csv module); a run without withheld stations
    has no such table."""
    import csv

    from dafusion.cycler.campaigns.compare import compare

    exp = fakes.experiment(*SETTINGS)
    run_experiment(exp, tmp_path / "w")
    with open(tmp_path / "w" / "obs_diagnostics.csv") as f:
        rows = [r for r in csv.DictReader(f)
                if r["source"] == "stations_withheld" and r["cycle"] != "0"]
    assert len(rows) == len(exp.times) - 1

    def rms(key):
        return np.sqrt(np.mean([float(r[key]) ** 2 for r in rows]))

    text, _ = compare([tmp_path / "w"])
    section = text[text.index("### Withheld stations"):]
    line = next(x for x in section.splitlines() if x.startswith("| w |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    sigma_y = np.mean([float(r["sigma_y"]) for r in rows])
    expected = [np.mean([float(r["used"]) for r in rows]), rms("omb_rms"), rms("oma_rms"),
                rms("spread"), np.mean([float(r["crps"]) for r in rows]),
                np.sqrt(rms("spread") ** 2 + sigma_y) / rms("oma_rms")]
    assert [float(c) for c in cells[1:]] == pytest.approx(expected, rel=1e-3)
    run_experiment(fakes.experiment(*SETTINGS[:-2]), tmp_path / "all")
    assert "Withheld stations" not in compare([tmp_path / "all"])[0]
