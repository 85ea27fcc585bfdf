"""Reading and writing the trainer's config: YAML files (nested sections) and command-line
overrides `section.field=value`, converted to each field's type; unknown names are errors that
list the valid ones."""
from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path

from .config import Config, ConfigError

_TRUE, _FALSE, _NONE = {"true", "yes", "1", "on"}, {"false", "no", "0", "off"}, {"none", "null", "~", ""}


def _field_types(obj) -> dict[str, object]:
    return typing.get_type_hints(type(obj))


def _convert(name: str, value, kind):
    """`value` (from YAML or a string) as type `kind` (int, float, bool, str, X | None)."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.strip().lower() in _NONE):
            return None
        return _convert(name, value, args[0])
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ConfigError(name, f"expected true/false, got {value!r}")
    if kind is int:
        if isinstance(value, bool):
            raise ConfigError(name, f"expected an integer, got {value!r}")
        try:
            f = float(value)
        except (TypeError, ValueError):
            raise ConfigError(name, f"expected an integer, got {value!r}") from None
        if f != int(f):
            raise ConfigError(name, f"expected an integer, got {value!r}")
        return int(f)
    if kind is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(name, f"expected a number, got {value!r}") from None
    if kind is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(name, f"expected a string, got {value!r}")
        return str(value)
    raise ConfigError(name, f"unsupported field type {kind}")


def _section(cfg: Config, name: str):
    sections = [f.name for f in dataclasses.fields(cfg)]
    if name not in sections:
        raise ConfigError(name, f"unknown section; choose from {sections}")
    return getattr(cfg, name)


def set_value(cfg: Config, dotted: str, value) -> None:
    """Set `section.field` to `value` (converted to the field's type)."""
    if dotted.count(".") != 1:
        raise ConfigError(dotted, "overrides are section.field=value, e.g. train.steps=100")
    sec_name, key = dotted.split(".")
    sec = _section(cfg, sec_name)
    kinds = _field_types(sec)
    if key not in kinds:
        raise ConfigError(dotted, f"unknown field; {sec_name} has {sorted(kinds)}")
    setattr(sec, key, _convert(dotted, value, kinds[key]))


def apply_dict(cfg: Config, data: dict, source: str = "config") -> Config:
    """Merge a nested {section: {field: value}} mapping (from YAML) into `cfg`."""
    if not isinstance(data, dict):
        raise ConfigError(source, f"expected a mapping of sections, got {type(data).__name__}")
    for sec_name, values in data.items():
        if sec_name == "preset":
            continue
        _section(cfg, sec_name)
        if not isinstance(values, dict):
            raise ConfigError(sec_name, f"expected a mapping of fields, got {values!r}")
        for key, value in values.items():
            set_value(cfg, f"{sec_name}.{key}", value)
    return cfg


def load_yaml(path: str | Path) -> dict:
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError("--config", f"file {p} not found")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError("--config", f"{p} is not valid YAML: {err}") from None
    return data


def apply_overrides(cfg: Config, overrides: list[str]) -> Config:
    for item in overrides:
        if "=" not in item:
            raise ConfigError(item, "overrides are section.field=value, e.g. train.steps=100")
        key, value = item.split("=", 1)
        set_value(cfg, key.strip(), value)
    return cfg


def dump_yaml(cfg: Config) -> str:
    import yaml

    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
