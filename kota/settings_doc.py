"""Describe a settings model as text: for ``--help`` epilogs and docs/configuration.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

_PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _default_text(field: FieldInfo) -> str:
    if field.default_factory is not None:
        try:
            value = field.default_factory()  # type: ignore[call-arg]
        except TypeError:
            return "(computed)"
    else:
        value = field.default
    if value is None:
        return "unset"
    if isinstance(value, SecretStr):
        return "(secret)"
    if isinstance(value, BaseModel):
        return ""
    if isinstance(value, Path) and value.is_absolute():
        # Defaults inside the installed project are shown relative to it, not to this machine.
        try:
            return str(value.relative_to(_PROJECT_ROOT))
        except ValueError:
            return str(value)
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return repr(value) if isinstance(value, str) else str(value)


def settings_rows(model: type[BaseModel], section: str) -> list[tuple[str, str, str, str]]:
    """(dotted key, environment variable, default, description) for every leaf setting."""
    rows: list[tuple[str, str, str, str]] = []

    def walk(current: type[BaseModel], path: list[str]) -> None:
        for name, field in current.model_fields.items():
            annotation = field.annotation
            if _is_model(annotation):
                walk(annotation, [*path, name])  # type: ignore[arg-type]
                continue
            dotted = ".".join([section, *path, name])
            env = "KOTA_" + "__".join([section, *path, name]).upper()
            rows.append((dotted, env, _default_text(field), field.description or ""))

    walk(model, [])
    return rows


def settings_help(model: type[BaseModel], section: str) -> str:
    lines = []
    for dotted, env, default, description in settings_rows(model, section):
        lines.append(f"  {dotted} = {default}\n      {description} [{env}]".rstrip())
    return "\n".join(lines)


def settings_markdown(model: type[BaseModel], section: str) -> str:
    out = ["| setting | environment | default | meaning |", "|---|---|---|---|"]
    for dotted, env, default, description in settings_rows(model, section):
        out.append(f"| `{dotted}` | `{env}` | `{default}` | {description} |")
    return "\n".join(out)
