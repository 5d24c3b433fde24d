"""The README's main job: the default 7-day reinit run on the embedded OSSE (shipped truth,
demo prior, demo emulator, synthetic radiosondes), 8 members, on the CPU."""

import csv
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from dafusion.cli import main
from dafusion.normalise import Normaliser
from dafusion.prior import demo_prior_path


@pytest.mark.slow
def test_default_reinit_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(main, ["run", "--mode", "reinit", "--start", "2020-01-01",
                                    "--name", "demo"])
    assert res.exit_code == 0, res.output
    run = tmp_path / "runs" / "demo"
    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert len({r["cycle"] for r in rows}) == 15
    std = Normaliser.load(Path(demo_prior_path()) / "normaliser.nc")
    clim = dict(zip(std.channels, std.std))
    # every analysis beats climatology (whose RMSE is about the channel std), most by far
    ratio = np.array([float(r["rmse"]) / clim[r["channel"]] for r in rows])
    assert ratio.max() < 1.0 and np.median(ratio) < 0.4, (ratio.max(), np.median(ratio))
    spread = np.array([float(r["spread"]) for r in rows])
    assert np.all(spread > 0)
