"""The emulator's forecast-error statistics: the error model of its pseudo-observation.

From forecasts started at many initial times of a truth (regridded to the
emulator grid, the way the cycle starts them), the error against the truth
regridded the same way is transformed to spherical harmonics on the emulator
grid, and its power per total wavenumber l is averaged over initial times:

    error_variance[lead, channel, l] = mean over inits of E_err(l) / (2l + 1)

the variance of one real coefficient of degree l (physical units², orthonormal
harmonics on the unit sphere; ``dafusion.spectra``), and the covariance between
channels per degree, ``error_covariance[lead, l, channel, channel_2]`` (its
diagonal is ``error_variance``): errors of geopotential, temperature and
pressure are balanced, not independent. Treated as isotropic, the
error covariance is diagonal in spherical harmonics with these variances: the
spatial correlation of the forecast error over the scales where it lives. The
point variance is Σ_l (2l + 1) v_l / 4π. The bias (mean error) is included in the
second moment, not removed.

``anomaly_variance[channel, l]``: the same for the truth's anomalies about their
mean over the sampled states, the climatological spectrum a Gaussian prior would
have (``obs.covariance.gaussian_prior_gamma``).

``unresolved_variance[channel]``: the point variance of the truth, on its own grid,
at the degrees the emulator grid cannot hold (the truth minus its round trip
through the emulator grid, area-weighted mean square): what a point observation
sees of the truth and the emulator never can (``cycler.sources.adaptive``).

The file is small netCDF, written next to the emulator checkpoint as
``errors.nc`` (or anywhere ``run.sources.emulator.statistics`` points). Use a
truth the evaluation never sees: the demo's statistics come from a nature run of
another world seed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from dafusion.data import GriddedSource
from dafusion.emulator.base import ForecastModel
from dafusion.emulator.states import on_grid
from dafusion.grids import AnyGrid, weighted_mean
from dafusion.progress import null_progress
from dafusion.regrid import make_regridder, max_degree
from dafusion.spectra import (
    analysis_matrix,
    coefficient_power,
    degree_covariance,
    point_variance,
)

FILE = "errors.nc"


def error_statistics(model: ForecastModel, source: GriddedSource, inits: np.ndarray,
                     n_steps: int, method: str = "spectral", batch: int = 32,
                     progress: Callable[..., Any] | None = None) -> xr.Dataset:
    """Forecast-error and anomaly spectra; see the module docstring.

    ``inits``: initial times; every lead ``1..n_steps`` must be in the truth.
    """
    channels, grid = list(model.channels), model.grid
    lmax = max_degree(grid)
    ell = np.arange(lmax + 1)
    inits = np.asarray(inits, "datetime64[ns]")
    if inits.size < 2:
        raise ValueError(f"{source.path}: error statistics need at least 2 initial times")
    leads = np.arange(1, n_steps + 1) * model.time_step
    total = np.zeros((n_steps, lmax + 1, len(channels), len(channels)))
    analysis = torch.as_tensor(analysis_matrix(grid, lmax))
    states = []
    with (progress or null_progress)(inits.size, "error statistics") as bar:
        for start in range(0, inits.size, batch):
            t0 = inits[start: start + batch]
            init = on_grid(source, t0, grid, channels, method).rename(time="member")
            init = init.assign_coords(member=np.arange(t0.size), time=t0[0])
            fc = model.forecast(init, n_steps).sel(channel=channels).values  # (lead, B, C, h, w)
            for k, t in enumerate(t0):
                truth = on_grid(source, t + leads, grid, channels, method).values
                total += degree_covariance(torch.as_tensor(fc[:, k] - truth), analysis).numpy()
                states.append(init.values[k])
            bar.update(t0.size)
    states = np.stack(states)
    power = coefficient_power(torch.as_tensor(states - states.mean(0)), analysis).sum(-2)
    anomaly = power.mean(0).numpy() / (2 * ell + 1)
    unresolved = _unresolved(source, inits, grid, channels, method)
    lead_hours = (leads / np.timedelta64(1, "h")).astype(int)
    cov = total / inits.size
    return xr.Dataset(
        {"error_variance": (("lead_hours", "channel", "degree"),
                            np.diagonal(cov, axis1=2, axis2=3).transpose(0, 2, 1)),
         "error_covariance": (("lead_hours", "degree", "channel", "channel_2"), cov),
         "anomaly_variance": (("channel", "degree"), anomaly),
         "unresolved_variance": ("channel", unresolved)},
        coords={"lead_hours": lead_hours, "channel": channels, "channel_2": channels,
                "degree": ell},
        attrs={"title": "dafusion emulator forecast-error statistics",
               "grid": grid.name, "truth": Path(str(source.path)).name,
               "inits": f"{str(inits[0])[:16]} .. {str(inits[-1])[:16]}, {inits.size} times",
               "regrid": method,
               "units": "physical units squared per real spherical-harmonic coefficient "
                        "(orthonormal on the unit sphere)"})


def _unresolved(source: GriddedSource, times: np.ndarray, grid: AnyGrid, channels: list[str],
                method: str) -> np.ndarray:
    """Mean over ``times`` of the area-mean square of truth − its emulator-grid round trip."""
    fine = source.stack().sel(time=times, channel=channels).values
    if source.grid == grid:
        return np.zeros(len(channels))
    down, up = make_regridder(source.grid, grid, method), make_regridder(grid, source.grid, method)
    x = torch.as_tensor(fine, dtype=torch.float64)
    residual = (x - up(down(x))).numpy()
    return weighted_mean(residual ** 2, source.grid).mean(0)


def point_rmse(stats: xr.Dataset) -> xr.DataArray:
    """The error std at a point, sqrt(Σ_l (2l + 1) v_l / 4π): ``(lead_hours, channel)``."""
    return np.sqrt(xr.apply_ufunc(point_variance, stats["error_variance"],
                                  input_core_dims=[["degree"]]))


def load_statistics(path: str | Path, channels: list[str], grid_name: str) -> xr.Dataset:
    """Read and check an ``errors.nc`` for these channels on this grid (loud on mismatch)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no emulator error statistics; make them with "
                                "`cycler emulator errors` (or use "
                                "run.sources.emulator.error_model=constant)")
    try:
        with xr.open_dataset(path) as ds:
            stats = ds.load()
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: not an emulator error-statistics file ({err})") from None
    for key in ("error_variance", "error_covariance", "anomaly_variance",
                "unresolved_variance"):
        if key not in stats:
            raise ValueError(f"{path}: variable {key!r} is missing")
    missing = [c for c in channels if c not in list(stats["channel"].values)]
    if missing:
        raise ValueError(f"{path}: no statistics for channels {missing}")
    if stats.attrs.get("grid") != grid_name:
        raise ValueError(f"{path}: statistics on {stats.attrs.get('grid')}, the emulator is "
                         f"on {grid_name}")
    values = stats["error_variance"].values
    if not (np.isfinite(values).all() and (values > 0).all()):
        raise ValueError(f"{path}: error_variance must be finite and > 0")
    return stats


def at_lead(stats: xr.Dataset, hours: float, channels: list[str],
            multivariate: bool = False) -> np.ndarray:
    """``(C, degree)`` error variance, or ``(degree, C, C)`` covariance, at ``hours``
    (linear in the lead between the tabulated leads; before the first lead, the first
    lead's: lead 0 is the truncated truth, whose error the statistics cannot tell)."""
    table = (stats["error_covariance"].sel(channel=channels, channel_2=channels)
             if multivariate else stats["error_variance"].sel(channel=channels))
    leads = stats["lead_hours"].values.astype(float)
    if hours > leads[-1]:
        raise ValueError(f"emulator error statistics reach {leads[-1]:.0f} h, the forecast "
                         f"is at {hours:.0f} h; make them for longer leads")
    hours = max(hours, leads[0])
    return table.interp(lead_hours=hours).values
