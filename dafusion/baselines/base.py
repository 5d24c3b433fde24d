"""What the classical methods see of a cycle: the observations, stacked.

The classical analyses (``oi.py``, ``letkf.py``) use the *same* likelihood terms
as the diffusion analysis (``dafusion.obs``): the same observations y, the same
operators M (the station interpolation, the coarsening), the same Σ_y, after
the same quality control. They read from each term what a Gaussian linear
analysis needs:

* ``y`` and the operator, to form innovations y − M(x_b);
* R = Σ_y / λ: a term's weight λ multiplies its log-likelihood (eq. 14), which is
  the same as dividing its error variance by λ; a term with λ = 0 is left out;
  Γ̂ belongs to the diffusion guidance (eq. 13) and plays no part here;
* ``locations()``: ``(lat, lon, channel)`` of every observation, for
  localisation and vertical distances (``obs.stations``, ``obs.gridded``,
  ``obs.qc`` have it).

Terms with correlated errors (a ``covariance``) are refused: both methods here
take R diagonal, as operational OI and LETKF codes do for radiosondes.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from dafusion.obs.base import LikelihoodTerm
from dafusion.variables import parse_channels

SURFACE_HPA = 1000.0  # the level given to single-level channels (sp) for vertical distances


class BaselineError(ValueError):
    """A cycle's observations or settings a classical method cannot use; names them."""


@dataclasses.dataclass
class Observations:
    """The observations of one analysis from every term, flattened, normalised units."""

    y: np.ndarray  # (n,)
    r: np.ndarray  # (n,) error variance Σ_y / λ
    lat: np.ndarray  # (n,) degrees
    lon: np.ndarray  # (n,) degrees
    channel: np.ndarray  # (n,) index into the analysis channels
    terms: list[LikelihoodTerm]

    def __len__(self) -> int:
        return int(self.y.size)

    def apply(self, x: torch.Tensor) -> np.ndarray:
        """M(x) for every term: ``(B, C, H, W)`` normalised -> ``(B, n)`` float64."""
        x = torch.as_tensor(x, dtype=torch.float64)
        with torch.no_grad():
            return torch.cat([t.operator(x).reshape(x.shape[0], -1) for t in self.terms],
                             dim=1).numpy()


def observations(terms: list[LikelihoodTerm], method: str) -> Observations:
    """The terms' observations stacked; raises BaselineError naming a term it cannot use."""
    used = [t for t in terms if t.weight > 0]
    if not used:
        raise BaselineError(f"method {method}: no observation term with a weight > 0")
    parts = [_term_parts(t, method) for t in used]
    y, r, lat, lon, channel = (np.concatenate(p) for p in zip(*parts))
    return Observations(y, r, lat, lon, channel, used)


def _term_parts(term: LikelihoodTerm, method: str) -> tuple[np.ndarray, ...]:
    if term.covariance is not None:
        raise BaselineError(f"method {method}: term '{term.name}' has correlated errors; "
                            "the classical methods take independent errors (R diagonal)")
    where = term.locations()
    if where is None:
        raise BaselineError(f"method {method}: term '{term.name}' does not say where its "
                            "observations are (locations() is None)")
    y = term.y.detach().double().reshape(-1).numpy()
    sigma_y = torch.broadcast_to(torch.as_tensor(term.sigma_y, dtype=torch.float64),
                                 term.y.shape).reshape(-1).numpy()
    lat, lon, channel = where
    if not len(lat) == y.size:
        raise BaselineError(f"term '{term.name}': {len(lat)} locations for {y.size} values")
    return y, sigma_y / term.weight, np.asarray(lat, float), np.asarray(lon, float), \
        np.asarray(channel, int)


def channel_levels(channels: list[str]) -> np.ndarray:
    """Pressure (hPa) of each channel; single-level channels at ``SURFACE_HPA``."""
    return np.array([SURFACE_HPA if c.level is None else float(c.level)
                     for c in parse_channels(channels)])


def log_pressure_distance(p1: np.ndarray, p2: np.ndarray) -> np.ndarray:
    """|ln p1 − ln p2| for every pair, ``(n1, n2)``: the vertical distance of
    localisation (in scale heights)."""
    return np.abs(np.log(np.asarray(p1, float))[:, None] - np.log(np.asarray(p2, float))[None])
