"""The device registry: which device is where, of which kind, with what per-kind parameters.

Kept as a data file (YAML or CSV) so field teams edit it without touching code. Points carry
the registry's city, district and kelurahan as tags.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kota.config import yaml_problem
from kota.kinds import KINDS

__all__ = [
    "CITY_PATTERN",
    "DEVICE_ID_PATTERN",
    "Device",
    "Registry",
    "RegistryError",
]

DEVICE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
CITY_PATTERN = r"^[a-z0-9][a-z0-9-]{0,31}$"
# A place name becomes a tag value: no newline, tab or backslash (see kota.lineproto).
PLACE_PATTERN = r"^[^\n\r\t\\]{1,64}$"

ParamValue = float | str


class RegistryError(ValueError):
    """The registry file cannot be read; the message names the file, row and key."""


class Device(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    device_id: Annotated[str, Field(pattern=DEVICE_ID_PATTERN)]
    kind: str
    city: Annotated[str, Field(pattern=CITY_PATTERN)]
    district: Annotated[str, Field(pattern=PLACE_PATTERN, description="Kecamatan")]
    kelurahan: Annotated[str, Field(pattern=r"^[^\n\r\t\\]{0,64}$")] = ""
    lat: Annotated[float, Field(ge=-90, le=90)]
    lon: Annotated[float, Field(ge=-180, le=180)]
    name: str = ""
    params: dict[str, ParamValue] = Field(default_factory=dict)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; known kinds: {', '.join(KINDS)}")
        return kind

    @model_validator(mode="after")
    def _params_belong_to_kind(self) -> Device:
        allowed = KINDS[self.kind].spec.registry_extras
        unknown = sorted(set(self.params) - set(allowed))
        if unknown:
            raise ValueError(
                f"parameter(s) {', '.join(unknown)} do not apply to kind {self.kind!r}; "
                f"it takes: {', '.join(allowed) or 'none'}"
            )
        return self

    def tags(self) -> dict[str, str]:
        tags = {"city": self.city, "district": self.district, "kind": self.kind,
                "device": self.device_id}
        if self.kelurahan:
            tags["kelurahan"] = self.kelurahan
        return tags


class Registry:
    """Devices by id. ``Registry.load(path)`` reads ``.yaml``/``.yml`` or ``.csv``."""

    def __init__(self, devices: Iterable[Device] = ()) -> None:
        self._devices: dict[str, Device] = {}
        for device in devices:
            if device.device_id in self._devices:
                raise RegistryError(f"device_id {device.device_id!r} appears twice")
            self._devices[device.device_id] = device

    def __len__(self) -> int:
        return len(self._devices)

    def __iter__(self) -> Iterator[Device]:
        return iter(self._devices.values())

    def __contains__(self, device_id: object) -> bool:
        return device_id in self._devices

    def get(self, device_id: str) -> Device | None:
        return self._devices.get(device_id)

    def of_kind(self, kind: str) -> list[Device]:
        return [d for d in self._devices.values() if d.kind == kind]

    @classmethod
    def load(cls, path: Path | str) -> Registry:
        path = Path(path)
        if not path.exists():
            raise RegistryError(f"{path}: registry file not found")
        rows = _read_rows(path)
        devices = []
        for number, row in enumerate(rows, start=1):
            try:
                devices.append(Device.model_validate(row))
            except ValidationError as exc:
                where = f"{path}: device #{number} ({row.get('device_id', '?')})"
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in err['loc']) or 'row'}: {err['msg']}"
                    for err in exc.errors()
                )
                raise RegistryError(f"{where}: {problems}") from None
        return cls(devices)

    def dump_yaml(self) -> str:
        rows = [d.model_dump(exclude_defaults=True) for d in self]
        return yaml.safe_dump({"devices": rows}, sort_keys=False, allow_unicode=True)


_BASE_COLUMNS = {"device_id", "kind", "city", "district", "kelurahan", "lat", "lon", "name"}


def _read_rows(path: Path) -> list[dict[str, object]]:
    if path.suffix.lower() == ".csv":
        with path.open(encoding="utf-8", newline="") as handle:
            rows: list[dict[str, object]] = []
            for raw in csv.DictReader(handle):
                row: dict[str, object] = {}
                params: dict[str, object] = {}
                for key, value in raw.items():
                    if key is None or value in (None, ""):
                        continue
                    if key in _BASE_COLUMNS:  # text stays text: device_id 1042 is not 1042.0
                        row[key] = value
                    else:
                        params[key] = _number_or_text(value)
                row["params"] = params
                rows.append(row)
            return rows
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise RegistryError(yaml_problem(path, exc)) from None
    if not isinstance(data, dict) or not isinstance(data.get("devices"), list):
        raise RegistryError(f"{path}: expected a mapping with a 'devices:' list")
    return [dict(item) if isinstance(item, dict) else {"device_id": item}
            for item in data["devices"]]


def _number_or_text(value: str) -> object:
    try:
        return float(value)
    except ValueError:
        return value
