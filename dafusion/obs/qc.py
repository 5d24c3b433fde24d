"""Quality control: the background check, as DART and JEDI do it, for any source.

An observation is rejected when |O − B| > k · sqrt(σ_b² + Σ_y), with B the
background seen through the source's own operator, σ_b the background's error
std at the observation (an ensemble std seen through the same operator, or one
configured value) and Σ_y the source's error variance; normalised units. Wired
per source by ``run.sources.<source>.background_check`` (k; 0 = off) and
``background_std`` (σ_b); rejections are counted in ``obs_diagnostics.csv``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from dafusion.obs.base import LikelihoodTerm, Locations, validate_term
from dafusion.obs.covariance import DenseCovariance


@dataclasses.dataclass
class CheckedObs:
    """A likelihood term restricted to the observations that passed, ``y`` flattened.

    For sources whose observations are shared by every member (stations, gridded).
    """

    source: LikelihoodTerm
    keep: torch.Tensor  # (n,) bool over the source's flattened observations
    rejected: dict[str, int]
    name: str = dataclasses.field(init=False)
    y: torch.Tensor = dataclasses.field(init=False)  # (n_kept,)
    sigma_y: float | torch.Tensor = dataclasses.field(init=False)
    gamma: float | torch.Tensor = dataclasses.field(init=False)
    weight: float = dataclasses.field(init=False)
    covariance: DenseCovariance | None = dataclasses.field(init=False)
    pseudo_observation: bool = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        if callable(self.source.gamma):
            raise ValueError(f"background check of '{self.source.name}': a Γ̂(σ) function "
                             "is not supported")
        self.name, self.weight = self.source.name, self.source.weight
        self.pseudo_observation = self.source.pseudo_observation
        self.y = self.source.y.reshape(-1)[self.keep]
        self.sigma_y, self.gamma = self._select(self.source.sigma_y), self._select(
            self.source.gamma)
        self.covariance = self._restricted(self.source.covariance)
        validate_term(self)

    def _restricted(self, cov: object) -> DenseCovariance | None:
        """The dense covariance of the kept observations (rows and columns)."""
        if cov is None:
            return None
        if not isinstance(cov, DenseCovariance) or callable(cov.gamma):
            raise ValueError(f"background check of '{self.source.name}': only a dense "
                             "covariance with a constant Γ̂ can be restricted")
        k = self.keep
        return DenseCovariance(cov.sigma_y[k][:, k], torch.as_tensor(cov.gamma)[k][:, k],
                               self.source.name)

    def _select(self, value: float | torch.Tensor) -> float | torch.Tensor:
        if not isinstance(value, torch.Tensor) or value.dim() == 0:
            return value
        return torch.broadcast_to(value, self.source.y.shape).reshape(-1)[self.keep]

    def operator(self, x: torch.Tensor) -> torch.Tensor:
        return self.source.operator(x).reshape(x.shape[0], -1)[:, self.keep]

    def locations(self) -> Locations | None:
        """The source's ``locations()`` of the observations that passed."""
        where = self.source.locations()
        if where is None:
            return None
        keep = self.keep.numpy()
        return tuple(np.asarray(a)[keep] for a in where)

    def diagnostics(self) -> dict[str, object]:
        return {**self.source.diagnostics(), "used": int(self.keep.sum()),
                "rejected": dict(self.rejected)}


def background_check(term: LikelihoodTerm, background: torch.Tensor,
                     spread: torch.Tensor | float, k: float) -> CheckedObs:
    """``term`` without the observations that fail the check (see the module docstring).

    ``background``: ``(C, H, W)`` normalised mean state; ``spread``: ``(C, H, W)``
    normalised ensemble std, or one value for every observation.
    """
    if not k > 0:
        raise ValueError(f"background check: k must be > 0, got {k}")
    y = term.y.reshape(-1)
    with torch.no_grad():
        b = term.operator(background[None].to(y.dtype)).reshape(-1)
        if isinstance(spread, torch.Tensor):
            sigma_b = term.operator(spread[None].to(y.dtype)).reshape(-1).abs()
        else:
            sigma_b = torch.full_like(b, float(spread))
    if b.numel() != y.numel():
        raise ValueError(f"background check of '{term.name}': observations per member are "
                         "not supported")
    sigma_y = torch.broadcast_to(torch.as_tensor(term.sigma_y, dtype=y.dtype), term.y.shape)
    keep = (y - b).abs() <= k * torch.sqrt(sigma_b**2 + sigma_y.reshape(-1))
    rejected = dict(term.diagnostics()["rejected"])
    if (~keep).any():
        rejected["background check"] = rejected.get("background check", 0) + int((~keep).sum())
    return CheckedObs(term, keep, rejected)
