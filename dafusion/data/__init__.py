"""The data layer: ERA5-like gridded files -> the configured channel stack.

Reads, lazily (dask), the layouts the field uses:

* WeatherBench-2 zarr/netCDF: long names (``temperature``), dims ``time, level,
  latitude, longitude`` (or ``lat, lon``), latitude ascending;
* CDS netCDF: short names (``t``, ``z``), int16 packing, latitude descending,
  ``valid_time``/``pressure_level`` in the newer CDS files;
* GRIB through cfgrib (the ``grib`` extra).

Every file is standardised once at the boundary: long variable names, dims
``time, level, latitude, longitude``, latitude ascending, longitude in [0, 360),
levels in hPa, values in canonical units (via :mod:`dafusion.units`). The
channel stack is an ``xarray.DataArray`` with dims ``(time, channel, lat, lon)``
in physical units.

Modules: ``base`` (the error, paths and URLs, guarded reads), ``integrity`` (file
structure before values), ``open`` (formats and readers), ``standardise`` (to the
conventions), ``source`` (``GriddedSource``: the channel stack; ``describe``),
``export`` (a window as compact netCDF).
"""

from dafusion.data.base import DataError, is_url, load
from dafusion.data.export import demo_truth_path, export
from dafusion.data.open import detect_format, open_dataset
from dafusion.data.source import GriddedSource, available_channels, describe, no_channel_reason
from dafusion.data.standardise import ENSEMBLE_DIMS, standardise

__all__ = ["DataError", "ENSEMBLE_DIMS", "GriddedSource", "available_channels",
           "demo_truth_path", "describe", "detect_format", "export", "is_url", "load",
           "no_channel_reason", "open_dataset", "standardise"]
