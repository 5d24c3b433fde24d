"""Writing a window of a source as compact WeatherBench-2-layout netCDF; the demo truth."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import xarray as xr

from dafusion.data.base import DataError, load
from dafusion.data.source import GriddedSource, missing_times, nonfinite_text, times_text
from dafusion.io import write_netcdf


def export(source: GriddedSource, out: str | Path, *, start: str, end: str,
           every_hours: int, pack: bool = True, force: bool = False,
           attrs: dict[str, str] | None = None,
           warn: Callable[[str], None] = warnings.warn) -> Path:
    """Write a time window of the source's channels as WeatherBench-2-layout netCDF.

    ``pack`` stores int16 with per-variable ``scale_factor``/``add_offset`` (as the
    CDS does; resolution (max - min) / 65530) and zlib, for small shipped files.
    The written file is read back and compared before it takes its final name. Times
    missing from the window (a gap in the data) are said through ``warn``.
    Written to a temporary name and renamed, so a partial file never looks complete.
    """
    out = Path(out)
    if out.exists() and not force:
        raise FileExistsError(f"{out}: already exists; pass --force to overwrite")
    ds = source.ds.sel(time=slice(np.datetime64(start, "ns"), np.datetime64(end, "ns")))
    hours = ds["time"].values.astype("datetime64[h]").astype(np.int64)
    ds = ds.isel(time=np.flatnonzero(hours % every_hours == 0))
    if ds.sizes["time"] == 0:
        raise DataError(f"{source.path}: no times every {every_hours} h in {start} .. {end}")
    names = {c.variable.name for c in source.channels}
    levels = sorted({c.level for c in source.channels if c.level is not None})
    ds = ds[[n for n in ds.data_vars if n in names]]
    if levels:
        ds = ds.sel(level=levels)
    ds = load(ds, source.path)
    window = type(source)(source.path, source.channels, ds, source.grid).stack().values
    bad = nonfinite_text(np.isfinite(window).all((2, 3)), source.channel_names,
                         ds["time"].values)
    if bad:
        raise DataError(f"{source.path}: NaN or infinite values: {bad}")
    gaps = missing_times(ds["time"].values, every_hours)
    if gaps.size:
        warn(f"{source.path}: {gaps.size} of the times every {every_hours} h in "
                      f"{start} .. {end} are missing from the data and from {out.name}: "
                      f"{times_text(gaps)}")
    source.check_plausible(window, f"in {start} .. {end}")
    ds.attrs = {**{k: v for k, v in ds.attrs.items() if k != "dafusion_complete"},
                **(attrs or {})}
    encoding: dict[str, dict] = {"time": {"units": "hours since 1970-01-01", "dtype": "int64"}}
    for name in ds.data_vars:
        ds[name].attrs.pop("dafusion_levels", None)  # levels a variable lacks stay NaN
        values = ds[name].values
        enc: dict = {"zlib": True, "complevel": 9}
        if pack:
            # packed from float64: xarray packs float32 data in float32 arithmetic, whose
            # rounding puts values up to 0.503 packing steps off, beyond the half step
            # the check below allows (a 100-day Held-Suarez u field was refused)
            ds[name] = ds[name].astype(np.float64)
            lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
            # packed values span +-32765, clear of the fill value -32767
            scale = (hi - lo) / 65530 if hi > lo else 1.0
            enc.update(dtype="int16", scale_factor=scale, add_offset=(hi + lo) / 2,
                       _FillValue=np.int16(-32767))
        encoding[name] = enc
    return write_netcdf(ds, out, force=force, encoding=encoding,
                        check=lambda tmp: _check_written(tmp, ds, encoding))


def _check_written(path: Path, expected: xr.Dataset, encoding: dict[str, dict]) -> None:
    """Read ``path`` back: every value within half a packing step of the original."""
    with xr.open_dataset(path) as back:
        for name in expected.data_vars:
            tol = encoding[name].get("scale_factor", 0.0) * 0.501
            want = expected[name].values
            err = np.abs(back[name].values - want)
            same_nan = np.isnan(want) & np.isnan(back[name].values)
            if not np.all(same_nan | (err <= tol + 1e-6 * np.abs(want))):
                path.unlink()
                raise DataError(f"{path}: '{name}' did not survive writing "
                                f"(max error {np.nanmax(err)}, NaNs: {int(np.isnan(err).sum())})")


def demo_truth_path() -> str:
    """The truth window shipped inside the package (see dafusion/demo/README.md)."""
    from importlib import resources

    path = resources.files("dafusion") / "demo" / "truth.nc"
    if not path.is_file():
        raise DataError(f"{path}: the shipped demo truth is missing from this installation")
    return str(path)
