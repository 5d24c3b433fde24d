"""The data layer's boundary: its error, file-or-URL paths, and reading values under
guard (a reader's failure names the file; what readers log is collected, not printed)."""

from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path
from typing import Iterator, TypeVar

import xarray as xr

XarrayObject = TypeVar("XarrayObject", xr.Dataset, xr.DataArray)


class DataError(ValueError):
    """A data file that cannot be used as claimed; the message names the file."""


def is_url(path: str | Path) -> bool:
    """An fsspec URL (``gs://``, ``s3://``, ``memory://`` ...); ``file://`` is a path."""
    text = str(path)
    return "://" in text and not text.startswith("file://")


def local_path(path: str | Path) -> Path:
    """A local path, from a path or a ``file://`` URL."""
    text = str(path)
    return Path(text[len("file://"):] if text.startswith("file://") else text)


def load(obj: XarrayObject, path: str) -> XarrayObject:
    """Read lazily opened values now; a reader's failure (a damaged message or chunk)
    becomes a DataError naming the file."""
    try:
        with quiet_readers():
            return obj.load()
    except Exception as err:  # noqa: BLE001 - any reader failure, re-raised with the file
        raise DataError(f"{path}: cannot read its values ({type(err).__name__}: {err}); "
                        "the file is damaged") from None


@contextlib.contextmanager
def quiet_readers() -> Iterator[list[str]]:
    """Collect what cfgrib logs and the readers warn instead of printing tracebacks."""
    caught: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            caught.append(record.getMessage().splitlines()[0])

    logger = logging.getLogger("cfgrib")
    handler, propagate = _Collect(), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", FutureWarning)
            yield caught
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


