"""The normaliser: the only object converting physical <-> normalised values.

It holds one mean and one standard deviation per channel, computed from
training data, and is saved as netCDF next to every checkpoint. Statistics are
**area-weighted** over the sphere (latitude weights of the data's grid) and
pooled over all training times: a grid point near the pole counts for its
area, not once per longitude.

Works on numpy arrays, torch tensors and xarray objects whose channel axis is
``axis`` (default -3: ``(..., channel, lat, lon)``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from dafusion.grids import Grid, weighted_mean


@dataclasses.dataclass(frozen=True)
class Normaliser:
    """Per-channel z-scoring: ``x_norm = (x_phys - mean) / std``."""

    channels: tuple[str, ...]
    mean: np.ndarray  # (channel,) physical units
    std: np.ndarray  # (channel,) physical units, > 0
    units: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        n = len(self.channels)
        if self.mean.shape != (n,) or self.std.shape != (n,):
            raise ValueError(f"normaliser: {n} channels but mean {self.mean.shape}, "
                             f"std {self.std.shape}")
        if not np.all(np.isfinite(self.mean)) or not np.all(self.std > 0):
            bad = [c for c, s in zip(self.channels, self.std) if not s > 0]
            raise ValueError(f"normaliser: non-finite mean or non-positive std for {bad}")

    # ------------------------------------------------------------------ convert
    def normalise(self, x: Any, axis: int = -3) -> Any:
        """Physical -> normalised."""
        mean, std = self._shaped(x, axis)
        return (x - mean) / std

    def denormalise(self, x: Any, axis: int = -3) -> Any:
        """Normalised -> physical."""
        mean, std = self._shaped(x, axis)
        return x * std + mean


    def normalise_at(self, values: np.ndarray, channel: np.ndarray) -> np.ndarray:
        """Physical -> normalised for values whose channel index is ``channel``
        (broadcastable to ``values``), e.g. one observation per row."""
        return (values - self.mean[channel]) / self.std[channel]

    def scale_at(self, values: np.ndarray, channel: np.ndarray) -> np.ndarray:
        """A physical difference or error std in normalised units (divide by the std)."""
        return values / self.std[channel]

    def variance_at(self, values: np.ndarray, channel: np.ndarray,
                    other: np.ndarray | None = None) -> np.ndarray:
        """A physical variance of channel ``channel`` (broadcastable to ``values``), or a
        covariance between ``channel`` and ``other``, in normalised units:
        ``values · (1/std_c)(1/std_o)``; the one conversion of error variances."""
        inv = self.scale_at(np.ones(len(self.std)), np.arange(len(self.std)))
        if other is None:
            return values * inv[channel] ** 2
        return values * inv[channel] * inv[other]

    def _shaped(self, x: Any, axis: int) -> tuple[Any, Any]:
        ndim = x.ndim
        if x.shape[axis] != len(self.channels):
            raise ValueError(f"normaliser has {len(self.channels)} channels "
                             f"{list(self.channels)}, array has {x.shape[axis]} on axis {axis}")
        shape = [1] * ndim
        shape[axis] = len(self.channels)
        mean, std = self.mean.reshape(shape), self.std.reshape(shape)
        if type(x).__module__.startswith("torch"):
            import torch

            return (torch.as_tensor(mean, dtype=x.dtype, device=x.device),
                    torch.as_tensor(std, dtype=x.dtype, device=x.device))
        if isinstance(x, xr.DataArray):
            dim = x.dims[axis]
            return (xr.DataArray(self.mean, dims=[dim]), xr.DataArray(self.std, dims=[dim]))
        return mean, std

    # ------------------------------------------------------------------ fit / io
    @classmethod
    def fit(cls, stack: xr.DataArray, grid: Grid) -> Normaliser:
        """Area-weighted statistics of a ``(time, channel, lat, lon)`` stack."""
        mean = weighted_mean(stack, grid).mean("time")
        var = weighted_mean((stack - mean) ** 2, grid).mean("time")
        stats = xr.Dataset({"mean": mean, "var": var}).compute()
        mean, var = (stats[k].values.astype(np.float64) for k in ("mean", "var"))
        units = tuple(str(u) for u in stack.attrs.get("channel_units", ()))
        return cls(tuple(str(c) for c in stack["channel"].values), mean,
                   np.sqrt(var), units)

    def to_dataset(self) -> xr.Dataset:
        ds = xr.Dataset(
            {"mean": ("channel", self.mean), "std": ("channel", self.std)},
            coords={"channel": list(self.channels)},
            attrs={"title": "dafusion per-channel normalisation statistics",
                   "convention": "x_norm = (x - mean) / std; area-weighted"})
        if self.units:
            ds["units"] = ("channel", list(self.units))
        return ds

    def save(self, path: str | Path) -> None:
        from dafusion.io import atomic_write

        ds = self.to_dataset()
        atomic_write(path, lambda tmp: ds.to_netcdf(tmp, format="NETCDF4"))

    @classmethod
    def load(cls, path: str | Path) -> Normaliser:
        try:
            with xr.open_dataset(path) as ds:
                ds = ds.load()
        except (OSError, ValueError) as err:
            raise ValueError(f"{path}: not a readable normaliser file ({err})") from None
        missing = {"mean", "std", "channel"} - set(ds.variables)
        if missing:
            raise ValueError(f"{path}: normaliser file lacks {sorted(missing)}")
        units = tuple(str(u) for u in ds["units"].values) if "units" in ds else ()
        return cls(tuple(str(c) for c in ds["channel"].values),
                   ds["mean"].values.astype(np.float64),
                   ds["std"].values.astype(np.float64), units)

    def check_channels(self, channels: list[str] | tuple[str, ...], where: str) -> None:
        """Raise naming ``where`` if the channel list differs from the normaliser's."""
        if tuple(channels) != self.channels:
            raise ValueError(f"{where}: channels {list(channels)} do not match the "
                             f"normaliser's {list(self.channels)}")
