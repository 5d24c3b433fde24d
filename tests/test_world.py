"""The Held-Suarez world (needs the 'world' extra: JAX + dinosaur)."""

import contextlib
import dataclasses

import numpy as np
import pytest
import xarray as xr

from dafusion.config import WorldConfig
from dafusion.data import DataError, GriddedSource
from dafusion.grids import EquiangularGrid

pytest.importorskip("dinosaur", reason="the OSSE world needs the 'world' extra")
from dafusion.world import generate_world, resume_path  # noqa: E402

pytestmark = [pytest.mark.world, pytest.mark.slow]
CHANNELS = ["t850", "t500", "u850", "u500", "v850", "v500", "z850", "z500", "sp"]
SMALL = WorldConfig(spinup_days=1, days=3, chunk_days=1, start="2020-01-01")


@pytest.fixture(scope="module")
def world_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("world") / "world.zarr"
    generate_world(SMALL, path)
    return path


def test_written_world_reads_back(world_store):
    source = GriddedSource.open(world_store, CHANNELS)
    assert source.grid == EquiangularGrid(32, 64)
    times = source.times
    assert times.size == 12 and times[0] == np.datetime64("2020-01-01T00")
    assert np.all(np.diff(times) == np.timedelta64(6, "h"))
    state = source.at("2020-01-03T18").values
    t850, t500, z850, z500, sp = state[0], state[1], state[6], state[7], state[8]
    assert 250 < t850.mean() < 310 and np.all(t500 < t850)  # K, lapse rate
    assert 40000 < z500.mean() < 60000 and 10000 < z850.mean() < 16000  # m2 s-2
    assert 95000 < sp.mean() < 105000  # Pa
    attrs = xr.open_zarr(world_store, consolidated=False).attrs
    assert attrs["dafusion_complete"] == 1 and "dinosaur_version" in attrs
    assert not resume_path(world_store).exists()


def test_generation_is_deterministic_and_resumes_identically(world_store, tmp_path):
    class Stop(Exception):
        pass

    @contextlib.contextmanager
    def interrupting_bar(total, desc):
        class Bar:
            calls = 0

            def update(self, n):
                if desc == "nature run" and n:
                    Bar.calls += 1
                    if Bar.calls == 2:
                        raise Stop

        yield Bar()

    path = tmp_path / "w.zarr"
    with pytest.raises(Stop):
        generate_world(SMALL, path, progress=interrupting_bar)
    assert resume_path(path).exists()
    with pytest.raises(DataError, match="incomplete world store"):
        GriddedSource.open(path, CHANNELS)
    with pytest.raises(FileExistsError, match="--force.*--resume"):
        generate_world(SMALL, path)
    with pytest.raises(ValueError, match="written with another world configuration"):
        generate_world(dataclasses.replace(SMALL, seed=1), path, resume=True)
    generate_world(SMALL, path, resume=True)
    full = GriddedSource.open(world_store, CHANNELS).stack().values
    resumed = GriddedSource.open(path, CHANNELS).stack().values
    np.testing.assert_array_equal(resumed, full)


def test_resume_needs_an_existing_store(tmp_path):
    path = tmp_path / "w.zarr"
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        generate_world(SMALL, path, resume=True)
