"""What the indicator service writes, declared once: one ``<measurement>.yaml`` per measurement.

Each file names the measurement, the module that computes it (``source``), the windows it is
written for, its tags (with their values where they are a fixed set) and its fields (type, unit,
meaning, and where only some windows or scopes carry them). The indicator code takes its
measurement names from here, dashboards/schema.py checks panels against it, the API reads its
names from it and docs/indicators.md's tables are generated from it
(``python -m indicators.outputs._doc``; a test fails when the document is not current).

A field name with ``<param>`` stands for one field per entry of the file's ``params``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["OUTPUTS", "OUTPUTS_DIR", "WINDOWS", "FieldSpec", "OutputSpec", "TagSpec",
           "load_outputs", "output", "replaced_measurements"]

OUTPUTS_DIR = Path(__file__).resolve().parent
WindowName = Literal["1m", "1h", "1d"]
WINDOWS: tuple[WindowName, ...] = ("1m", "1h", "1d")
PARAM = "<param>"


class TagSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    values: list[str] | None = Field(default=None, description="The fixed set, if it is one")
    description: str = ""


class FieldSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["float", "bool", "string"] = "float"
    unit: str = ""
    description: str
    windows: list[WindowName] | None = Field(default=None, description="None: every window")
    scopes: list[str] | None = Field(default=None, description="None: every scope")
    framework: str = ""


class OutputSpec(BaseModel):
    """One measurement the indicator service writes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    measurement: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str
    source: str = Field(description="The module that computes it")
    # Empty for a measurement written per event, not per window (alerts' alert_events).
    windows: list[WindowName] = Field(default_factory=list,
                                      description="Windows it is written for; empty: no "
                                                  "window tag")
    replaced_with_window: bool = Field(
        default=True, description="Deleted with a window's points by --replace / the refresh")
    tags: dict[str, TagSpec]
    params: list[str] = Field(default_factory=list, description="What <param> stands for")
    fields: dict[str, FieldSpec]

    @model_validator(mode="after")
    def _params_used(self) -> OutputSpec:
        templated = [name for name in self.fields if PARAM in name]
        if templated and not self.params:
            raise ValueError(f"{templated[0]} needs a list of params")
        for name, field in self.fields.items():
            for window in field.windows or []:
                if window not in self.windows:
                    raise ValueError(f"field {name}: window {window} is not one of {self.windows}")
            scope = self.tags.get("scope")
            if field.scopes and (scope is None or not set(field.scopes) <= set(scope.values or [])):
                raise ValueError(f"field {name}: scopes {field.scopes} are not the scope tag's")
        return self

    def tag_values(self) -> dict[str, frozenset[str] | None]:
        """Every tag with its allowed values (None: any), the ``window`` tag included when
        the measurement has windows."""
        tags: dict[str, frozenset[str] | None] = (
            {"window": frozenset(self.windows)} if self.windows else {})
        for name, tag in self.tags.items():
            tags[name] = frozenset(tag.values) if tag.values is not None else None
        return tags

    def field_names(self) -> list[str]:
        """Every field name, ``<param>`` expanded."""
        names: list[str] = []
        for name in self.fields:
            if PARAM in name:
                names += [name.replace(PARAM, p) for p in self.params]
            else:
                names.append(name)
        return names

    def field_type(self, name: str) -> str | None:
        if name in self.fields:
            return self.fields[name].type
        for template, spec in self.fields.items():
            if PARAM in template and name in {template.replace(PARAM, p) for p in self.params}:
                return spec.type
        return None


def load_outputs(folder: Path = OUTPUTS_DIR) -> dict[str, OutputSpec]:
    """Every ``*.yaml`` of the folder, by measurement (the file must be named after it)."""
    result: dict[str, OutputSpec] = {}
    for path in sorted(folder.glob("*.yaml")):
        with path.open(encoding="utf-8") as handle:
            spec = OutputSpec.model_validate(yaml.safe_load(handle))
        if spec.measurement != path.stem:
            raise ValueError(f"{path}: measurement {spec.measurement!r} must be the file's name")
        result[spec.measurement] = spec
    return result


OUTPUTS = load_outputs()


def output(measurement: str) -> OutputSpec:
    """The declared measurement (KeyError for one nobody declared)."""
    return OUTPUTS[measurement]


def replaced_measurements() -> tuple[str, ...]:
    """The measurements a window's recompute with ``replace`` deletes first."""
    return tuple(name for name, spec in OUTPUTS.items() if spec.replaced_with_window)
