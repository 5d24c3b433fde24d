"""Configuration sections of the models and their data: world, data, synthetic
observations, prior, emulator."""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

from dafusion.config.validate import ConfigError, non_negative, parse_time, positive


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
        positive(self, path, "truncation", "layers", "dt_minutes", "days",
                  "output_hours", "chunk_days")
        non_negative(self, path, "spinup_days", "perturbation_k")
        parse_time(self.start, f"{path}.start")
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
            parse_time(getattr(self, key), f"{path}.{key}")
        if parse_time(self.train_start, "") > parse_time(self.train_end, ""):
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

        positive(self, path, "n_stations")
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
            if not (std >= VARIABLES[name].precision and std > 0 and math.isfinite(std)):
                raise ConfigError(f"{path}.error_std.{name}: must be a finite number >= "
                                  f"{VARIABLES[name].precision:g} {VARIABLES[name].units} "
                                  f"(finer than any instrument), got {std!r}")


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
        positive(self, path, "base_channels", "blocks_per_level")
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
        positive(self, path, "sigma_data", "P_std")


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
        positive(self, path, "steps", "batch_size", "lr", "checkpoint_every", "log_every",
                  "grad_clip")
        non_negative(self, path, "weight_decay", "warmup_steps", "cache_max_gb")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"{path}.ema_decay: {self.ema_decay} outside [0, 1)")


@dataclasses.dataclass
class SamplerConfig:
    """Algorithm 1: sigma schedule, churn, Heun, guidance (EDM defaults, N = 18).

    ``start``: ``noise`` (Algorithm 1: x_0 = σ_max ε, ``steps`` Heun steps from σ_max)
    or ``background`` (a warm start, emulator modes: x_0 = b + σ_start ε from each
    member's background b, the emulator state on the analysis grid, then ``steps``
    Heun steps from σ_start; ``prior.sampler`` docs in ``prior/sampler.py``).
    """

    steps: int = 18
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    start: Literal["noise", "background"] = "noise"
    sigma_start: float = 2.0  # normalised: the noise added to the background (start=background)
    rho: float = 7.0
    S_churn: float = 0.0
    S_tmin: float = 0.0
    S_tmax: float = float("inf")
    S_noise: float = 1.0
    guidance_scale: float = 1.0  # lambda_g
    guidance_clip: float = 0.0  # max RMS per member of the guidance drift; 0 = off
    guidance_bound: bool = True  # never step past the observations (prior.guidance)
    # below this σ the likelihood gradient is taken at D(x; σ) with ∂D/∂x = I: a forward
    # pass without the backward (prior.guidance); 0 = never (Algorithm 1)
    identity_jacobian_below: float = 0.0
    # how the network runs (prior.execution): fp32 | tf32 (CUDA) | bf16 (autocast of F_θ)
    precision: Literal["fp32", "tf32", "bf16"] = "fp32"
    channels_last: bool = False  # NHWC activations (tensor cores)
    compile: bool = False  # torch.compile of F_θ (the first analysis compiles)
    micro_batch: int = 0  # members per guided network pass (0 = the whole ensemble)
    activation_checkpointing: bool = False  # recompute block activations in the backward

    def validate(self, path: str) -> None:
        if self.steps < 1:
            raise ConfigError(f"{path}.steps: must be >= 1, got {self.steps}")
        positive(self, path, "sigma_min", "sigma_max", "rho", "S_noise", "sigma_start")
        if self.sigma_min >= self.sigma_max:
            raise ConfigError(f"{path}.sigma_min: must be < sigma_max")
        if self.start == "background" and not self.sigma_min < self.sigma_start <= \
                self.sigma_max:
            raise ConfigError(f"{path}.sigma_start: must be in ({self.sigma_min:g}, "
                              f"{self.sigma_max:g}], got {self.sigma_start:g}")
        non_negative(self, path, "S_churn", "S_tmin", "guidance_scale", "guidance_clip",
                     "micro_batch", "identity_jacobian_below")


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
        positive(self, path, "embed_dim", "num_layers", "mlp_ratio", "encoder_layers")
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
        positive(self, path, "steps", "batch_size", "lr", "grad_clip", "rollout_steps",
                  "checkpoint_every", "log_every")
        non_negative(self, path, "weight_decay", "warmup_steps")


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
        positive(self, path, "time_step_hours")
