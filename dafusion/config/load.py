"""Loading configurations: YAML (safely and strictly) and ``--set`` overrides into the
schema's dataclasses, checking keys, types and values with their key paths."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from dafusion.config.schema import Config
from dafusion.config.validate import ConfigError

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


def with_values(cfg: Any, values: dict[str, Any]) -> Any:
    """A copy of ``cfg`` with typed ``{"a.b.c": value}`` settings (a command's options),
    validated like the file; ConfigError names the key."""
    raw = to_dict(cfg)
    for key, value in values.items():
        _set_key(raw, key, value, key)
    return from_dict(type(cfg), raw, "")


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
    out = _scalar_value(tp, value, path)
    if isinstance(out, float) and math.isnan(out):
        raise ConfigError(f"{path}: expected a number, got {value!r} (NaN)")
    return out


def _scalar_value(tp: type, value: Any, path: str) -> Any:
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
    _set_key(raw, key.strip(), value, f"{source}: --set {key}")


def _set_key(raw: dict, key: str, value: Any, where: str) -> None:
    """``raw["a"]["b"]["c"] = value`` for ``key`` ``a.b.c`` (missing sections are made, so
    that validation names an unknown key); ConfigError ``where: x is not a section``."""
    node, parts = raw, key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{where}: {part} is not a section")
    node[parts[-1]] = value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


