"""Configuration sections of the cycle: ``run`` and its observation ``sources``."""

from __future__ import annotations

import dataclasses
import math
import typing
import warnings
from typing import Literal

from dafusion.config.validate import (
    ConfigError,
    non_negative,
    normalised_variance,
    parse_time,
    per_variable,
    positive,
)

PerVariable = typing.Union[float, dict[str, float]]


def of_variable(setting: PerVariable | None, variable: str,
                default: float | None = None) -> float | None:
    """One variable's value of a per-variable setting: the setting itself when it is one
    value, else its entry for ``variable``, its ``default`` entry, or ``default``."""
    if not isinstance(setting, dict):
        return setting
    return setting.get(variable, setting.get("default", default))


@dataclasses.dataclass
class StationSourceConfig:
    """Station observations (radiosondes): the table's rows near each analysis time.

    ``sigma_y`` and ``gamma`` take one value or ``{variable: value}`` (long names,
    e.g. ``{temperature: 0.01}``); a variable not named keeps the default: its rows'
    own (error_std / std)² for Σ_y, ``gamma.default`` or 0.1 for Γ̂.
    """

    enabled: bool = True
    weight: float = 1.0  # lambda
    sigma_y: PerVariable | None = None  # normalised variance; None = each row's (error_std/std)^2
    gamma: PerVariable = 0.1  # normalised Gamma-hat
    method: Literal["bicubic", "bilinear"] = "bicubic"
    window_hours: float = 3.0
    background_check: float = 0.0  # k: reject |O-B| > k sqrt(sigma_b^2 + Sigma_y); 0 = off
    background_std: float = 0.5  # sigma_b, normalised: the background's error std
    # share of the table's stations kept out of every analysis and verified against
    # (obs_diagnostics.csv source "stations_withheld"); drawn with withhold_seed
    withhold: float = 0.0
    withhold_seed: int = 0

    def validate(self, path: str) -> None:
        non_negative(self, path, "weight", "background_check")
        positive(self, path, "window_hours", "background_std")
        if not 0.0 <= self.withhold < 1.0:
            raise ConfigError(f"{path}.withhold: a share of the stations in [0, 1), "
                              f"got {self.withhold:g}")
        per_variable(self.sigma_y, f"{path}.sigma_y", strict=True, default_key=False)
        normalised_variance(self.sigma_y, f"{path}.sigma_y")
        per_variable(self.gamma, f"{path}.gamma", strict=False, default_key=True)


GAMMA_DEFAULT = StationSourceConfig.gamma


@dataclasses.dataclass
class GriddedSourceConfig:
    """Coarse gridded observations of the truth (the paper's LR), made in the OSSE."""

    enabled: bool = False
    weight: float = 1.0
    grid: str = "equiangular_8x16"
    method: Literal["bicubic", "area"] = "bicubic"
    noise_std: float | None = None  # normalised; None = sqrt(sigma_y), the stated error
    sigma_y: float = 0.01  # normalised variance
    gamma: float = 0.1
    background_check: float = 0.0  # k, as for stations; 0 = off
    background_std: float = 0.5

    def validate(self, path: str) -> None:
        from dafusion.grids import grid_from_name

        try:
            grid_from_name(self.grid)
        except ValueError as err:
            raise ConfigError(f"{path}.grid: {err}") from None
        non_negative(self, path, "weight", "gamma", "background_check")
        positive(self, path, "sigma_y", "background_std")
        normalised_variance(self.sigma_y, f"{path}.sigma_y")
        if self.noise_std is not None:
            non_negative(self, path, "noise_std")
            if not math.isclose(self.noise_std ** 2, self.sigma_y, rel_tol=1e-6):
                warnings.warn(f"{path}.noise_std = {self.noise_std:g}: the observations' noise "
                              f"variance {self.noise_std ** 2:g} is not their stated Σ_y = "
                              f"{self.sigma_y:g} (an OSSE whose likelihood is wrong on purpose)",
                              stacklevel=2)


@dataclasses.dataclass
class EmulatorSourceConfig:
    """The emulator forecast as a coarse pseudo-observation (forecast and reinit modes).

    ``error_model``: ``statistics`` (Σ_y from the emulator's forecast-error statistics
    at the forecast's lead, ``cycler emulator errors``; ``statistics`` names the file,
    "" = ``errors.nc`` in the emulator checkpoint) or ``constant`` (``sigma_y``).
    ``covariance``: ``multivariate`` (errors correlated in space, isotropic: independent
    per spherical-harmonic coefficient, correlated between channels per degree),
    ``spectral`` (the same with independent channels) or ``diagonal`` (independent
    per grid point and channel).
    ``gamma``: Γ̂ as a point variance, or ``prior``: the Gaussian-prior Γ̂_l(σ) from the
    statistics' climatological spectrum (needs ``statistics``). ``adaptive``: scale
    Σ_y per channel every cycle from the stations' innovations (``cycler.sources.adaptive``).
    ``perturb``: perturbed pseudo-observations, member m's forecast plus a draw of
    the error model (``obs.forecast``). ``adaptive_inflation``: spread the members'
    forecasts about their mean by ρ_c per channel, estimated every cycle from the
    stations' innovations (on top of ``run.inflation``; set that to 1). ``hybrid``: Σ_y
    plus the members' forecast covariance per degree, and their mean as the
    pseudo-observation (an ablation: under-dispersed, docs/long_cycles.md).
    """

    weight: float = 1.0  # lambda of eq. 14 (on this term)
    error_model: Literal["statistics", "constant"] = "statistics"
    statistics: str = ""  # "" = errors.nc in the emulator checkpoint
    covariance: Literal["multivariate", "spectral", "diagonal"] = "multivariate"
    error_scale: float = 1.0  # multiplies the statistics' Sigma_y
    adaptive: bool = False  # scale Sigma_y per channel from the stations' innovations
    perturb: bool = True  # member m sees the forecast plus its own draw of the errors
    hybrid: bool = False  # Σ_y + the members' forecast covariance per degree; y their mean
    adaptive_inflation: bool = False  # spread the members' forecasts by ρ_c from innovations
    sigma_y: float = 0.1  # normalised variance (error_model constant)
    gamma: typing.Union[float, Literal["prior"]] = 0.1

    def validate(self, path: str) -> None:
        non_negative(self, path, "weight")
        positive(self, path, "sigma_y", "error_scale")
        normalised_variance(self.sigma_y, f"{path}.sigma_y")
        if self.gamma != "prior":
            non_negative(self, path, "gamma")
        if self.error_model == "constant" and (self.gamma == "prior" or self.adaptive
                                                or self.hybrid
                                                or self.covariance != "diagonal"):
            raise ConfigError(f"{path}: error_model constant has no spectrum; use "
                              "covariance diagonal and a number for gamma")


@dataclasses.dataclass
class SourcesConfig:
    stations: StationSourceConfig = dataclasses.field(default_factory=StationSourceConfig)
    gridded: GriddedSourceConfig = dataclasses.field(default_factory=GriddedSourceConfig)
    emulator: EmulatorSourceConfig = dataclasses.field(default_factory=EmulatorSourceConfig)


@dataclasses.dataclass
class OIConfig:
    """``run.method: oi``: optimal interpolation with a static B (``baselines.oi``).

    B is univariate, per channel: ``variance`` σ_b² (normalised units) and the
    ``length_scale_km`` of a ``correlation`` model (gaussian, soar), each one value or
    ``{variable: value}`` (long names, ``default`` for the rest). The LETKF draws its
    initial ensemble from the same B. ``perturb``: with more than one member, each
    member assimilates its own perturbed observations (y + ε, ε ~ N(0, R)).
    Defaults: tuned by ``configs/oi.yaml``'s sweep on a validation window.
    """

    variance: PerVariable = 0.1
    length_scale_km: PerVariable = 450.0
    correlation: Literal["gaussian", "soar"] = "gaussian"
    perturb: bool = True

    def validate(self, path: str) -> None:
        per_variable(self.variance, f"{path}.variance", strict=True, default_key=True)
        per_variable(self.length_scale_km, f"{path}.length_scale_km", strict=True,
                     default_key=True)

    def of(self, name: str, variable: str) -> float:
        """``variance`` or ``length_scale_km`` of one variable; ConfigError if unset."""
        value = of_variable(getattr(self, name), variable)
        if value is None:
            raise ConfigError(f"run.oi.{name}: no value for {variable} and no default")
        return float(value)


@dataclasses.dataclass
class LETKFConfig:
    """``run.method: letkf``: the LETKF of Hunt et al. (2007) (``baselines.letkf``).

    ``localisation_km``: the Gaspari–Cohn half-width in great-circle distance (weight 0
    from twice it; 0 = no localisation); ``vertical_localisation``: its half-width in
    ln p (scale heights; 0 = none); ``rtps``: relaxation to prior spread α (0 = none).
    Multiplicative inflation is ``run.inflation``, applied to the members' forecasts
    (an amplitude factor: covariance × inflation²; the tuned LETKF uses 1.0, the
    diffusion default is 1.1). Defaults: tuned by ``configs/letkf.yaml``'s sweeps on a
    validation window.
    """

    localisation_km: float = 700.0
    vertical_localisation: float = 1.0
    rtps: float = 0.5

    def validate(self, path: str) -> None:
        non_negative(self, path, "localisation_km", "vertical_localisation", "rtps")
        if self.rtps > 1:
            raise ConfigError(f"{path}.rtps: must be in [0, 1], got {self.rtps!r}")


MAX_RUN_DAYS = 36525  # a century of cycles


@dataclasses.dataclass
class RunConfig:
    """``cycler run``: the assimilation window, ensemble and observation sources."""

    mode: Literal["plain", "forecast", "reinit"] = "reinit"
    method: Literal["diffusion", "oi", "letkf"] = "diffusion"  # the analysis step
    start: str = "2020-01-01T00:00"
    days: float = 7.0
    cycle_hours: int = 12
    members: int = 8
    seed: int = 0
    truth: str = ""  # "" = the shipped demo truth
    observations: str = ""  # an observation table; "" = synthesise from the truth (obs section)
    reinit: Literal["mean", "members"] = "members"  # measured: docs/calibration.md
    inflation: float = 1.1  # reinit members: the forecasts' spread about their mean x this
    unconditional: bool = False  # run with no observation source at all (a reference curve)
    max_normalised: float = 20.0  # an analysis beyond this many stds from the mean = diverged
    save_members: bool = True  # cycle_NNN/members.nc: the report's rank histograms, spectra
    sources: SourcesConfig = dataclasses.field(default_factory=SourcesConfig)
    oi: OIConfig = dataclasses.field(default_factory=OIConfig)
    letkf: LETKFConfig = dataclasses.field(default_factory=LETKFConfig)

    def validate(self, path: str) -> None:
        parse_time(self.start, f"{path}.start")
        positive(self, path, "days", "cycle_hours", "members", "max_normalised", "inflation")
        if not self.days <= MAX_RUN_DAYS:  # before any array of analysis times is made
            raise ConfigError(f"{path}.days: {self.days:g} days is more than a run can hold "
                              f"(at most {MAX_RUN_DAYS} days; the truth bounds it further)")
        if (self.days * 24) % self.cycle_hours:
            raise ConfigError(f"{path}.days: {self.days} days is not a whole number of "
                              f"{self.cycle_hours}-hour cycles")
        spread = self.sources.emulator
        if (spread.adaptive_inflation or spread.hybrid) and not (
                self.mode == "reinit" and self.reinit == "members" and self.members >= 2
                and self.method == "diffusion"):
            key = "adaptive_inflation" if spread.adaptive_inflation else "hybrid"
            raise ConfigError(f"{path}.sources.emulator.{key}: needs the members' forecasts: "
                              f"mode reinit, reinit members, members >= 2 and method diffusion "
                              f"(got mode {self.mode}, reinit {self.reinit}, members "
                              f"{self.members}, method {self.method})")
        if spread.adaptive_inflation and not self.sources.stations.enabled:
            raise ConfigError(f"{path}.sources.emulator.adaptive_inflation: estimated from the "
                              "stations' innovations; enable run.sources.stations")
        if self.method == "letkf" and not (self.mode == "reinit" and self.reinit == "members"
                                           and self.members >= 2):
            raise ConfigError(f"{path}.method: letkf needs an ensemble of forecasts: mode "
                              f"reinit, reinit members and members >= 2 (got mode {self.mode}, "
                              f"reinit {self.reinit}, members {self.members})")
