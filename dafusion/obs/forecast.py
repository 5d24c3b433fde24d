"""The emulator forecast as a coarse pseudo-observation (the paper's LUCIE term, eq. 14).

``y`` is a forecast on the emulator's own grid (Legendre-Gauss 48x96 for
LUCIE) and variables; the operator picks the forecast's channels from the
normalised analysis and maps them to that grid with ``dafusion.regrid``:
``spectral`` (default: spherical-harmonic transform and truncation, exact for
band-limited fields), ``bilinear`` or ``bicubic``.

Only channels that both the emulator and the analysis carry are used; the
others are listed in ``rejected`` (counted per grid point).

The error model (``from_forecast``):

* ``sigma_y``: one normalised variance for every value, or the forecast-error
  spectrum ``(C_f, lmax + 1)`` in physical units (``dafusion.emulator.errors``:
  the variance per spherical-harmonic coefficient at this forecast's lead), or
  its covariance between channels per degree ``(lmax + 1, C_f, C_f)``;
* ``covariance``: ``spectral`` (errors independent per coefficient: correlated in
  space, ``obs.covariance.SpectralCovariance``; between channels too when
  ``sigma_y`` is a covariance) or ``diagonal`` (independent per grid point and
  channel, with the spectrum's point variance);
* ``gamma``: a point variance, or the climatological anomaly spectrum
  ``(C_f, lmax + 1)`` (physical): the Gaussian-prior Γ̂_l(σ), exact for a Gaussian
  isotropic prior with that spectrum (``obs.covariance.gaussian_prior_gamma``);
* ``perturb``: perturbed pseudo-observations (Burgers et al. 1998; Houtekamer and
  Mitchell 1998): member m sees the forecast plus its own draw of the error model,
  so that members differ by what the forecast does not know.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from dafusion.grids import AnyGrid
from dafusion.normalise import Normaliser
from dafusion.obs.base import Covariance, Locations, validate_term
from dafusion.obs.covariance import (
    SpectralCovariance,
    gaussian_prior_gamma,
    sample_spectral,
    white_gamma,
    white_noise_variance,
)
from dafusion.regrid import METHODS, make_regridder
from dafusion.spectra import point_variance

Spectrum = np.ndarray  # (channels, lmax + 1), physical units squared


@dataclasses.dataclass
class ForecastObs:
    """A likelihood term over an emulator forecast (normalised units)."""

    name: str
    y: torch.Tensor  # (n,) or (B, n) for one forecast per member
    sigma_y: float | torch.Tensor  # the point variance, (n,) with a spectrum
    gamma: float | Callable[[torch.Tensor], torch.Tensor]  # point value, or of σ: (B, n)
    weight: float
    regridder: nn.Module  # (B, C, H, W) -> (B, C, h, w)
    channel_index: list[int]  # analysis channels that the forecast carries
    channels: list[str]
    rejected: dict[str, int]
    covariance: Covariance | None = None  # SpectralCovariance of the forecast error
    grid: AnyGrid | None = None  # the forecast's grid (of locations())
    pseudo_observation: ClassVar[bool] = True  # y is the background: no O−B

    def __post_init__(self) -> None:
        validate_term(self)

    def operator(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` -> ``(B, n)``: the shared channels on the forecast grid."""
        out = self.regridder(x[:, self.channel_index])
        return out.reshape(x.shape[0], -1)

    @classmethod
    def from_forecast(cls, forecast: np.ndarray, *, forecast_grid: AnyGrid,
                      forecast_channels: list[str], channels: list[str],
                      normaliser: Normaliser, grid: AnyGrid, regrid: str,
                      sigma_y: float | Spectrum, gamma: float | Spectrum, weight: float,
                      covariance: str = "diagonal", name: str = "emulator",
                      perturb: list[torch.Generator] | None = None) -> ForecastObs:
        """``forecast``: ``(C_f, h, w)`` or ``(B, C_f, h, w)`` (one per member), physical;
        the error model: see the module docstring. ``perturb``: one generator per member;
        member m's pseudo-observation is the forecast plus a draw of its errors."""
        if regrid not in METHODS:
            raise ValueError(f"observation source '{name}': regrid {regrid!r} is not available; "
                             f"use one of {METHODS}")
        normaliser.check_channels(channels, f"observation source '{name}'")
        forecast = np.asarray(forecast, dtype=np.float64)
        per_member = forecast.ndim == 4
        fc = forecast if per_member else forecast[None]
        if fc.shape[1:] != (len(forecast_channels),) + forecast_grid.shape:
            raise ValueError(f"observation source '{name}': forecast shape {forecast.shape} does "
                             f"not match {len(forecast_channels)} channels on "
                             f"{forecast_grid.name}")
        if not np.all(np.isfinite(fc)):
            raise ValueError(f"observation source '{name}': forecast contains NaN/inf")
        shared = [c for c in forecast_channels if c in channels]
        if not shared:
            raise ValueError(f"observation source '{name}': no channel in common between the "
                             f"forecast {forecast_channels} and the analysis {channels}")
        npts = forecast_grid.nlat * forecast_grid.nlon
        rejected = {f"channel {c} not in state": npts for c in forecast_channels
                    if c not in channels}
        idx = [channels.index(c) for c in shared]
        picked = fc[:, [forecast_channels.index(c) for c in shared]]
        normalised = normaliser.normalise_at(picked, np.array(idx)[None, :, None, None])
        y = torch.as_tensor(normalised.reshape(fc.shape[0], -1), dtype=torch.float32)
        pick = [forecast_channels.index(c) for c in shared]
        at = np.array(idx)
        if not np.isscalar(sigma_y) and np.ndim(sigma_y) == 3:  # (degree, C_f, C_f)
            sigma_y = normaliser.variance_at(np.asarray(sigma_y)[:, pick][:, :, pick],
                                             at[None, :, None], at[None, None, :])
        elif not np.isscalar(sigma_y):
            sigma_y = normaliser.variance_at(np.asarray(sigma_y)[pick], at[:, None])
        if not np.isscalar(gamma):
            gamma = normaliser.variance_at(np.asarray(gamma)[pick], at[:, None])
        error = _error_model(sigma_y, gamma, covariance, forecast_grid, grid,
                             f"observation source '{name}'")
        if perturb is not None:
            y, per_member = y + _draws(error, perturb, len(shared), forecast_grid), True
        return cls(name, y if per_member else y[0], *error[:2], weight,
                   make_regridder(grid, forecast_grid, regrid), idx, shared, rejected,
                   error[2], forecast_grid)

    def locations(self) -> Locations | None:
        """``(lat, lon, channel index)`` of every value of one member's ``y``: the forecast
        grid's points, channel by channel (analysis channel indices); None without a grid."""
        if self.grid is None:
            return None
        lat, lon = np.meshgrid(self.grid.lat, self.grid.lon, indexing="ij")
        return (np.tile(lat.ravel(), len(self.channel_index)),
                np.tile(lon.ravel(), len(self.channel_index)),
                np.repeat(np.asarray(self.channel_index), lat.size))

    def diagnostics(self) -> dict[str, object]:
        return {"source": self.name, "used": int(self.y.shape[-1]),
                "rejected": dict(self.rejected), "channels": list(self.channels)}


def _draws(error: tuple, generators: list[torch.Generator], channels: int,
           grid: AnyGrid) -> torch.Tensor:
    """``(B, n)`` draws of the error model (spectral: coloured; diagonal: independent)."""
    point, _, cov = error
    if cov is not None:
        return sample_spectral(cov, generators).reshape(len(generators), -1).float()
    n = channels * grid.nlat * grid.nlon
    std = torch.broadcast_to(torch.as_tensor(point, dtype=torch.float64), (n,)).sqrt()
    return torch.stack([torch.randn(n, generator=g, dtype=torch.float64) * std
                        for g in generators]).float()


def _error_model(sigma_y: float | np.ndarray, gamma: float | np.ndarray, covariance: str,
                 forecast_grid: AnyGrid, grid: AnyGrid, where: str
                 ) -> tuple[float | torch.Tensor, float | Callable, Covariance | None]:
    """(point Σ_y, point Γ̂, covariance or None) from normalised values or spectra."""
    if covariance not in ("spectral", "diagonal"):
        raise ValueError(f"{where}: covariance {covariance!r}: use 'spectral' or 'diagonal'")
    if np.isscalar(sigma_y):
        if covariance == "spectral" or not np.isscalar(gamma):
            raise ValueError(f"{where}: a spectral covariance or Γ̂ needs the error spectrum")
        return float(sigma_y), float(gamma), None
    variance = torch.as_tensor(sigma_y, dtype=torch.float64)
    if variance.dim() == 3 and covariance == "diagonal":
        variance = torch.diagonal(variance, dim1=1, dim2=2).T
    channels, lmax = (variance.shape[1], variance.shape[0]) if variance.dim() == 3 \
        else variance.shape
    if np.isscalar(gamma):
        spectral_gamma = white_gamma(float(gamma), lmax - 1, channels)
    else:
        spectral_gamma = gaussian_prior_gamma(torch.as_tensor(gamma, dtype=torch.float64),
                                              white_noise_variance(grid, lmax - 1))
    cov = SpectralCovariance(forecast_grid, variance, spectral_gamma, where)
    npts = forecast_grid.nlat * forecast_grid.nlon
    point = torch.repeat_interleave(cov.point_variance(), npts)  # (n,), channel-major

    def point_gamma(sigma: torch.Tensor) -> torch.Tensor:
        values = spectral_gamma(sigma) if callable(spectral_gamma) else spectral_gamma[None]
        return torch.repeat_interleave(point_variance(values), npts, dim=-1)  # (B, n)

    return point, point_gamma, cov if covariance == "spectral" else None
