"""Progress reporting without a dependency on the command line.

Long library functions take ``progress(total, desc)``: a factory of context
managers with ``update(n)`` and ``set_postfix(**kw)`` (tqdm's interface; the
CLI passes tqdm). ``null_progress`` is the silent default.
"""

from __future__ import annotations

from typing import Any


class NullBar:
    """A progress bar that shows nothing."""

    def __enter__(self) -> NullBar:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def update(self, n: int = 1) -> None:
        return None

    def set_postfix(self, **kw: Any) -> None:
        return None


def null_progress(total: int, desc: str) -> NullBar:
    return NullBar()
