"""Quality control: the background check, as DART and JEDI do it.

An observation is rejected when |O − B| > k · sqrt(σ_b² + σ_o²), with B the
background (prior or forecast ensemble mean) seen through the source's own
operator, σ_b the background spread at the observation (the ensemble std seen
through the same operator, or a configured value where there is no ensemble)
and σ_o² the source's Σ_y. Everything is in normalised units.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from dafusion.obs.stations import StationObs


def background_check(term: StationObs, background: torch.Tensor,
                     spread: torch.Tensor | float, k: float = 4.0) -> StationObs:
    """A copy of ``term`` without the observations that fail the check.

    ``background``: ``(C, H, W)`` normalised mean state; ``spread``: ``(C, H, W)``
    normalised ensemble std, or one value for every observation. Rejections are
    added to ``term.rejected`` under "background check".
    """
    if not k > 0:
        raise ValueError(f"background check: k must be > 0, got {k}")
    with torch.no_grad():
        b = term.operator(background[None].to(term.y.dtype))[0]
        if isinstance(spread, torch.Tensor):
            sigma_b = term.operator(spread[None].to(term.y.dtype))[0].abs()
        else:
            sigma_b = torch.full_like(b, float(spread))
    limit = k * torch.sqrt(sigma_b**2 + torch.as_tensor(term.sigma_y, dtype=b.dtype))
    keep = ((term.y - b).abs() <= limit).numpy()
    rejected = dict(term.rejected)
    if (~keep).any():
        rejected["background check"] = rejected.get("background check", 0) + int((~keep).sum())
    interp = term.interpolation
    mask = torch.as_tensor(keep)
    kept = dataclasses.replace(
        interp, channel=interp.channel[mask], rows=interp.rows[mask], cols=interp.cols[mask],
        weights=interp.weights[mask])
    sigma_y = term.sigma_y[mask] if isinstance(term.sigma_y, torch.Tensor) else term.sigma_y
    return dataclasses.replace(term, y=term.y[mask], sigma_y=sigma_y, interpolation=kept,
                               rows=term.rows.subset(np.asarray(keep)), rejected=rejected)
