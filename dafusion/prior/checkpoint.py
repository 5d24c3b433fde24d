"""Prior checkpoints (``dafusion.checkpoint`` directories).

::

    <checkpoint>/
      prior.yaml          architecture, EDM settings (sigma_data!), grid, channels
      normaliser.nc       per-channel statistics (dafusion.normalise)
      weights.pt          EMA weights
      record.json         training record: steps, wall time, hardware, loss curve,
                          data span, sha256 of weights.pt
      training_state.pt   (training runs only) raw weights, optimiser, EMA, RNG states

Loading checks the grid and the channels against what the caller expects and
verifies the weights' hash; it never falls back to a default ``sigma_data``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from dafusion.checkpoint import (
    CheckpointError,
    read_checkpoint_meta,
    read_record,
    read_weights,
    write_checkpoint,
)
from dafusion.config import ConfigError, EDMConfig, NetworkConfig, from_dict
from dafusion.grids import AnyGrid, grid_from_name
from dafusion.normalise import Normaliser
from dafusion.prior.edm import EDMDenoiser
from dafusion.prior.network import SongUNet

__all__ = ["CheckpointError", "PriorMeta", "build_denoiser", "export_prior", "load_prior",
           "read_meta", "save_prior"]


@dataclasses.dataclass
class PriorMeta:
    """What a checkpoint says about itself (``prior.yaml``)."""

    grid: AnyGrid
    channels: list[str]
    network: NetworkConfig
    edm: EDMConfig


def build_denoiser(meta: PriorMeta) -> EDMDenoiser:
    net = SongUNet(len(meta.channels), meta.grid.shape, meta.network)
    return EDMDenoiser(net, meta.edm.sigma_data)


def save_prior(path: Path, meta: PriorMeta, ema: torch.nn.Module, normaliser: Normaliser,
               record: dict[str, Any], training_state: dict[str, Any] | None = None) -> Path:
    """Write a complete checkpoint directory at ``path`` (replacing an old one)."""
    return write_checkpoint(
        path, "prior", {"grid": meta.grid.name, "channels": list(meta.channels),
                        "network": dataclasses.asdict(meta.network),
                        "edm": dataclasses.asdict(meta.edm)}, ema, record,
        files=lambda tmp: normaliser.save(tmp / "normaliser.nc"), training_state=training_state)


def read_meta(path: Path) -> PriorMeta:
    path = Path(path)
    raw = read_checkpoint_meta(path, "prior", ("normaliser.nc",))
    if "edm" not in raw or "sigma_data" not in (raw["edm"] or {}):
        raise CheckpointError(f"{path / 'prior.yaml'}: edm.sigma_data is missing; "
                              "refusing to guess it")
    try:
        return PriorMeta(grid_from_name(raw["grid"]), list(raw["channels"]),
                         from_dict(NetworkConfig, raw["network"], "network"),
                         from_dict(EDMConfig, raw["edm"], "edm"))
    except (KeyError, ValueError, ConfigError) as err:
        raise CheckpointError(f"{path / 'prior.yaml'}: {err}") from None


def load_prior(path: str | Path, *, grid: AnyGrid | None = None,
               channels: list[str] | None = None,
               device: str | torch.device = "cpu") -> tuple[EDMDenoiser, Normaliser, PriorMeta]:
    """The EMA denoiser (eval mode), its normaliser and metadata.

    Raises CheckpointError on a grid or channel mismatch, a missing, truncated
    or corrupt file, or weights that do not fit the stated architecture.
    """
    path = Path(path)
    meta = read_meta(path)
    if grid is not None and grid != meta.grid:
        raise CheckpointError(f"{path}: trained on grid {meta.grid.name}, but the data is on "
                              f"{grid.name}")
    if channels is not None and list(channels) != meta.channels:
        raise CheckpointError(f"{path}: trained on channels {meta.channels}, but the "
                              f"configuration asks for {list(channels)}")
    normaliser = Normaliser.load(path / "normaliser.nc")
    normaliser.check_channels(meta.channels, str(path / "normaliser.nc"))
    state = read_weights(path)
    denoiser = build_denoiser(meta)
    try:
        denoiser.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"{path / 'weights.pt'}: does not fit the architecture in "
                              f"prior.yaml ({str(err).splitlines()[0]})") from None
    return denoiser.to(device).eval(), normaliser, meta


def export_prior(src: str | Path, out: str | Path, *, half: bool = False,
                 force: bool = False) -> Path:
    """Copy a checkpoint without its training state, optionally storing the weights
    as float16 (loaded back into float32 parameters); for shipping."""
    src, out = Path(src), Path(out)
    meta = read_meta(src)
    if out.exists() and not force:
        raise FileExistsError(f"{out}: already exists; pass --force to overwrite")
    denoiser, normaliser, _ = load_prior(src)
    record = read_record(src)
    if half:
        denoiser = denoiser.half()
        record["stored_dtype"] = "float16 (EMA weights rounded once at export)"
    return save_prior(out, meta, denoiser, normaliser,
                      {k: v for k, v in record.items() if k != "weights_sha256"})
