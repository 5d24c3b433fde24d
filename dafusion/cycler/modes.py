"""The three cycling modes: what the emulator contributes to each analysis.

A mode answers two questions and keeps what it needs between cycles:

* ``pseudo_obs(cycle)``: the emulator state valid at analysis ``cycle`` (the
  pseudo-observation of the emulator term), or None;
* ``background(cycle)``: the background of the observation-space diagnostics
  and of the background check, ``(C, H, W)`` physical, or None;
* ``background_members(cycle)``: the emulator state valid at analysis ``cycle``,
  each of its members on the analysis grid, ``(1 or M, C, H, W)`` physical, or
  None (plain): the background of the classical analyses (``cycler.analysis``);
* ``advance(cycle, analysis)``: the analysis ensemble ``(M, C, H, W)`` (physical)
  is known; prepare cycle + 1.

``plain``: no emulator; the background is the previous analysis (persistence).
``forecast``: the emulator starts once from the truth at the first analysis
(regridded to its grid) and runs across the window; the state valid at each
analysis is its pseudo-observation (the paper's IGRA+LUCIE).
``reinit``: every analysis, regridded to the emulator grid, starts the 12-hour
forecast that is the next pseudo-observation (IGRA+LUCIE Reinitialized);
``run.reinit = mean`` starts one forecast from the ensemble mean (the paper's
Figure 17b), ``members`` one per member, each guiding its own member; with
``run.inflation`` ρ the members' forecasts are spread about their mean by ρ
(multiplicative inflation, Anderson and Anderson 1999) before they guide.

The pseudo-observation carries its lead (forecast: since the first analysis;
reinit: one cycle, 0 at the first), which selects its error statistics. In both
emulator modes the first analysis sees the initial state itself (the forecast at
lead 0), and the background is the emulator state regridded to the
analysis grid, the channels it lacks taken from the previous analysis.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

import numpy as np
import torch
import xarray as xr

from dafusion.emulator.base import ForecastModel
from dafusion.grids import AnyGrid
from dafusion.regrid import make_regridder


@dataclasses.dataclass
class EmulatorState:
    """An emulator state valid at one analysis, physical units on the emulator grid."""

    values: np.ndarray  # (1 or M, C_f, h, w)
    channels: list[str]
    lead_hours: float = 0.0  # since the forecast's initial state (its error model's lead)


class Mode(Protocol):
    """See the module docstring; ``carry``/``restore`` are what ``state.npz`` keeps."""

    def pseudo_obs(self, cycle: int) -> EmulatorState | None: ...

    def background(self, cycle: int) -> np.ndarray | None: ...

    def background_members(self, cycle: int) -> np.ndarray | None: ...

    def advance(self, cycle: int, analysis: np.ndarray) -> None: ...

    def carry(self) -> tuple[dict, dict[str, np.ndarray]]: ...

    def restore(self, meta: dict, arrays: dict[str, np.ndarray]) -> None: ...


class PlainMode:
    """Observations only; every cycle is independent."""

    def __init__(self) -> None:
        self.previous: np.ndarray | None = None  # the last analysis mean (C, H, W)

    def pseudo_obs(self, cycle: int) -> None:
        return None

    def background(self, cycle: int) -> np.ndarray | None:
        return self.previous

    def background_members(self, cycle: int) -> None:
        return None

    def advance(self, cycle: int, analysis: np.ndarray) -> None:
        self.previous = analysis.mean(0)

    def carry(self) -> tuple[dict, dict[str, np.ndarray]]:
        return {}, ({} if self.previous is None else {"previous": self.previous})

    def restore(self, meta: dict, arrays: dict[str, np.ndarray]) -> None:
        self.previous = arrays.get("previous")


class EmulatorMode:
    """The skeleton of the two emulator modes; a subclass fills :meth:`next_state`."""

    def __init__(self, emulator: ForecastModel, initial: xr.DataArray, times: np.ndarray,
                 channels: list[str], grid: AnyGrid, regrid: str):
        self.emulator, self.times, self.channels = emulator, times, list(channels)
        self.grid = grid  # the analysis grid
        self.initial = initial  # (member=1, C, h, w) at times[0], prognostic channels
        self.to_emulator = make_regridder(grid, emulator.grid, regrid)
        self.from_emulator = make_regridder(emulator.grid, grid, regrid)
        self.current = EmulatorState(initial.values, list(emulator.channels))
        self.previous: np.ndarray | None = None

    def pseudo_obs(self, cycle: int) -> EmulatorState:
        return dataclasses.replace(self.current, lead_hours=self.lead_hours(cycle))

    def lead_hours(self, cycle: int) -> float:
        """The lead of the state valid at analysis ``cycle``."""
        raise NotImplementedError

    def background(self, cycle: int) -> np.ndarray | None:
        if self.previous is None:
            return None
        return self._on_analysis_grid(self.current.values.mean(0, keepdims=True))[0]

    def background_members(self, cycle: int) -> np.ndarray:
        """Each member of the emulator state, regridded; channels the emulator lacks: the
        previous analysis mean, NaN at the first analysis (the caller's climatology)."""
        return self._on_analysis_grid(self.current.values)

    def _on_analysis_grid(self, values: np.ndarray) -> np.ndarray:
        """Emulator states ``(B, C_f, h, w)`` -> ``(B, C, H, W)`` on the analysis grid."""
        shared = [c for c in self.current.channels if c in self.channels]
        fc = values[:, [self.current.channels.index(c) for c in shared]]
        out = np.full((values.shape[0], len(self.channels)) + tuple(self.grid.shape), np.nan)
        if self.previous is not None:
            out[:] = self.previous
        out[:, [self.channels.index(c) for c in shared]] = \
            self.from_emulator(torch.as_tensor(fc)).numpy()
        return out

    def advance(self, cycle: int, analysis: np.ndarray) -> None:
        nxt = self.next_state(cycle, analysis)
        self.current = EmulatorState(nxt, list(self.emulator.output_channels))
        self.previous = analysis.mean(0)

    def next_state(self, cycle: int, analysis: np.ndarray) -> np.ndarray:
        """The emulator state valid at analysis ``cycle + 1``, ``(1 or M, C_out, h, w)``."""
        raise NotImplementedError

    def carry(self) -> tuple[dict, dict[str, np.ndarray]]:
        arrays = {"pseudo_obs": self.current.values}
        if self.previous is not None:
            arrays["previous"] = self.previous
        return {"pseudo_obs_channels": self.current.channels}, arrays

    def restore(self, meta: dict, arrays: dict[str, np.ndarray]) -> None:
        self.current = EmulatorState(arrays["pseudo_obs"], list(meta["pseudo_obs_channels"]))
        self.previous = arrays.get("previous")


class ForecastMode(EmulatorMode):
    """One emulator forecast from the initial truth across the window."""

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003 - EmulatorMode's
        super().__init__(*args, **kwargs)
        n = int(round((self.times[-1] - self.times[0]) / self.emulator.time_step))
        self.forecast = self.emulator.forecast(self.initial, n).values[:, 0]  # (lead, C, h, w)

    def lead_hours(self, cycle: int) -> float:
        return float((self.times[cycle] - self.times[0]) / np.timedelta64(1, "h"))

    def next_state(self, cycle: int, analysis: np.ndarray) -> np.ndarray:
        lead = int((self.times[cycle + 1] - self.times[0]) / self.emulator.time_step)
        return self.forecast[lead - 1][None]  # lead 1 is index 0


class ReinitMode(EmulatorMode):
    """A 12-hour forecast from every analysis (its mean, or each member)."""

    def __init__(self, *args, members: bool = False, inflation: float = 1.0,  # noqa: ANN002
                 **kwargs) -> None:  # noqa: ANN003
        super().__init__(*args, **kwargs)
        self.members, self.inflation = members, inflation

    def lead_hours(self, cycle: int) -> float:
        return 0.0 if cycle == 0 else float((self.times[cycle] - self.times[cycle - 1])
                                            / np.timedelta64(1, "h"))

    def next_state(self, cycle: int, analysis: np.ndarray) -> np.ndarray:
        steps = int((self.times[cycle + 1] - self.times[cycle]) / self.emulator.time_step)
        fc = self.emulator.forecast(self.initial_state(cycle, analysis), steps).values[-1]
        if self.inflation == 1.0 or fc.shape[0] == 1:
            return fc
        mean = fc.mean(0, keepdims=True)  # multiplicative inflation of the members' forecasts
        return mean + self.inflation * (fc - mean)

    def initial_state(self, cycle: int, analysis: np.ndarray) -> xr.DataArray:
        """The analysis regridded to the emulator grid; prognostic channels the analysis
        lacks keep the emulator's own state valid now."""
        emu = self.emulator
        start = analysis if self.members else analysis.mean(0, keepdims=True)
        coarse = self.to_emulator(torch.as_tensor(start)).numpy()  # (B, C, h, w)
        prev = np.asarray(self.current.values)
        if prev.shape[0] != coarse.shape[0]:
            prev = np.broadcast_to(prev.mean(0, keepdims=True), coarse.shape[:1] + prev.shape[1:])
        init = np.empty((coarse.shape[0], len(emu.channels)) + emu.grid.shape)
        for k, name in enumerate(emu.channels):
            init[:, k] = (coarse[:, self.channels.index(name)] if name in self.channels
                          else prev[:, self.current.channels.index(name)])
        return xr.DataArray(init, dims=("member", "channel", "lat", "lon"),
                            coords={"channel": emu.channels, "lat": emu.grid.lat,
                                    "lon": emu.grid.lon, "time": self.times[cycle]})
