"""LUCIE compatibility: the architecture of LUCIE's inference script, a synthetic
checkpoint and statistics file in LUCIE's formats, import, load and bad checkpoints."""

import json

import numpy as np
import pytest
import torch
import xarray as xr

from dafusion.config import load_config
from dafusion.emulator.checkpoint import (
    EmulatorCheckpointError,
    import_lucie,
    load_emulator,
    save_emulator,
)
from dafusion.emulator.sfno import SFNO
from dafusion.grids import LegendreGaussGrid

LUCIE = LegendreGaussGrid(48, 96)


def lucie_expected_shapes() -> dict[str, tuple[int, ...]]:
    """Parameter names and shapes of LUCIE's SFNO, written out from its published settings
    (embed 72, 8 layers, 7 inputs, 6 outputs, 48x96, hard-thresholding 0.9 -> 43 degrees,
    dhconv, MLP ratio 2, one encoder layer, big skip, lat-lon embedding, instance norm)."""
    e, shapes = 72, {}
    shapes["encoder.0.weight"] = (e, 7, 1, 1)
    shapes["encoder.0.bias"] = (e,)
    shapes["encoder.2.weight"] = (e, e, 1, 1)
    shapes["pos_embed"] = (1, e, 48, 96)
    for i in range(8):
        b = f"blocks.{i}."
        shapes.update({b + "norm0.weight": (e,), b + "norm0.bias": (e,),
                       b + "filter.filter.weight": (e, e, 43, 2),
                       b + "filter.filter.bias": (1, e, 1, 1),
                       b + "inner_skip.weight": (e, e, 1, 1), b + "inner_skip.bias": (e,),
                       b + "norm1.weight": (e,), b + "norm1.bias": (e,),
                       b + "mlp.fwd.0.weight": (2 * e, e, 1, 1), b + "mlp.fwd.0.bias": (2 * e,),
                       b + "mlp.fwd.2.weight": (e, 2 * e, 1, 1), b + "mlp.fwd.2.bias": (e,)})
    shapes["decoder.0.weight"] = (e, e + 7, 1, 1)
    shapes["decoder.0.bias"] = (e,)
    shapes["decoder.2.weight"] = (6, e, 1, 1)
    return shapes


def test_lucie_config_builds_lucies_architecture():
    cfg = load_config("configs/lucie.yaml").emulator
    net = SFNO(7, 6, (48, 96), cfg.network)
    got = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert got == lucie_expected_shapes()
    assert sum(np.prod(s) for s in got.values()) == 4_122_864


@pytest.fixture
def lucie_files(tmp_path):
    """A LUCIE-format .pth (bare state_dict, with Modulus' device_buffer) and .npz."""
    gen = torch.Generator().manual_seed(0)
    state = {k: torch.randn(*s, generator=gen) * 0.02 for k, s in lucie_expected_shapes().items()}
    state["device_buffer"] = torch.empty(0)
    torch.save(state, tmp_path / "lucie.pth")
    # LUCIE's generator: raw_* over T, q, u, v, sp, tisr, oro (+ one unused slot)
    np.savez(tmp_path / "stats.npz",
             raw_means=np.array([280.0, 5e-3, 1.0, 0.0, 98000.0, 1.2e6, 380.0, 0.0]),
             raw_stds=np.array([15.0, 4e-3, 6.0, 5.0, 900.0, 1.4e6, 800.0, 0.0]),
             diff_means=np.zeros(5), diff_stds=np.array([1.0, 5e-4, 2.0, 2.0, 150.0]),
             diag_means=np.array([0.1]), diag_stds=np.array([0.3]),
             data_inp=np.zeros((2, 7, 4, 4)))
    oro = xr.Dataset({"orography": (("lat", "lon"), np.linspace(0, 3000, 48 * 96)
                                    .reshape(48, 96))},
                     coords={"lat": LUCIE.lat, "lon": LUCIE.lon})
    oro.to_netcdf(tmp_path / "oro.nc")
    return tmp_path


def lucie_config(tmp_path):
    return load_config("configs/lucie.yaml", [f"emulator.orography={tmp_path / 'oro.nc'}"])


def test_import_load_and_forecast(lucie_files):
    cfg = lucie_config(lucie_files)
    path = import_lucie(lucie_files / "lucie.pth", lucie_files / "stats.npz", cfg.emulator,
                        lucie_files / "imported")
    model = load_emulator(path)
    state = torch.load(lucie_files / "lucie.pth", weights_only=True)
    for name, value in model.net.state_dict().items():
        assert torch.equal(value, state[name]), name
    np.testing.assert_array_equal(model.stats.forcing_mean, [1.2e6, 380.0])
    np.testing.assert_array_equal(model.stats.tendency_std, [1.0, 5e-4, 2.0, 2.0, 150.0])
    assert model.output_channels == ["t2m", "q925", "u10", "v10", "sp", "tp6"]
    init = xr.DataArray(
        np.broadcast_to(np.array([280.0, 5e-3, 1.0, 0.0, 98000.0])[None, :, None, None],
                        (2, 5, 48, 96)).copy(),
        dims=("member", "channel", "lat", "lon"),
        coords={"channel": model.channels, "lat": LUCIE.lat, "lon": LUCIE.lon,
                "time": np.datetime64("2020-01-01T12", "ns")})
    fc = model.forecast(init, 2)
    assert fc.shape == (2, 2, 6, 48, 96) and np.isfinite(fc.values).all()
    assert (fc.sel(channel="tp6").values > -LOG_SCALE_FLOOR).all()
    record = json.loads((path / "record.json").read_text())
    assert record["source"] == "LUCIE import" and len(record["weights_file_sha256"]) == 64


LOG_SCALE_FLOOR = 1e-2  # (exp(x) - 1) * 1e-2 > -1e-2 for every x


def test_mismatching_checkpoint_lists_the_parameters(lucie_files):
    state = torch.load(lucie_files / "lucie.pth", weights_only=True)
    del state["blocks.3.mlp.fwd.0.bias"]
    state["blocks.0.filter.filter.weight"] = torch.zeros(72, 72, 44, 2)
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, lucie_files / "bad.pth")
    cfg = lucie_config(lucie_files)
    with pytest.raises(EmulatorCheckpointError) as err:
        import_lucie(lucie_files / "bad.pth", lucie_files / "stats.npz", cfg.emulator,
                     lucie_files / "out")
    msg = str(err.value)
    assert "bad.pth" in msg and "missing ['blocks.3.mlp.fwd.0.bias']" in msg
    assert "unexpected ['extra.weight']" in msg
    assert "blocks.0.filter.filter.weight (72, 72, 44, 2) vs (72, 72, 43, 2)" in msg
    assert not (lucie_files / "out").exists()


def test_bad_statistics_and_orography(lucie_files):
    cfg = lucie_config(lucie_files)
    np.savez(lucie_files / "short.npz", raw_means=np.zeros(3), raw_stds=np.ones(3),
             diff_stds=np.ones(5), diag_means=np.zeros(1), diag_stds=np.ones(1))
    with pytest.raises(EmulatorCheckpointError, match=r"short.npz: 3 raw, 5 tendency"):
        import_lucie(lucie_files / "lucie.pth", lucie_files / "short.npz", cfg.emulator,
                     lucie_files / "o1")
    np.savez(lucie_files / "nokey.npz", raw_means=np.zeros(8))
    with pytest.raises(EmulatorCheckpointError, match=r"nokey.npz: keys \['raw_stds'"):
        import_lucie(lucie_files / "lucie.pth", lucie_files / "nokey.npz", cfg.emulator,
                     lucie_files / "o2")
    xr.Dataset({"orography": (("lat", "lon"), np.zeros((32, 64)))},
               coords={"lat": np.linspace(-87.1875, 87.1875, 32),
                       "lon": np.arange(64) * 5.625}).to_netcdf(lucie_files / "oro32.nc")
    cfg = load_config("configs/lucie.yaml", [f"emulator.orography={lucie_files / 'oro32.nc'}"])
    with pytest.raises(ValueError, match=r"oro32.nc: orography on equiangular_32x64, the "
                                         r"emulator runs on legendre_gauss_48x96"):
        import_lucie(lucie_files / "lucie.pth", lucie_files / "stats.npz", cfg.emulator,
                     lucie_files / "o3")


def test_checkpoint_round_trip_and_refusals(tmp_path):
    from test_emulator import state, tiny_sfno

    model = tiny_sfno()
    save_emulator(tmp_path / "ck", model, {"note": "test"})
    loaded = load_emulator(tmp_path / "ck")
    np.testing.assert_array_equal(model.forecast(state(), 3).values,
                                  loaded.forecast(state(), 3).values)
    with pytest.raises(EmulatorCheckpointError, match="runs on legendre_gauss_16x32, expected"):
        load_emulator(tmp_path / "ck", grid=LUCIE)
    with pytest.raises(EmulatorCheckpointError, match=r"forecasts channels \['t850', 'z500'\]"):
        load_emulator(tmp_path / "ck", channels=["t850"])
    weights = tmp_path / "ck" / "weights.pt"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(EmulatorCheckpointError, match="weights.pt: corrupt"):
        load_emulator(tmp_path / "ck")
    (tmp_path / "ck" / "stats.nc").unlink()
    with pytest.raises(EmulatorCheckpointError, match="stats.nc is missing"):
        load_emulator(tmp_path / "ck")
