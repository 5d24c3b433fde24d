"""Station observations (radiosondes, IGRA2, synthetic) as a likelihood term.

Built from the observation table for one analysis time: every usable row
becomes one scalar observation of one channel, its operator the bicubic (as
the paper) or bilinear interpolation of that channel at the station (see
``dafusion.interp``). Values and error variances are converted to normalised units
once, by the normaliser. Rows that cannot be used are counted by reason, never
dropped silently.

Σ_y: each row's own ``error_std`` expressed in normalised units,
``(error_std / std_channel)²``, where ``sigma_y`` is None; a value (normalised
variance, the paper's convention: 5e-4 for IGRA) replaces it for every row or,
given as ``{variable: value or None}``, per variable. Γ̂: one value (paper: 1e-5
for IGRA) or ``{variable: value}`` naming every variable observed. The values come
from ``run.sources.stations`` (the configuration holds the defaults).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import ClassVar

import numpy as np
import torch

from dafusion.grids import AnyGrid
from dafusion.interp import PointInterpolation
from dafusion.normalise import Normaliser
from dafusion.obs.base import Covariance, validate_term
from dafusion.obs.table import ObservationTable
from dafusion.variables import parse_channels


class NoObservations(ValueError):
    """No row of the table is usable at an analysis time (the message says why)."""


@dataclasses.dataclass
class StationObs:
    """A likelihood term (``obs.base.LikelihoodTerm``) over station observations."""

    name: str
    y: torch.Tensor  # (n,) normalised
    sigma_y: torch.Tensor  # (n,) normalised variance
    gamma: float | torch.Tensor  # one value or (n,)
    weight: float
    interpolation: PointInterpolation
    rows: ObservationTable  # the rows used, physical units
    rejected: dict[str, int]
    covariance: Covariance | None = None  # None: independent errors
    pseudo_observation: ClassVar[bool] = False

    def __post_init__(self) -> None:
        validate_term(self)

    def operator(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` normalised state -> ``(B, n)`` normalised station values."""
        return self.interpolation.apply(x)

    @classmethod
    def from_table(cls, table: ObservationTable, *, channels: list[str],
                   normaliser: Normaliser, grid: AnyGrid, time: np.datetime64,
                   window_hours: float, method: str,
                   sigma_y: float | dict[str, float | None] | None,
                   gamma: float | dict[str, float], weight: float,
                   name: str = "stations") -> StationObs:
        """Rows within ±``window_hours`` of ``time``; see the module docstring."""
        normaliser.check_channels(channels, f"observation source '{name}'")
        rows = table.window(np.datetime64(time, "ns"),
                            np.timedelta64(int(window_hours * 3600), "s"))
        index = {(c.variable.name, c.level): i for i, c in enumerate(parse_channels(channels))}
        channel = np.array([index.get((v, None if np.isnan(lev) else int(lev)), -1)
                            for v, lev in zip(rows.variable, rows.level)], dtype=int)
        reasons = np.full(len(rows), "", dtype=object)
        reasons[rows.qc != 0] = "flagged by QC"
        reasons[(reasons == "") & (channel < 0)] = "channel not in state"
        reasons[(reasons == "") & ~np.isfinite(rows.value)] = "non-finite value"
        keep = reasons == ""
        rejected = dict(Counter(reasons[~keep].tolist()))
        rows, channel = rows.subset(keep), channel[keep]
        if len(rows) == 0:
            raise NoObservations(f"observation source '{name}': no usable observations within "
                             f"{window_hours} h of {time} (rejected: {rejected or 'none'})")
        y = normaliser.normalise_at(rows.value, channel)
        var = _per_row(sigma_y, rows.variable, normaliser.scale_at(rows.error_std, channel) ** 2,
                       f"observation source '{name}': sigma_y")
        gam = gamma if not isinstance(gamma, dict) else torch.as_tensor(
            _per_row(gamma, rows.variable, None, f"observation source '{name}': gamma"),
            dtype=torch.float32)
        interp = PointInterpolation.build(grid, rows.lat, rows.lon, channel, method)
        return cls(name, torch.as_tensor(y, dtype=torch.float32),
                   torch.as_tensor(var, dtype=torch.float32), gam, weight, interp, rows,
                   rejected)

    def locations(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(lat, lon, channel index)`` of every observation, ``(n,)`` each."""
        return (np.asarray(self.rows.lat, float), np.asarray(self.rows.lon, float),
                self.interpolation.channel.numpy())

    def diagnostics(self) -> dict[str, object]:  # noqa: D102 - see the protocol
        """Counts for the observation-space diagnostics."""
        return {"source": self.name, "used": len(self.rows), "rejected": dict(self.rejected),
                "stations": int(np.unique(self.rows.station_id).size)}


def _per_row(setting: float | dict[str, float | None] | None, variables: np.ndarray,
             default: np.ndarray | None, where: str) -> np.ndarray:
    """One value per row: the setting, the setting of the row's variable, or the default
    (where the setting is None)."""
    if setting is None:
        return default
    if not isinstance(setting, dict):
        return np.full(len(variables), float(setting))
    missing = sorted(str(v) for v in set(variables) - set(setting))
    if missing:
        raise ValueError(f"{where} has no value for {missing}")
    out = np.array([np.nan if setting[v] is None else setting[v] for v in variables])
    unset = np.isnan(out)
    if unset.any():  # a variable set to None keeps the default
        if default is None:
            raise ValueError(f"{where} is None for {sorted(set(variables[unset]))}")
        out[unset] = default[unset]
    return out
