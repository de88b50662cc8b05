"""Loading a service's typed settings from ``kota.yaml`` + environment + command line.

Priority, lowest first: the model's defaults, the file's section for the service, environment
variables ``KOTA_<SECTION>__<KEY>__<SUBKEY>``, then command-line options. Errors name the setting
as a dotted path and, where it came from the file, the file and line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

__all__ = ["DEFAULT_CONFIG_ENV", "ConfigError", "find_config", "line_numbers", "load_settings"]

DEFAULT_CONFIG_ENV = "KOTA_CONFIG"

Model = TypeVar("Model", bound=BaseModel)


class ConfigError(ValueError):
    """Settings that cannot start a service. The message says which setting and why."""


def find_config(explicit: str | Path | None) -> Path | None:
    """The config file: an explicit path, else $KOTA_CONFIG, else ./kota.yaml if present."""
    if explicit:
        path = Path(explicit)
        if not path.exists():
            raise ConfigError(f"config file {path} not found")
        return path
    env = os.environ.get(DEFAULT_CONFIG_ENV)
    if env:
        path = Path(env)
        if not path.exists():
            raise ConfigError(f"${DEFAULT_CONFIG_ENV} points to {path}, which does not exist")
        return path
    default = Path("kota.yaml")
    return default if default.exists() else None


def line_numbers(text: str) -> dict[tuple[str, ...], int]:
    """Map each key path in a YAML document to its 1-based line."""
    lines: dict[tuple[str, ...], int] = {}

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key_path = (*path, str(key_node.value))
                lines[key_path] = key_node.start_mark.line + 1
                walk(value_node, key_path)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                item_path = (*path, str(index))
                lines[item_path] = item.start_mark.line + 1
                walk(item, item_path)

    root = yaml.compose(text)
    if root is not None:
        walk(root, ())
    return lines


def _set_path(target: dict[str, Any], path: list[str], value: Any) -> None:
    for key in path[:-1]:
        child = target.get(key)
        if not isinstance(child, dict):
            child = {}
            target[key] = child
        target = child
    target[path[-1]] = value


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _env_values(section: str, environ: Mapping[str, str]) -> dict[str, Any]:
    prefix = f"KOTA_{section.upper()}__"
    values: dict[str, Any] = {}
    for name, raw in environ.items():
        if name.startswith(prefix) and raw != "":
            path = [part.lower() for part in name[len(prefix):].split("__") if part]
            if path:
                parsed = yaml.safe_load(raw) if raw[:1] in "[{" else raw
                _set_path(values, path, parsed)
    return values


def load_settings(model: type[Model], section: str, config_file: str | Path | None = None,
                  overrides: Mapping[str, Any] | None = None,
                  environ: Mapping[str, str] | None = None) -> Model:
    """Build ``model`` from the file's ``section``, the environment and ``overrides``."""
    path = find_config(config_file)
    file_values: dict[str, Any] = {}
    lines: dict[tuple[str, ...], int] = {}
    if path is not None:
        text = path.read_text(encoding="utf-8")
        try:
            document = yaml.safe_load(text) or {}
            lines = line_numbers(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(document, dict):
            raise ConfigError(f"{path}: expected a mapping of sections (ingest:, simulate:, ...)")
        section_values = document.get(section) or {}
        if not isinstance(section_values, dict):
            raise ConfigError(f"{path}:{lines.get((section,), '?')}: section {section!r} must "
                              "be a mapping")
        file_values = section_values
    values = _merge(file_values, _env_values(section, os.environ if environ is None else environ))
    values = _merge(values, {k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = tuple(str(part) for part in error["loc"])
            dotted = ".".join((section, *loc))
            line = lines.get((section, *loc))
            where = f" ({path}:{line})" if line and path else ""
            problems.append(f"  {dotted}{where}: {error['msg']}")
        raise ConfigError(f"invalid {section} settings:\n" + "\n".join(problems)) from None
