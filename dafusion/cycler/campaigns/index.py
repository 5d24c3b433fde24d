"""``sweep.json``: the index of a sweep or campaign, written and read here only.

::

    {"axes": {key: [values]}, "starts": [ISO start, ...],
     "runs": [{"label", "start", "path" (relative to the sweep's root),
               "config_sha256"}, ...]}

A sweep writes it once, before its first run (:func:`open_index`); running the same
sweep again finds the same index, another plan on the same root is refused. The
statistics over windows (``statistics.py``) and ``cycler compare`` read it
(:func:`read_index`, :func:`is_campaign`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from dafusion.cycler.rundir import RunError
from dafusion.io import write_text

INDEX = "sweep.json"


@dataclasses.dataclass(frozen=True)
class IndexedRun:
    label: str  # the setting, e.g. stations.weight=0.5
    start: str  # the window's first analysis ("" outside a campaign)
    path: Path  # the run directory
    config_sha256: str


@dataclasses.dataclass(frozen=True)
class SweepIndex:
    axes: dict[str, list[str]]
    starts: list[str]
    runs: list[IndexedRun]

    def as_json(self, root: Path) -> dict[str, Any]:
        return {"axes": self.axes, "starts": self.starts,
                "runs": [{"label": r.label, "start": r.start,
                          "path": r.path.relative_to(root).as_posix(),
                          "config_sha256": r.config_sha256} for r in self.runs]}


def open_index(root: Path, index: SweepIndex) -> None:
    """Create ``root`` and its index, or check that an existing one holds this plan."""
    path, text = root / INDEX, index.as_json(root)
    if root.exists():
        if not path.exists() or json.loads(path.read_text()) != text:
            raise RunError(f"{root}: already exists"
                           + (" with another plan (its sweep.json differs); choose another "
                              "--name" if path.exists() else "; choose another --name"))
        return
    root.mkdir(parents=True)
    write_text(path, json.dumps(text, indent=1) + "\n")


def read_index(root: Path) -> SweepIndex:
    """The index of the sweep in ``root``; RunError naming the file when unreadable."""
    path = Path(root) / INDEX
    try:
        data = json.loads(path.read_text())
        runs = [IndexedRun(r["label"], r["start"], Path(root) / r["path"], r["config_sha256"])
                for r in data["runs"]]
        return SweepIndex(dict(data["axes"]), list(data["starts"]), runs)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise RunError(f"{path}: not a readable sweep index ({type(err).__name__}: {err})"
                       ) from None


def is_campaign(root: Path) -> bool:
    """A sweep directory whose runs span windows."""
    return (Path(root) / INDEX).exists() and bool(read_index(root).starts)
