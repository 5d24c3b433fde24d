"""The configuration's root: one field per YAML section."""

from __future__ import annotations

import dataclasses

from dafusion.config.models import (
    DataConfig,
    EmulatorConfig,
    PriorConfig,
    SynthObsConfig,
    WorldConfig,
)
from dafusion.config.run import RunConfig


@dataclasses.dataclass
class Config:
    """Root of every configuration file; later layers add their sections here."""

    world: WorldConfig = dataclasses.field(default_factory=WorldConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    obs: SynthObsConfig = dataclasses.field(default_factory=SynthObsConfig)
    prior: PriorConfig = dataclasses.field(default_factory=PriorConfig)
    emulator: EmulatorConfig = dataclasses.field(default_factory=EmulatorConfig)
    run: RunConfig = dataclasses.field(default_factory=RunConfig)
