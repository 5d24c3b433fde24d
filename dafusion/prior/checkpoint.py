"""Prior checkpoints: one directory that describes itself.

::

    <checkpoint>/
      prior.yaml          architecture, EDM settings (sigma_data!), grid, channels
      normaliser.nc       per-channel statistics (dafusion.normalise)
      weights.pt          EMA weights: a plain state_dict, loaded with weights_only=True
      record.json         training record: steps, wall time, hardware, loss curve,
                          data span, sha256 of weights.pt
      training_state.pt   (training runs only) raw weights, optimiser, EMA, RNG states

A directory is written under ``<name>.partial`` and renamed when complete, so
a checkpoint that exists is whole. Loading checks the grid and the channels
against what the caller expects and verifies the weights' hash; it never falls
back to a default ``sigma_data``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
import yaml

from dafusion.config import ConfigError, EDMConfig, NetworkConfig, from_dict
from dafusion.grids import AnyGrid, grid_from_name
from dafusion.io import commit_directory, partial_directory, recover_directory, sha256
from dafusion.normalise import Normaliser
from dafusion.prior.edm import EDMDenoiser
from dafusion.prior.network import SongUNet

FORMAT = "dafusion-prior-1"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the directory and the file."""


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
    path = Path(path)
    tmp = partial_directory(path)
    (tmp / "prior.yaml").write_text(yaml.safe_dump({
        "format": FORMAT, "grid": meta.grid.name, "channels": list(meta.channels),
        "network": dataclasses.asdict(meta.network), "edm": dataclasses.asdict(meta.edm)},
        sort_keys=False))
    normaliser.save(tmp / "normaliser.nc")
    state = {k: v.detach().cpu() for k, v in ema.state_dict().items()}
    torch.save(state, tmp / "weights.pt")
    record = {**record, "weights_sha256": sha256(tmp / "weights.pt")}
    (tmp / "record.json").write_text(json.dumps(record, indent=1))
    if training_state is not None:
        torch.save(training_state, tmp / "training_state.pt")
    return commit_directory(tmp, path)


recover = recover_directory


def read_meta(path: Path) -> PriorMeta:
    path = Path(path)
    recover(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: not a checkpoint directory")
    for name in ("prior.yaml", "normaliser.nc", "weights.pt", "record.json"):
        if not (path / name).exists():
            raise CheckpointError(f"{path}: incomplete checkpoint, {name} is missing")
    try:
        raw = yaml.safe_load((path / "prior.yaml").read_text())
    except yaml.YAMLError as err:
        raise CheckpointError(f"{path / 'prior.yaml'}: not valid YAML ({err})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise CheckpointError(f"{path / 'prior.yaml'}: not a {FORMAT} checkpoint")
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
    record = json.loads((path / "record.json").read_text())
    if record.get("weights_sha256") not in (None, sha256(path / "weights.pt")):
        raise CheckpointError(f"{path / 'weights.pt'}: corrupt (sha256 differs from "
                              "record.json)")
    try:
        state = torch.load(path / "weights.pt", map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises several types for bad files
        raise CheckpointError(f"{path / 'weights.pt'}: unreadable or truncated ({err})") from None
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
    record = json.loads((src / "record.json").read_text())
    if half:
        denoiser = denoiser.half()
        record["stored_dtype"] = "float16 (EMA weights rounded once at export)"
    return save_prior(out, meta, denoiser, normaliser,
                           {k: v for k, v in record.items() if k != "weights_sha256"})
