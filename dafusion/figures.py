"""The one matplotlib set-up: a headless backend, and saving a figure and closing it."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (imported on first use: it is slow)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path, dpi: int = 80) -> Path:
    """Lay out, write (atomically: ``io.atomic_write``) and close ``fig``; returns ``path``."""
    from dafusion.io import atomic_write

    fig.tight_layout()
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format=Path(path).suffix[1:]))
    finally:
        pyplot().close(fig)
    return Path(path)
