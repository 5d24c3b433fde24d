"""Typed configuration: dataclasses that mirror the YAML files in ``configs/``.

Loading validates everything before any computation starts: an unknown key, a
wrong type or an impossible value raises :class:`ConfigError` naming the file
and the key path, e.g. ``configs/world.yaml: world.spinup_days: expected int,
got 'ten'``. ``--set a.b.c=value`` overrides are parsed as YAML scalars and
validated the same way. The library never reads YAML except here.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import math
import types
import typing
import warnings
from pathlib import Path
from typing import Any, Literal

import yaml


class ConfigError(ValueError):
    """A configuration problem, with the file and key path in the message."""


# --------------------------------------------------------------------------- schema


@dataclasses.dataclass
class WorldConfig:
    """The Held-Suarez nature run (``cycler world generate``)."""

    seed: int = 0
    truncation: int = 21  # triangular truncation T21 -> 32x64 nodes
    layers: int = 8  # equidistant sigma levels
    dt_minutes: float = 30.0
    spinup_days: float = 200.0
    start: str = "2010-01-01T00:00"  # valid time of the first written state
    days: float = 4018.0  # 2010-01-01 .. 2021-01-01
    output_hours: int = 6
    levels: list[int] = dataclasses.field(default_factory=lambda: [850, 500])
    chunk_days: int = 30  # states written (and progress checkpointed) per chunk
    perturbation_k: float = 0.1  # std of the seeded initial temperature noise

    def validate(self, path: str) -> None:
        _positive(self, path, "truncation", "layers", "dt_minutes", "days",
                  "output_hours", "chunk_days")
        _non_negative(self, path, "spinup_days", "perturbation_k")
        _parse_time(self.start, f"{path}.start")
        if (self.output_hours * 60) % self.dt_minutes:
            raise ConfigError(f"{path}.output_hours: {self.output_hours} h is not a "
                              f"multiple of dt_minutes={self.dt_minutes}")
        for i, lev in enumerate(self.levels):
            if not 50 <= lev <= 1000:
                raise ConfigError(f"{path}.levels[{i}]: {lev} hPa outside 50..1000")


@dataclasses.dataclass
class DataConfig:
    """Where the truth/training data lives and which channels form the state."""

    path: str = "data/world.zarr"
    channels: list[str] = dataclasses.field(
        default_factory=lambda: ["t850", "t500", "u850", "u500", "v850", "v500",
                                 "z850", "z500", "sp"])
    train_start: str = "2010-01-01"
    train_end: str = "2018-12-31T18:00"
    valid_start: str = "2019-01-01"
    valid_end: str = "2019-12-31T18:00"
    # one member of an ensemble file (ERA5 EDA: dimension 'number'); applies to data.path
    # and run.truth. None: the files must not be ensembles
    member: int | None = None

    def validate(self, path: str) -> None:
        from dafusion.variables import parse_channel

        if not self.channels:
            raise ConfigError(f"{path}.channels: must list at least one channel")
        for i, name in enumerate(self.channels):
            try:
                parse_channel(name)
            except ValueError as err:
                raise ConfigError(f"{path}.channels[{i}]: {err}") from None
        if len(set(self.channels)) != len(self.channels):
            raise ConfigError(f"{path}.channels: duplicate channel names")
        for key in ("train_start", "train_end", "valid_start", "valid_end"):
            _parse_time(getattr(self, key), f"{path}.{key}")
        if _parse_time(self.train_start, "") > _parse_time(self.train_end, ""):
            raise ConfigError(f"{path}.train_end: before train_start")


@dataclasses.dataclass
class SynthObsConfig:
    """A radiosonde-like network observing the truth (``cycler obs synth``)."""

    seed: int = 0
    n_stations: int = 150
    northern_fraction: float = 0.75  # share of stations north of the equator
    hours: list[int] = dataclasses.field(default_factory=lambda: [0, 12])
    station_list: str = ""  # optional IGRA2 station list: use its coordinates
    # how the stations see the truth: bicubic = the likelihood's default operator, so the
    # stated error_std is the whole observation error; bilinear adds a representativeness
    # error that Sigma_y does not know (measured in docs/calibration.md)
    method: Literal["bicubic", "bilinear"] = "bicubic"
    # observation error std per base variable, physical units
    error_std: dict[str, float] = dataclasses.field(default_factory=lambda: {
        "temperature": 1.0, "u_component_of_wind": 2.0,
        "v_component_of_wind": 2.0, "geopotential": 100.0,
        "surface_pressure": 100.0})

    def validate(self, path: str) -> None:
        from dafusion.variables import VARIABLES

        _positive(self, path, "n_stations")
        if not 0.0 <= self.northern_fraction <= 1.0:
            raise ConfigError(f"{path}.northern_fraction: {self.northern_fraction} "
                              "outside 0..1")
        for h in self.hours:
            if not 0 <= h <= 23:
                raise ConfigError(f"{path}.hours: {h} is not an hour of the day")
        for name, std in self.error_std.items():
            if name not in VARIABLES:
                raise ConfigError(f"{path}.error_std.{name}: unknown variable; "
                                  f"known: {sorted(VARIABLES)}")
            if not std > 0:
                raise ConfigError(f"{path}.error_std.{name}: must be > 0, got {std}")


@dataclasses.dataclass
class NetworkConfig:
    """SongUNet architecture (paper section 3.4; defaults: the small demo prior)."""

    base_channels: int = 32
    channel_mult: list[int] = dataclasses.field(default_factory=lambda: [1, 2, 2, 2])
    blocks_per_level: int = 1
    attention_resolutions: list[list[int]] = dataclasses.field(
        default_factory=lambda: [[8, 16]])
    dropout: float = 0.1

    def validate(self, path: str) -> None:
        _positive(self, path, "base_channels", "blocks_per_level")
        if not self.channel_mult or min(self.channel_mult) < 1:
            raise ConfigError(f"{path}.channel_mult: must be a non-empty list of ints >= 1")
        for i, res in enumerate(self.attention_resolutions):
            if len(res) != 2:
                raise ConfigError(f"{path}.attention_resolutions[{i}]: expected [nlat, nlon]")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"{path}.dropout: {self.dropout} outside [0, 1)")


@dataclasses.dataclass
class EDMConfig:
    """EDM preconditioning and loss (Karras et al. 2022; paper: -0.5, 1.5, 1)."""

    sigma_data: float = 1.0
    P_mean: float = -0.5
    P_std: float = 1.5

    def validate(self, path: str) -> None:
        _positive(self, path, "sigma_data", "P_std")


@dataclasses.dataclass
class TrainConfig:
    """``cycler prior train``: optimiser, schedule, checkpoints."""

    steps: int = 20000
    batch_size: int = 16
    lr: float = 4e-4
    weight_decay: float = 0.0
    warmup_steps: int = 500
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    checkpoint_every: int = 250
    log_every: int = 25
    seed: int = 0
    cache_max_gb: float = 4.0  # load the training period into memory below this size

    def validate(self, path: str) -> None:
        _positive(self, path, "steps", "batch_size", "lr", "checkpoint_every", "log_every",
                  "grad_clip")
        _non_negative(self, path, "weight_decay", "warmup_steps", "cache_max_gb")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"{path}.ema_decay: {self.ema_decay} outside [0, 1)")


@dataclasses.dataclass
class SamplerConfig:
    """Algorithm 1: sigma schedule, churn, Heun, guidance (EDM defaults, N = 18)."""

    steps: int = 18
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    S_churn: float = 0.0
    S_tmin: float = 0.0
    S_tmax: float = float("inf")
    S_noise: float = 1.0
    guidance_scale: float = 1.0  # lambda_g
    guidance_clip: float = 0.0  # max RMS per member of the guidance drift; 0 = off
    guidance_bound: bool = True  # never step past the observations (prior.guidance)

    def validate(self, path: str) -> None:
        if self.steps < 1:
            raise ConfigError(f"{path}.steps: must be >= 1, got {self.steps}")
        _positive(self, path, "sigma_min", "sigma_max", "rho", "S_noise")
        if self.sigma_min >= self.sigma_max:
            raise ConfigError(f"{path}.sigma_min: must be < sigma_max")
        _non_negative(self, path, "S_churn", "S_tmin", "guidance_scale", "guidance_clip")


@dataclasses.dataclass
class PriorConfig:
    """The diffusion prior: network, EDM settings, training, sampling."""

    checkpoint: str = ""  # a checkpoint directory; "" = the shipped demo prior
    network: NetworkConfig = dataclasses.field(default_factory=NetworkConfig)
    edm: EDMConfig = dataclasses.field(default_factory=EDMConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    sampler: SamplerConfig = dataclasses.field(default_factory=SamplerConfig)


@dataclasses.dataclass
class SFNOConfig:
    """The SFNO network (defaults: the small demo emulator; LUCIE: configs/lucie.yaml)."""

    embed_dim: int = 48
    num_layers: int = 4
    hard_thresholding_fraction: float = 0.9  # share of the SHT modes the filters keep
    mlp_ratio: float = 2.0
    activation: Literal["silu", "gelu", "relu"] = "silu"
    encoder_layers: int = 1
    big_skip: bool = True  # the decoder also sees the raw input
    pos_embed: bool = True  # learned per-gridpoint embedding
    normalization: Literal["instance_norm", "none"] = "instance_norm"
    operator_type: Literal["dhconv", "diagonal"] = "dhconv"

    def validate(self, path: str) -> None:
        _positive(self, path, "embed_dim", "num_layers", "mlp_ratio", "encoder_layers")
        if not 0.0 < self.hard_thresholding_fraction <= 1.0:
            raise ConfigError(f"{path}.hard_thresholding_fraction: "
                              f"{self.hard_thresholding_fraction} outside (0, 1]")


@dataclasses.dataclass
class EmulatorTrainConfig:
    """``cycler emulator train``: one-step (or short rollout) tendency regression."""

    steps: int = 6000
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 200
    grad_clip: float = 1.0
    rollout_steps: int = 1  # autoregressive steps in the loss (1 = LUCIE's one-step loss)
    checkpoint_every: int = 500
    log_every: int = 50
    seed: int = 0

    def validate(self, path: str) -> None:
        _positive(self, path, "steps", "batch_size", "lr", "grad_clip", "rollout_steps",
                  "checkpoint_every", "log_every")
        _non_negative(self, path, "weight_decay", "warmup_steps")


@dataclasses.dataclass
class EmulatorConfig:
    """The forecast model: grid, channels, forcing, network, training."""

    checkpoint: str = ""  # an emulator checkpoint directory; "" = the shipped demo emulator
    grid: str = "legendre_gauss_16x32"  # the OSSE's stand-in for LUCIE's 48x96
    channels: list[str] = dataclasses.field(
        default_factory=lambda: ["t850", "t500", "u850", "u500", "v850", "v500",
                                 "z850", "z500", "sp"])  # prognostic: tendencies
    diagnostics: list[str] = dataclasses.field(default_factory=list)  # predicted, not fed back
    log_transform: list[str] = dataclasses.field(default_factory=list)  # LUCIE's precip log
    forcing: list[Literal["tisr", "orography"]] = dataclasses.field(default_factory=list)
    orography: str = ""  # netCDF with the surface geopotential/height on the emulator grid
    time_step_hours: int = 6
    lat_order: Literal["north_to_south", "south_to_north"] = "north_to_south"
    regrid: Literal["spectral", "bilinear", "bicubic"] = "spectral"
    network: SFNOConfig = dataclasses.field(default_factory=SFNOConfig)
    train: EmulatorTrainConfig = dataclasses.field(default_factory=EmulatorTrainConfig)

    def validate(self, path: str) -> None:
        from dafusion.grids import grid_from_name
        from dafusion.variables import parse_channel

        try:
            grid_from_name(self.grid)
        except ValueError as err:
            raise ConfigError(f"{path}.grid: {err}") from None
        if not self.channels:
            raise ConfigError(f"{path}.channels: must list at least one channel")
        for key in ("channels", "diagnostics"):
            for i, name in enumerate(getattr(self, key)):
                try:
                    parse_channel(name)
                except ValueError as err:
                    raise ConfigError(f"{path}.{key}[{i}]: {err}") from None
        for i, name in enumerate(self.log_transform):
            if name not in self.diagnostics:
                raise ConfigError(f"{path}.log_transform[{i}]: {name!r} is not a diagnostic "
                                  f"channel {self.diagnostics}")
        if "orography" in self.forcing and not self.orography:
            raise ConfigError(f"{path}.orography: the forcing lists orography; give the file")
        _positive(self, path, "time_step_hours")


PerVariable = typing.Union[float, dict[str, float]]


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

    def validate(self, path: str) -> None:
        _non_negative(self, path, "weight", "background_check")
        _positive(self, path, "window_hours", "background_std")
        _per_variable(self.sigma_y, f"{path}.sigma_y", strict=True, default_key=False)
        _per_variable(self.gamma, f"{path}.gamma", strict=False, default_key=True)

    def gamma_of(self, variable: str) -> float:
        """Γ̂ of one variable's observations."""
        if isinstance(self.gamma, dict):
            return self.gamma.get(variable, self.gamma.get("default", GAMMA_DEFAULT))
        return self.gamma

    def sigma_y_of(self, variable: str) -> float | None:
        """Σ_y of one variable's observations; None = each row's own error std."""
        return self.sigma_y.get(variable) if isinstance(self.sigma_y, dict) else self.sigma_y


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
        _non_negative(self, path, "weight", "gamma", "background_check")
        _positive(self, path, "sigma_y", "background_std")
        if self.noise_std is not None:
            _non_negative(self, path, "noise_std")
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
    Σ_y per channel every cycle from the stations' innovations (``cycler.adaptive``).
    ``perturb``: perturbed pseudo-observations, member m's forecast plus a draw of
    the error model (``obs.forecast``).
    """

    weight: float = 1.0  # lambda of eq. 14 (on this term)
    error_model: Literal["statistics", "constant"] = "statistics"
    statistics: str = ""  # "" = errors.nc in the emulator checkpoint
    covariance: Literal["multivariate", "spectral", "diagonal"] = "multivariate"
    error_scale: float = 1.0  # multiplies the statistics' Sigma_y
    adaptive: bool = False  # scale Sigma_y per channel from the stations' innovations
    perturb: bool = True  # member m sees the forecast plus its own draw of the errors
    sigma_y: float = 0.1  # normalised variance (error_model constant)
    gamma: typing.Union[float, Literal["prior"]] = 0.1

    def validate(self, path: str) -> None:
        _non_negative(self, path, "weight")
        _positive(self, path, "sigma_y", "error_scale")
        if self.gamma != "prior":
            _non_negative(self, path, "gamma")
        if self.error_model == "constant" and (self.gamma == "prior" or self.adaptive
                                                or self.covariance != "diagonal"):
            raise ConfigError(f"{path}: error_model constant has no spectrum; use "
                              "covariance diagonal and a number for gamma")


@dataclasses.dataclass
class SourcesConfig:
    stations: StationSourceConfig = dataclasses.field(default_factory=StationSourceConfig)
    gridded: GriddedSourceConfig = dataclasses.field(default_factory=GriddedSourceConfig)
    emulator: EmulatorSourceConfig = dataclasses.field(default_factory=EmulatorSourceConfig)


MAX_RUN_DAYS = 36525  # a century of cycles


@dataclasses.dataclass
class RunConfig:
    """``cycler run``: the assimilation window, ensemble and observation sources."""

    mode: Literal["plain", "forecast", "reinit"] = "reinit"
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

    def validate(self, path: str) -> None:
        _parse_time(self.start, f"{path}.start")
        _positive(self, path, "days", "cycle_hours", "members", "max_normalised", "inflation")
        if not self.days <= MAX_RUN_DAYS:  # before any array of analysis times is made
            raise ConfigError(f"{path}.days: {self.days:g} days is more than a run can hold "
                              f"(at most {MAX_RUN_DAYS} days; the truth bounds it further)")
        if (self.days * 24) % self.cycle_hours:
            raise ConfigError(f"{path}.days: {self.days} days is not a whole number of "
                              f"{self.cycle_hours}-hour cycles")


@dataclasses.dataclass
class Config:
    """Root of every configuration file; later layers add their sections here."""

    world: WorldConfig = dataclasses.field(default_factory=WorldConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    obs: SynthObsConfig = dataclasses.field(default_factory=SynthObsConfig)
    prior: PriorConfig = dataclasses.field(default_factory=PriorConfig)
    emulator: EmulatorConfig = dataclasses.field(default_factory=EmulatorConfig)
    run: RunConfig = dataclasses.field(default_factory=RunConfig)


# --------------------------------------------------------------------------- loading


def load_config(path: str | Path | None = None, overrides: typing.Sequence[str] = (),
                cls: type = Config) -> Any:
    """Load a YAML file (or the defaults when ``path`` is None) into ``cls``.

    ``overrides`` are ``"a.b.c=value"`` strings applied after the file.
    Raises ConfigError naming the file and key path on any problem.
    """
    source = str(path) if path is not None else "<defaults>"
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as err:
            raise ConfigError(f"{source}: cannot read ({err.strerror})") from None
        except UnicodeDecodeError as err:
            raise ConfigError(f"{source}: not a UTF-8 text file (byte {err.start}); a "
                              "configuration is YAML text") from None
        raw = parse_yaml(text, source) or {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: top level must be a mapping, got "
                              f"{type(raw).__name__}")
    if overrides:
        raw = _with_defaults(cls, raw)  # an override merges into the resolved mapping
    for item in overrides:
        _apply_override(raw, item, source)
    try:
        return from_dict(cls, raw, "")
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None


def _with_defaults(cls: type, raw: Any) -> Any:
    """``raw`` with every key it leaves out filled from ``cls``'s defaults, so that
    ``--set obs.error_std.temperature=0.5`` changes one entry of the default mapping
    exactly as it changes one entry of a mapping a file gives. A mapping the file
    gives replaces the default one (the file says all of it)."""
    if not isinstance(raw, dict):
        return raw
    out = dict(raw)
    for f in dataclasses.fields(cls):
        tp = typing.get_type_hints(cls)[f.name]
        if dataclasses.is_dataclass(tp):
            out[f.name] = _with_defaults(tp, raw.get(f.name, {}))
        elif f.name not in raw:
            default = (f.default_factory() if f.default_factory is not dataclasses.MISSING
                       else f.default)
            out[f.name] = to_dict(default) if dataclasses.is_dataclass(default) else \
                copy.deepcopy(default)
    return out


def with_overrides(cfg: Any, overrides: typing.Sequence[str], source: str = "--set") -> Any:
    """A copy of the configuration ``cfg`` with ``"a.b.c=value"`` overrides, validated."""
    raw = to_dict(cfg)
    for item in overrides:
        _apply_override(raw, item, source)
    try:
        return from_dict(type(cfg), raw, "")
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None


def from_dict(cls: type, raw: Any, path: str) -> Any:
    """Build dataclass ``cls`` from a mapping, checking keys and types."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{path or '<root>'}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        key = _join(path, str(unknown[0]))
        raise ConfigError(f"{key}: unknown key; allowed: {sorted(names)}")
    kwargs = {k: _coerce(hints[k], v, _join(path, k)) for k, v in raw.items()}
    obj = cls(**kwargs)
    _validate_tree(obj, path)
    return obj


def _validate_tree(obj: Any, path: str) -> None:
    """Run ``validate`` on every nested section (defaults included), depth first."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            _validate_tree(value, _join(path, f.name))
        elif f.name == "seed" and isinstance(value, int) and not 0 <= value < 2 ** 63:
            raise ConfigError(f"{_join(path, f.name)}: must be in 0 .. 2**63 - 1, got {value}")
    if hasattr(obj, "validate") and path:
        obj.validate(path)


def to_dict(obj: Any) -> Any:
    """Plain-Python (YAML-safe) view of a config dataclass."""
    return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else obj


def dump_config(obj: Any) -> str:
    """The resolved configuration as YAML text (what every command records)."""
    return yaml.safe_dump(to_dict(obj), sort_keys=False)


# --------------------------------------------------------------------------- helpers


def _coerce(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        errors = []
        for option in inner:  # the first type that accepts the value
            try:
                return _coerce(option, value, path)
            except ConfigError as err:
                errors.append(err)
        if len(errors) == 1:
            raise errors[0]
        names = [getattr(typing.get_origin(o) or o, "__name__", str(o)) for o in inner]
        raise ConfigError(f"{path}: expected {' or '.join(names)}, got {value!r}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{path}: expected one of {list(args)}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        return [_coerce(args[0], v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        return {str(k): _coerce(args[1], v, _join(path, str(k))) for k, v in value.items()}
    return _scalar(tp, value, path)


def _scalar(tp: type, value: Any, path: str) -> Any:
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and value in (".inf", "inf", "Infinity"):
        return float("inf")
    if tp is float and isinstance(value, str):  # YAML 1.1 reads 1e3 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if tp is str and isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()  # YAML turns 2020-01-01 into a date
    if tp is Any or (isinstance(value, tp) and not (tp is int and isinstance(value, bool))):
        return value
    raise ConfigError(f"{path}: expected {tp.__name__}, got {value!r}")


class _StrictLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that refuses duplicate keys (the last would win unseen) and
    leaves dates as text (the configuration parses its own, naming the key)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(f"line {key_node.start_mark.line + 1}: key {key!r} given "
                                  f"twice (first on line {seen[key]})")
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers
            if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def parse_yaml(text: str, source: str) -> Any:
    """YAML text -> Python, safely (no tags that construct objects), strictly (no
    duplicate keys); errors name ``source``."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{source}: not valid YAML: {err}") from None


def _apply_override(raw: dict, item: str, source: str) -> None:
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {item!r}: expected key.path=value")
    try:
        value = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except (yaml.YAMLError, ConfigError):
        value = text
    node = raw
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{source}: --set {key}: {part} is not a section")
    node[parts[-1]] = value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _parse_time(text: str, path: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise ConfigError(f"{path}: expected an ISO date/time, got {text!r}") from None
    if when.tzinfo is not None:
        raise ConfigError(f"{path}: {text!r} has a time zone; times are UTC without one "
                          f"(here: {when.astimezone(dt.timezone.utc):%Y-%m-%dT%H:%M})")
    return when


def _positive(obj: Any, path: str, *names: str) -> None:
    for name in names:
        if not getattr(obj, name) > 0:
            raise ConfigError(f"{path}.{name}: must be > 0, got {getattr(obj, name)!r}")


def _per_variable(value: Any, path: str, *, strict: bool, default_key: bool) -> None:
    """A number (> 0 if ``strict``, else >= 0) or ``{variable: number}``."""
    from dafusion.variables import VARIABLES

    items = value.items() if isinstance(value, dict) else [(None, value)]
    for name, v in items:
        key = path if name is None else f"{path}.{name}"
        if name is not None and name not in VARIABLES and not (default_key and
                                                               name == "default"):
            raise ConfigError(f"{key}: unknown variable; known: {sorted(VARIABLES)}"
                              + (" or 'default'" if default_key else ""))
        if v is not None and not (v > 0 if strict else v >= 0):
            raise ConfigError(f"{key}: must be {'> 0' if strict else '>= 0'}, got {v!r}")


def _non_negative(obj: Any, path: str, *names: str) -> None:
    for name in names:
        if getattr(obj, name) < 0:
            raise ConfigError(f"{path}.{name}: must be >= 0, got {getattr(obj, name)!r}")
