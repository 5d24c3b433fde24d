"""Checkpoint directories, one format for the prior and the emulator.

::

    <checkpoint>/
      <kind>.yaml         what the model is (``format``: dafusion-<kind>-1, grid, channels,
                          architecture); written by the model's own module
      ...                 the model's statistics (normaliser.nc, stats.nc, static.nc)
      weights.pt          a plain state_dict, loaded with ``weights_only=True``
      record.json         training/import record with the sha256 of weights.pt
      training_state.pt   (training runs only) optimiser, EMA, RNG states

A directory is built under ``<name>.partial`` and renamed when complete
(``dafusion.io``), so a checkpoint that exists is whole; reading verifies the
weights' hash before it loads them. ``prior/checkpoint.py`` and
``emulator/checkpoint.py`` add what their model needs (``save_prior``/``load_prior``,
``save_emulator``/``load_emulator``).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml

from dafusion.config import ConfigError, parse_yaml
from dafusion.io import commit_directory, partial_directory, recover_directory, sha256

WEIGHTS, RECORD, TRAINING_STATE = "weights.pt", "record.json", "training_state.pt"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the directory and the file."""


def write_checkpoint(path: str | Path, kind: str, meta: dict[str, Any],
                     weights: torch.nn.Module, record: dict[str, Any], *,
                     files: Callable[[Path], None] | None = None,
                     training_state: dict[str, Any] | None = None) -> Path:
    """``<kind>.yaml`` (``meta`` plus its format), ``files(tmp)`` (statistics), the weights,
    the record with their hash and the training state, then the rename."""
    path = Path(path)
    tmp = partial_directory(path)
    (tmp / f"{kind}.yaml").write_text(yaml.safe_dump({"format": f"dafusion-{kind}-1", **meta},
                                                     sort_keys=False))
    if files is not None:
        files(tmp)
    torch.save({k: v.detach().cpu() for k, v in weights.state_dict().items()}, tmp / WEIGHTS)
    (tmp / RECORD).write_text(json.dumps({**record, "weights_sha256": sha256(tmp / WEIGHTS)},
                                         indent=1))
    if training_state is not None:
        torch.save(training_state, tmp / TRAINING_STATE)
    return commit_directory(tmp, path)


def read_checkpoint_meta(path: str | Path, kind: str, required: tuple[str, ...],
                         error: type[CheckpointError] = CheckpointError) -> dict[str, Any]:
    """The parsed ``<kind>.yaml`` of a complete checkpoint directory, format checked."""
    path = Path(path)
    recover_directory(path)
    if not path.is_dir():
        raise error(f"{path}: not a {kind} checkpoint directory")
    for name in (f"{kind}.yaml", *required, WEIGHTS, RECORD):
        if not (path / name).exists():
            raise error(f"{path}: incomplete checkpoint, {name} is missing")
    try:
        raw = parse_yaml((path / f"{kind}.yaml").read_text(encoding="utf-8"),
                         str(path / f"{kind}.yaml"))
    except UnicodeDecodeError:
        raise error(f"{path / f'{kind}.yaml'}: not a UTF-8 text file") from None
    except ConfigError as err:
        raise error(str(err)) from None
    if not isinstance(raw, dict) or raw.get("format") != f"dafusion-{kind}-1":
        raise error(f"{path / f'{kind}.yaml'}: not a dafusion-{kind}-1 checkpoint")
    return raw


def read_weights(path: str | Path,
                 error: type[CheckpointError] = CheckpointError) -> dict[str, torch.Tensor]:
    """``weights.pt`` after its sha256 is checked against ``record.json``; no pickle."""
    path = Path(path)
    expected = read_record(path, error).get("weights_sha256")
    if expected is None:
        warnings.warn(f"{path / RECORD}: no weights_sha256, so {WEIGHTS} cannot be verified "
                      "(a checkpoint written by this package records it)", stacklevel=2)
    elif expected != sha256(path / WEIGHTS):
        raise error(f"{path / WEIGHTS}: corrupt (sha256 differs from {RECORD})")
    try:
        return torch.load(path / WEIGHTS, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises several types for bad files
        raise error(f"{path / WEIGHTS}: unreadable or truncated ({err})") from None


def read_record(path: str | Path,
                error: type[CheckpointError] = CheckpointError) -> dict[str, Any]:
    """``record.json`` of a checkpoint (a mapping), or ``error`` naming the file."""
    try:
        record = json.loads((Path(path) / RECORD).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise error(f"{Path(path) / RECORD}: unreadable ({err})") from None
    if not isinstance(record, dict):
        raise error(f"{Path(path) / RECORD}: not a JSON object")
    return record
