"""Station observations (radiosondes, IGRA2, synthetic) as a likelihood term.

Built from the observation table for one analysis time: every usable row
becomes one scalar observation of one channel, its operator the bicubic (as
the paper) or bilinear interpolation of that channel at the station (see
``obs.interp``). Values and error variances are converted to normalised units
once, by the normaliser. Rows that cannot be used are counted by reason, never
dropped silently.

Σ_y: by default each row's own ``error_std`` expressed in normalised units,
``(error_std / std_channel)²``; a configured ``sigma_y`` (normalised variance,
the paper's convention: 5e-4 for IGRA) replaces it for every row.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import torch

from dafusion.grids import AnyGrid
from dafusion.normalise import Normaliser
from dafusion.obs.interp import PointInterpolation
from dafusion.obs.table import ObservationTable
from dafusion.variables import parse_channels


@dataclasses.dataclass
class StationObs:
    """A likelihood term (``prior.base.LikelihoodTerm``) over station observations."""

    name: str
    y: torch.Tensor  # (n,) normalised
    sigma_y: torch.Tensor  # (n,) normalised variance
    gamma: float
    weight: float
    interpolation: PointInterpolation
    rows: ObservationTable  # the rows used, physical units
    rejected: dict[str, int]

    def operator(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` normalised state -> ``(B, n)`` normalised station values."""
        return self.interpolation.apply(x)

    @classmethod
    def from_table(cls, table: ObservationTable, *, channels: list[str],
                   normaliser: Normaliser, grid: AnyGrid, time: np.datetime64,
                   window_hours: float = 3.0, method: str = "bicubic",
                   sigma_y: float | None = None, gamma: float = 1e-5, weight: float = 1.0,
                   name: str = "stations") -> "StationObs":
        """Rows within ±``window_hours`` of ``time``; see the module docstring."""
        if gamma < 0 or weight < 0 or (sigma_y is not None and not sigma_y > 0):
            raise ValueError(f"observation source '{name}': need sigma_y > 0, gamma >= 0, "
                             f"weight >= 0 (got {sigma_y}, {gamma}, {weight})")
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
            raise ValueError(f"observation source '{name}': no usable observations within "
                             f"{window_hours} h of {time} (rejected: {rejected or 'none'})")
        mean, std = normaliser.mean[channel], normaliser.std[channel]
        y = (rows.value - mean) / std
        var = (rows.error_std / std) ** 2 if sigma_y is None else np.full(len(rows), sigma_y)
        interp = PointInterpolation.build(grid, rows.lat, rows.lon, channel, method)
        return cls(name, torch.as_tensor(y, dtype=torch.float32),
                   torch.as_tensor(var, dtype=torch.float32), gamma, weight, interp, rows,
                   rejected)

    def diagnostics(self) -> dict[str, object]:
        """Counts for the observation-space diagnostics."""
        return {"source": self.name, "used": len(self.rows), "rejected": dict(self.rejected),
                "stations": int(np.unique(self.rows.station_id).size)}
