"""The typed contract of a sensor kind, loaded from its folder's ``kind.yaml``.

A kind declares each field once: its unit, its type and the plausible range a reading must fall
in. Ingest validates every payload against this, so a unit or type is never guessed per message.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

FieldType = Literal["float", "string", "bool"]

# Field and tag-valued key names: written into line protocol as they are (no escaping needed,
# kota/lineproto.py encode_line), and never one of the keys a format or ingest adds itself.
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,63}")
RESERVED_NAMES = frozenset({"ts", "seq", "ts_from_receive", "time"})


class FieldSpec(BaseModel):
    """One measured value: stored as an InfluxDB field of one fixed type."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    unit: str = Field(description="Unit of measurement, e.g. ug/m3, degC, cm, dBA")
    type: FieldType = "float"
    min: float | None = Field(default=None, description="Lowest plausible value (inclusive)")
    max: float | None = Field(default=None, description="Highest plausible value (inclusive)")
    max_length: int = Field(default=64, description="For strings: longest accepted value")
    description: str = ""
    source: str = Field(default="", description="Where the range comes from")


class TagFieldSpec(BaseModel):
    """A payload key whose value becomes a tag (e.g. the safety event category)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    required: bool = True
    values: list[str] = Field(description="Accepted values; lower case")
    allow_other: bool = Field(
        default=False, description="Accept values outside the list (kept as given)"
    )
    description: str = ""


class KindSpec(BaseModel):
    """A sensor kind: its measurement name, fields and tag-valued keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    measurement: str
    title: str
    description: str = ""
    fields: dict[str, FieldSpec]
    tags: dict[str, TagFieldSpec] = Field(default_factory=dict)
    defaults: dict[str, float] = Field(
        default_factory=dict, description="Field values filled in when a payload omits them"
    )
    registry_extras: dict[str, str] = Field(
        default_factory=dict,
        description="Per-device registry keys this kind uses, with what each means",
    )

    @field_validator("fields", "tags", "defaults")
    @classmethod
    def _plain_names(cls, value: dict[str, object]) -> dict[str, object]:
        for name in value:
            if not NAME_PATTERN.fullmatch(name) or name in RESERVED_NAMES:
                raise ValueError(f"{name!r}: names match [a-z][a-z0-9_]* and are not one of "
                                 f"{', '.join(sorted(RESERVED_NAMES))}")
        return value

    @classmethod
    def load(cls, folder: Path) -> KindSpec:
        with (folder / "kind.yaml").open(encoding="utf-8") as handle:
            return cls.model_validate(yaml.safe_load(handle))
