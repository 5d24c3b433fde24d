"""What one cycle leaves behind: the analysis file's content and the table rows.

Metrics are those of ``dafusion.cycler.metrics`` (area-weighted, physical units);
observation-space statistics are in normalised units: O−A through each source's
operator from the analysis mean, O−B from the mode's background (the previous
analysis in plain mode, the emulator state regridded in the emulator modes).
The emulator term has no O−B: its observation *is* the background, so the
number would only measure the regridding round trip; the cell is left empty.

``sigma_y`` is the mean error variance the term assumes (marginal, normalised) and
``desroziers`` the Desroziers et al. (2005) check of it: E[d_a d_b] ≈ Σ_y for
d_b = O−B, d_a = O−A when the error covariances are right, so
mean(d_a · d_b) / mean(Σ_y) is 1 for a consistent Σ_y, above 1 when the source is
worse than assumed (empty without O−B).

``spread`` and ``crps`` are the ensemble's in observation space: the RMS over the
observations of the members' standard deviation of H(x_m) (ddof 1), and the mean fair
CRPS of H(x_m) against y (``cycler.metrics.crps_field``; the observation error is not
added to the members, so a consistent ensemble has oma_rms² ≈ spread² + sigma_y at
observations it never saw). Empty for pseudo-observations.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import xarray as xr

from dafusion.cycler.metrics import crps_field, ensemble_scores
from dafusion.grids import AnyGrid
from dafusion.io import state_dataset
from dafusion.obs.base import LikelihoodTerm
from dafusion.variables import parse_channel


def analysis_dataset(ens: np.ndarray, channels: list[str], grid: AnyGrid, t: np.datetime64,
                     attrs: dict[str, Any]) -> xr.Dataset:
    """Ensemble mean and std ``(C, H, W)`` of ``ens (M, C, H, W)`` as one CF dataset."""
    mean = state_dataset(ens.mean(0)[None], channels, grid, time=t).isel(member=0)
    std = state_dataset(ens.std(0, ddof=1)[None] if ens.shape[0] > 1
                        else np.zeros_like(ens[:1]), channels, grid, time=t).isel(member=0)
    ds = mean.drop_vars("member")
    for name, var in std.drop_vars("member").data_vars.items():
        ds[f"{name}_std"] = var.assign_attrs(long_name=f"ensemble standard deviation of "
                                                       f"{var.attrs['long_name']}")
    for name in mean.data_vars:
        ds[name].attrs["long_name"] = f"ensemble mean of {ds[name].attrs['long_name']}"
    ds.attrs.update({"title": "dafusion analysis", **attrs})
    return ds


def metric_rows(cycle: int, t: np.datetime64, lead_hours: int, ens: np.ndarray,
                truth: np.ndarray, channels: list[str], grid: AnyGrid) -> list[dict[str, Any]]:
    """One ``metrics.csv`` row per channel."""
    scores = ensemble_scores(ens, truth, grid)
    rows = []
    for i, name in enumerate(channels):
        ch = parse_channel(name)
        rows.append({"cycle": cycle, "valid_time": str(t)[:16], "lead_hours": lead_hours,
                     "channel": name, "variable": ch.variable.name,
                     "level": ch.level if ch.level else "",
                     **{k: float(v[i]) for k, v in scores.items()}})
    return rows


def obs_row(cycle: int, t: np.datetime64, term: LikelihoodTerm, background: torch.Tensor | None,
            analysis_mean: torch.Tensor, members: torch.Tensor | None = None) -> dict[str, Any]:
    """O−B, O−A, spread and CRPS of one source (normalised; ``background`` and
    ``analysis_mean`` ``(C, H, W)``, ``members (M, C, H, W)``: no spread or CRPS without)."""
    diag = term.diagnostics()
    y = term.y if term.y.dim() == 1 else term.y.mean(0)
    with torch.no_grad():
        oma = (y - term.operator(analysis_mean[None])[0]).double()
        omb = hx = None
        if background is not None and not term.pseudo_observation:
            omb = (y - term.operator(background[None])[0]).double()
        if members is not None and not term.pseudo_observation:
            hx = term.operator(members).double().numpy()  # (M, n)
    nan = float("nan")
    spread = crps = nan
    if hx is not None:
        var = hx.var(0, ddof=1) if hx.shape[0] > 1 else np.zeros(hx.shape[1])
        spread = float(np.sqrt(var.mean()))
        crps = float(crps_field(hx, y.double().numpy()).mean())
    sigma_y = float(torch.broadcast_to(torch.as_tensor(term.sigma_y, dtype=torch.float64),
                                       y.shape).mean())
    return {"cycle": cycle, "valid_time": str(t)[:16], "source": diag["source"],
            "used": diag["used"], "rejected": sum(diag["rejected"].values()),
            "omb_mean": float(omb.mean()) if omb is not None else nan,
            "omb_rms": float(omb.pow(2).mean().sqrt()) if omb is not None else nan,
            "oma_mean": float(oma.mean()), "oma_rms": float(oma.pow(2).mean().sqrt()),
            "sigma_y": sigma_y, "spread": spread, "crps": crps,
            "desroziers": float((oma * omb).mean()) / sigma_y if omb is not None else nan}
