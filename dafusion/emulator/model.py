"""The SFNO emulator as a ``ForecastModel``: LUCIE's normalisation and time stepping.

One 6-hour step, as LUCIE's inference does it::

    input   = [ (x - mean_x) / std_x ,  (f(t) - mean_f) / std_f ]   prognostic, forcing
    out     = SFNO(input)
    x(t+dt) = x(t) + out[:P] * std_dx                                explicit Euler
    d(t+dt) = out[P:] * std_d + mean_d                               diagnostics
    d       = (exp(d) - 1) * 1e-2      for channels in log_transform (LUCIE's precipitation)

All statistics are global scalars per channel (LUCIE's ``normalize``):
``mean_x, std_x`` of the states, ``std_dx`` of the 6-hour differences (LUCIE
divides the tendency by its std without removing its mean, and adds no mean
back; so do we), ``mean_d, std_d`` of the (log-transformed) diagnostics.
The forcing ``f(t)`` is evaluated at the valid time of the input state.
Diagnostics are outputs only: they never feed the next step.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from dafusion.config import SFNOConfig
from dafusion.emulator.base import check_state, forecast_array
from dafusion.emulator.forcing import toa_incident_solar
from dafusion.emulator.sfno import SFNO
from dafusion.grids import AnyGrid

LOG_SCALE = 1e-2  # LUCIE: log(tp / 1e-2 + 1)


@dataclasses.dataclass
class EmulatorMeta:
    """What an emulator checkpoint says about itself (``emulator.yaml``)."""

    grid: AnyGrid
    channels: list[str]  # prognostic
    diagnostics: list[str]
    log_transform: list[str]
    forcing: list[str]
    time_step_hours: int
    lat_order: str  # of the network's arrays
    network: SFNOConfig

    @property
    def in_chans(self) -> int:
        return len(self.channels) + len(self.forcing)

    @property
    def out_chans(self) -> int:
        return len(self.channels) + len(self.diagnostics)


@dataclasses.dataclass
class EmulatorStats:
    """Global per-channel statistics, physical units (see the module docstring)."""

    mean: np.ndarray  # prognostic channels
    std: np.ndarray
    tendency_std: np.ndarray
    forcing_mean: np.ndarray
    forcing_std: np.ndarray
    diag_mean: np.ndarray
    diag_std: np.ndarray

    def check(self, meta: EmulatorMeta, where: str) -> None:
        sizes = {"mean": len(meta.channels), "std": len(meta.channels),
                 "tendency_std": len(meta.channels), "forcing_mean": len(meta.forcing),
                 "forcing_std": len(meta.forcing), "diag_mean": len(meta.diagnostics),
                 "diag_std": len(meta.diagnostics)}
        for name, n in sizes.items():
            value = np.asarray(getattr(self, name), float)
            if value.shape != (n,):
                raise ValueError(f"{where}: {name} has shape {value.shape}, expected ({n},)")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"{where}: {name} has NaN or infinite values")
            if name.endswith("std") and np.any(value <= 0):
                raise ValueError(f"{where}: {name} has values <= 0: {value.tolist()}")

    def save(self, path: Path, meta: EmulatorMeta) -> None:
        ds = xr.Dataset({
            "mean": ("channel", self.mean), "std": ("channel", self.std),
            "tendency_std": ("channel", self.tendency_std),
            "forcing_mean": ("forcing", self.forcing_mean),
            "forcing_std": ("forcing", self.forcing_std),
            "diag_mean": ("diagnostic", self.diag_mean),
            "diag_std": ("diagnostic", self.diag_std)},
            coords={"channel": meta.channels, "forcing": meta.forcing,
                    "diagnostic": meta.diagnostics},
            attrs={"description": "dafusion emulator statistics: global per-channel mean/std "
                                  "of states, std of 6-hour tendencies, forcing and "
                                  "(log-transformed) diagnostics"})
        from dafusion.io import write_netcdf

        write_netcdf(ds, path, encoding={k: {"dtype": "float64"} for k in ds.data_vars})

    @classmethod
    def load(cls, path: Path, meta: EmulatorMeta) -> EmulatorStats:
        try:
            ds = xr.load_dataset(path)
        except (OSError, ValueError) as err:
            raise ValueError(f"{path}: unreadable statistics ({err})") from None
        for dim, names in (("channel", meta.channels), ("forcing", meta.forcing),
                           ("diagnostic", meta.diagnostics)):
            have = [str(c) for c in ds[dim].values] if dim in ds.coords else []
            if have != list(names):
                raise ValueError(f"{path}: {dim} {have} differ from the checkpoint's {names}")
        try:
            stats = cls(**{f.name: ds[f.name].values.astype(float)
                           for f in dataclasses.fields(cls)})
        except KeyError as err:
            raise ValueError(f"{path}: variable {err} is missing") from None
        stats.check(meta, str(path))
        return stats


def _column(values: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(values, float), dtype=torch.float32).reshape(1, -1, 1, 1)


class SFNOEmulator(torch.nn.Module):
    """``ForecastModel`` around an :class:`SFNO` (see the module docstring)."""

    def __init__(self, meta: EmulatorMeta, stats: EmulatorStats, net: SFNO | None = None,
                 static: dict[str, np.ndarray] | None = None):
        super().__init__()
        stats.check(meta, "emulator statistics")
        self.meta, self.stats = meta, stats
        self.net = net if net is not None else SFNO(meta.in_chans, meta.out_chans,
                                                    meta.grid.shape, meta.network)
        self.static = dict(static or {})
        missing = [f for f in meta.forcing if f != "tisr" and f not in self.static]
        if missing:
            raise ValueError(f"emulator forcing {missing} needs its static field")
        for name, value in (("mean", stats.mean), ("std", stats.std),
                            ("tendency_std", stats.tendency_std),
                            ("forcing_mean", stats.forcing_mean),
                            ("forcing_std", stats.forcing_std),
                            ("diag_mean", stats.diag_mean), ("diag_std", stats.diag_std)):
            self.register_buffer(f"s_{name}", _column(value), persistent=False)
        self.register_buffer("log_mask", torch.tensor(
            [c in meta.log_transform for c in meta.diagnostics], dtype=torch.bool
        ).reshape(1, -1, 1, 1),
            persistent=False)

    # -- ForecastModel
    @property
    def grid(self) -> AnyGrid:
        return self.meta.grid

    @property
    def channels(self) -> list[str]:
        return list(self.meta.channels)

    @property
    def output_channels(self) -> list[str]:
        return list(self.meta.channels) + list(self.meta.diagnostics)

    @property
    def time_step(self) -> np.timedelta64:
        return np.timedelta64(self.meta.time_step_hours, "h")

    # -- tensors
    def forcing(self, time: np.datetime64, batch: int) -> torch.Tensor:
        """Normalised forcing channels at a valid time, ``(batch, F, lat, lon)``."""
        device = self.s_mean.device
        if not self.meta.forcing:
            return torch.zeros(batch, 0, *self.grid.shape, device=device)
        fields = []
        for name in self.meta.forcing:
            if name == "tisr":
                fields.append(toa_incident_solar(np.array([time]), self.grid.lat,
                                                 self.grid.lon)[0])
            else:
                fields.append(self.static[name])
        f = torch.as_tensor(np.stack(fields)[None], dtype=torch.float32, device=device)
        return ((f - self.s_forcing_mean) / self.s_forcing_std).expand(batch, -1, -1, -1)

    def _orient(self, x: torch.Tensor) -> torch.Tensor:
        return x.flip(-2) if self.meta.lat_order == "north_to_south" else x

    def raw_step(self, x: torch.Tensor, time: np.datetime64
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """One time step from ``x (batch, P, lat, lon)`` (physical, lat ascending) valid at
        ``time``: (next state in physical units, normalised diagnostics)."""
        inp = torch.cat(((x - self.s_mean) / self.s_std, self.forcing(time, x.shape[0])), 1)
        out = self._orient(self.net(self._orient(inp)))
        p = len(self.meta.channels)
        return x + out[:, :p] * self.s_tendency_std, out[:, p:]

    def step(self, x: torch.Tensor, time: np.datetime64
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`raw_step` with the diagnostics in physical units."""
        nxt, diag = self.raw_step(x, time)
        diag = diag * self.s_diag_std + self.s_diag_mean
        diag = torch.where(self.log_mask, (torch.exp(diag) - 1.0) * LOG_SCALE, diag)
        return nxt, diag

    @torch.no_grad()
    def forecast(self, state: xr.DataArray, n_steps: int) -> xr.DataArray:
        if n_steps < 1:
            raise ValueError(f"emulator forecast: n_steps must be >= 1, got {n_steps}")
        state = check_state(self, state, "emulator forecast")
        device = self.s_mean.device
        x = torch.as_tensor(state.values, dtype=torch.float32, device=device)
        time = np.datetime64(state["time"].values, "ns")
        out = np.empty((n_steps, x.shape[0], len(self.output_channels), *self.grid.shape),
                       np.float32)
        self.eval()
        for k in range(n_steps):
            x, diag = self.step(x, time)
            time = time + self.time_step
            both = torch.cat((x, diag), 1)
            if not torch.isfinite(both).all():
                bad = [c for c, ok in zip(self.output_channels,
                                          torch.isfinite(both).flatten(2).all(-1).all(0))
                       if not ok]
                raise FloatingPointError(
                    f"emulator forecast became non-finite at step {k + 1} (lead "
                    f"{(k + 1) * self.meta.time_step_hours} h, valid {str(time)[:16]}) in "
                    f"channels {bad}")
            out[k] = both.cpu().numpy()
        return forecast_array(out, state, self.time_step, self.output_channels)

    def describe(self) -> dict[str, Any]:
        n = sum(p.numel() for p in self.net.parameters())
        return {"grid": self.grid.name, "channels": self.channels,
                "diagnostics": self.meta.diagnostics, "forcing": self.meta.forcing,
                "parameters": n}
