"""Typed configuration: dataclasses that mirror the YAML files in ``configs/``.

Loading validates everything before any computation starts: an unknown key, a
wrong type or an impossible value raises :class:`ConfigError` naming the file
and the key path, e.g. ``configs/world.yaml: world.spinup_days: expected int,
got 'ten'``. ``--set a.b.c=value`` overrides are parsed as YAML scalars and
validated the same way. The library never reads YAML except here.

Modules: ``schema`` (the root), ``models`` and ``run`` (its sections, each
validating itself), ``validate`` (the error and the shared checks), ``load`` (YAML
and ``--set`` into them).
"""

from dafusion.config.load import (
                                  dump_config,
                                  from_dict,
                                  load_config,
                                  parse_yaml,
                                  to_dict,
                                  with_overrides,
                                  with_values,
)
from dafusion.config.models import (
                                  DataConfig,
                                  EDMConfig,
                                  EmulatorConfig,
                                  EmulatorTrainConfig,
                                  NetworkConfig,
                                  PriorConfig,
                                  SamplerConfig,
                                  SFNOConfig,
                                  SynthObsConfig,
                                  TrainConfig,
                                  WorldConfig,
)
from dafusion.config.run import (
                                  GAMMA_DEFAULT,
                                  MAX_RUN_DAYS,
                                  EmulatorSourceConfig,
                                  GriddedSourceConfig,
                                  LETKFConfig,
                                  OIConfig,
                                  PerVariable,
                                  RunConfig,
                                  SourcesConfig,
                                  StationSourceConfig,
                                  of_variable,
)
from dafusion.config.schema import Config
from dafusion.config.validate import ConfigError

__all__ = ["Config", "ConfigError", "DataConfig", "EDMConfig", "EmulatorConfig",
           "EmulatorSourceConfig", "EmulatorTrainConfig", "GAMMA_DEFAULT",
           "GriddedSourceConfig", "LETKFConfig", "MAX_RUN_DAYS", "OIConfig", "NetworkConfig",
           "PerVariable",
           "PriorConfig", "RunConfig", "SFNOConfig", "SamplerConfig", "SourcesConfig",
           "StationSourceConfig", "SynthObsConfig", "TrainConfig", "WorldConfig",
           "dump_config", "from_dict", "load_config", "parse_yaml", "to_dict",
           "of_variable", "with_overrides", "with_values"]
