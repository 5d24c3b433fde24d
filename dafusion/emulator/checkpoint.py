"""Emulator checkpoints: one directory that describes itself, and LUCIE import.

::

    <checkpoint>/
      emulator.yaml       grid, channels, diagnostics, forcing, time step, latitude
                          order of the network, SFNO architecture
      stats.nc            global per-channel statistics (EmulatorStats)
      static.nc           static forcing fields (orography), when the forcing needs them
      weights.pt          the network's state_dict
      record.json         training/import record, sha256 of weights.pt
      training_state.pt   (training runs only) optimiser, step, RNG states

The directory format is ``dafusion.checkpoint``'s, shared with the prior.

A LUCIE checkpoint (a bare ``state_dict`` ``.pth`` whose hyperparameters are
not in the file) and its statistics (the ``.npz`` of LUCIE's data generator:
``raw_means``, ``raw_stds``, ``diff_stds``, ``diag_means``, ``diag_stds``)
become such a directory with :func:`import_lucie`, given a configuration
that states the architecture (``configs/lucie.yaml``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from dafusion.checkpoint import (
    CheckpointError,
    read_checkpoint_meta,
    read_record,
    read_weights,
    write_checkpoint,
)
from dafusion.config import ConfigError, EmulatorConfig, SFNOConfig, from_dict
from dafusion.emulator.forcing import read_orography
from dafusion.emulator.model import EmulatorMeta, EmulatorStats, SFNOEmulator
from dafusion.grids import AnyGrid, grid_from_name
from dafusion.io import sha256, write_netcdf

__all__ = ["EmulatorCheckpointError", "import_lucie", "load_emulator", "read_meta",
           "read_record", "save_emulator"]
IGNORED_KEYS = ("device_buffer",)  # Modulus' device marker, no weights


class EmulatorCheckpointError(CheckpointError):
    """An emulator checkpoint that cannot be used; names the directory or file."""


def demo_emulator_path() -> Path:
    return Path(__file__).resolve().parent.parent / "demo" / "emulator"


def meta_from_config(cfg: EmulatorConfig) -> EmulatorMeta:
    return EmulatorMeta(grid_from_name(cfg.grid), list(cfg.channels), list(cfg.diagnostics),
                        list(cfg.log_transform), list(cfg.forcing), cfg.time_step_hours,
                        cfg.lat_order, cfg.network)


def fit_state_dict(net: torch.nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """Load ``state`` into ``net`` or raise naming every missing, unexpected and
    mis-shaped parameter (a ``module.`` prefix from DDP is removed first)."""
    state = {k.removeprefix("module."): v for k, v in state.items()
             if k.removeprefix("module.") not in IGNORED_KEYS}
    own = net.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
              for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    problems = []
    if missing:
        problems.append(f"missing {missing}")
    if unexpected:
        problems.append(f"unexpected {unexpected}")
    if shapes:
        problems.append(f"shape (file vs configured) {shapes}")
    if problems:
        raise EmulatorCheckpointError(f"{where}: the weights do not fit the configured "
                                      f"architecture: " + "; ".join(problems))
    net.load_state_dict(state)


def save_emulator(path: str | Path, emulator: SFNOEmulator, record: dict[str, Any],
                  training_state: dict[str, Any] | None = None) -> Path:
    """Write a complete checkpoint directory at ``path`` (replacing an old one)."""
    meta = emulator.meta

    def files(tmp: Path) -> None:
        emulator.stats.save(tmp / "stats.nc", meta)
        if emulator.static:
            write_netcdf(xr.Dataset({k: (("lat", "lon"), v) for k, v in emulator.static.items()},
                                    coords={"lat": meta.grid.lat, "lon": meta.grid.lon}),
                         tmp / "static.nc")

    return write_checkpoint(
        path, "emulator", {"grid": meta.grid.name, "channels": meta.channels,
                           "diagnostics": meta.diagnostics, "log_transform": meta.log_transform,
                           "forcing": meta.forcing, "time_step_hours": meta.time_step_hours,
                           "lat_order": meta.lat_order,
                           "network": dataclasses.asdict(meta.network)},
        emulator.net, record, files=files, training_state=training_state)


def read_meta(path: str | Path) -> EmulatorMeta:
    path = Path(path)
    raw = read_checkpoint_meta(path, "emulator", ("stats.nc",), EmulatorCheckpointError)
    try:
        return EmulatorMeta(grid_from_name(raw["grid"]), list(raw["channels"]),
                            list(raw["diagnostics"]), list(raw["log_transform"]),
                            list(raw["forcing"]), int(raw["time_step_hours"]),
                            str(raw["lat_order"]),
                            from_dict(SFNOConfig, raw["network"], "network"))
    except (KeyError, TypeError, ValueError, ConfigError) as err:
        raise EmulatorCheckpointError(f"{path / 'emulator.yaml'}: {err}") from None


def load_emulator(path: str | Path, *, grid: AnyGrid | None = None,
                  channels: list[str] | None = None,
                  device: str | torch.device = "cpu") -> SFNOEmulator:
    """The emulator (eval mode). Raises EmulatorCheckpointError on a grid or channel
    mismatch, a missing/corrupt file, or weights that do not fit the architecture."""
    path = Path(path)
    meta = read_meta(path)
    if grid is not None and grid != meta.grid:
        raise EmulatorCheckpointError(f"{path}: runs on {meta.grid.name}, expected {grid.name}")
    if channels is not None and list(channels) != meta.channels:
        raise EmulatorCheckpointError(f"{path}: forecasts channels {meta.channels}, the "
                                      f"configuration asks for {list(channels)}")
    try:
        stats = EmulatorStats.load(path / "stats.nc", meta)
    except ValueError as err:
        raise EmulatorCheckpointError(str(err)) from None
    static: dict[str, np.ndarray] = {}
    if (path / "static.nc").exists():
        with xr.open_dataset(path / "static.nc") as ds:
            static = {k: ds[k].values.astype(float) for k in ds.data_vars}
    state = read_weights(path, EmulatorCheckpointError)
    try:
        emulator = SFNOEmulator(meta, stats, static=static)
    except ValueError as err:
        raise EmulatorCheckpointError(f"{path}: {err}") from None
    fit_state_dict(emulator.net, state, str(path / "weights.pt"))
    return emulator.to(device).eval()


def lucie_stats(npz: str | Path, meta: EmulatorMeta) -> EmulatorStats:
    """EmulatorStats from the statistics file of LUCIE's data generator.

    LUCIE's ``raw_means``/``raw_stds`` run over the prognostic variables, then
    the forcing (tisr, orography); ``diff_stds`` over the prognostic ones;
    ``diag_means``/``diag_stds`` over the diagnostics (log precipitation).
    Only these keys are read (the file also holds the whole training set).
    """
    npz = Path(npz)
    p, f, d = len(meta.channels), len(meta.forcing), len(meta.diagnostics)
    try:
        data = np.load(npz, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise EmulatorCheckpointError(f"{npz}: unreadable statistics file ({err})") from None
    with data:
        need = ("raw_means", "raw_stds", "diff_stds", "diag_means", "diag_stds")
        missing = [k for k in need if k not in data.files]
        if missing:
            raise EmulatorCheckpointError(f"{npz}: keys {missing} are missing (has "
                                          f"{data.files})")
        try:  # arrays are read here: an object array (a pickle) is refused here
            raw_m, raw_s, diff_s, diag_m, diag_s = (np.ravel(data[k]).astype(float)
                                                    for k in need)
        except (OSError, ValueError) as err:
            raise EmulatorCheckpointError(f"{npz}: unreadable statistics ({err})") from None
    if raw_m.size < p + f or diff_s.size < p or diag_m.size < d:
        raise EmulatorCheckpointError(
            f"{npz}: {raw_m.size} raw, {diff_s.size} tendency and {diag_m.size} diagnostic "
            f"statistics; the configuration needs {p}+{f}, {p} and {d}")
    stats = EmulatorStats(raw_m[:p], raw_s[:p], diff_s[:p], raw_m[p:p + f], raw_s[p:p + f],
                          diag_m[:d], diag_s[:d])
    try:
        stats.check(meta, str(npz))
    except ValueError as err:
        raise EmulatorCheckpointError(str(err)) from None
    return stats


def import_lucie(weights: str | Path, stats_npz: str | Path, cfg: EmulatorConfig,
                 out: str | Path, *, force: bool = False) -> Path:
    """A dafusion emulator checkpoint from LUCIE's ``.pth`` and statistics ``.npz``."""
    weights, out = Path(weights), Path(out)
    if out.exists() and not force:
        raise FileExistsError(f"{out}: already exists; pass --force to overwrite")
    meta = meta_from_config(cfg)
    stats = lucie_stats(stats_npz, meta)
    static = {"orography": read_orography(cfg.orography, meta.grid)} \
        if "orography" in meta.forcing else {}
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001
        raise EmulatorCheckpointError(f"{weights}: unreadable or not a state_dict ({err})"
                                      ) from None
    if isinstance(state, dict) and "model_state" in state:  # a training checkpoint
        state = state["model_state"]
    if not isinstance(state, dict):
        raise EmulatorCheckpointError(f"{weights}: holds a {type(state).__name__}, expected a "
                                      "state_dict")
    emulator = SFNOEmulator(meta, stats, static=static)
    fit_state_dict(emulator.net, state, str(weights))
    record = {"source": "LUCIE import", "weights_file": weights.name,
              "weights_file_sha256": sha256(weights), "stats_file": Path(stats_npz).name}
    return save_emulator(out, emulator, record)
