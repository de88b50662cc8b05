"""What the computations need besides readings: the device registry and the district table."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from kota.registry import Device, Registry

__all__ = ["Context", "District", "load_districts"]


@dataclass(frozen=True)
class District:
    name: str
    area_km2: float | None
    population: float | None
    population_year: int | None


def _number(text: str | None) -> float | None:
    if text is None or not text.strip():
        return None
    return float(text.replace(",", "").replace("_", ""))


def load_districts(path: Path) -> dict[str, District]:
    """``kecamatan,...,area_km2,population,population_year,...`` -> districts by name.

    Empty cells mean "not known" and stay None (the indicators that need them are left out).
    """
    districts: dict[str, District] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        for number, row in enumerate(csv.DictReader(handle), start=2):
            name = (row.get("kecamatan") or "").strip()
            if not name:
                raise ValueError(f"{path}:{number}: kecamatan is empty")
            try:
                year = _number(row.get("population_year"))
                districts[name] = District(name, _number(row.get("area_km2")),
                                           _number(row.get("population")),
                                           int(year) if year is not None else None)
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: {exc}") from None
    return districts


@dataclass
class Context:
    registry: Registry = field(default_factory=Registry)
    districts: dict[str, District] = field(default_factory=dict)
    status_suffix: str = "-status"

    def param(self, device_id: str, name: str) -> str | None:
        device = self.registry.get(device_id)
        if device is None or name not in device.params:
            return None
        return str(device.params[name])

    def measured_kind(self, heartbeat_device: str) -> str:
        """The kind a heartbeat device stands for: ``x-status`` -> kind of ``x``."""
        if heartbeat_device.endswith(self.status_suffix):
            twin = self.registry.get(heartbeat_device[: -len(self.status_suffix)])
            if twin is not None:
                return twin.kind
        device = self.registry.get(heartbeat_device)
        return device.kind if device is not None and device.kind != "status" else "unknown"

    def registered(self, kind: str, city: str | None) -> list[Device]:
        return [d for d in self.registry.of_kind(kind) if city is None or d.city == city]
