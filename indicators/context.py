"""What the computations need besides readings: the device registry and the district table."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from kota.registry import CITY_PATTERN, Device, Registry

__all__ = ["Context", "District", "DistrictTable", "load_districts"]


@dataclass(frozen=True)
class District:
    name: str
    area_km2: float | None
    population: float | None
    population_year: int | None
    city: str = ""  # the city tag this row belongs to; "" = the table names no city


class DistrictTable:
    """Districts by (city, name). A row without a city applies to every city, so a table
    without the ``city`` column keeps working for a one-city deployment."""

    def __init__(self, districts: Iterable[District] = ()) -> None:
        self._rows: dict[tuple[str, str], District] = {}
        for district in districts:
            key = (district.city, district.name)
            if key in self._rows:
                where = f" in city {district.city!r}" if district.city else ""
                raise ValueError(f"district {district.name!r} is listed twice{where}")
            self._rows[key] = district

    def get(self, city: str, name: str) -> District | None:
        return self._rows.get((city, name)) or self._rows.get(("", name))

    def of_city(self, city: str) -> list[District]:
        """The rows that describe ``city``: its own, and those without a city for districts it
        has no row of its own for (as ``get`` picks them)."""
        own = {d.name for d in self._rows.values() if d.city == city}
        return [d for d in self._rows.values()
                if d.city == city or (not d.city and d.name not in own)]

    def names(self) -> list[str]:
        return sorted({d.name for d in self._rows.values()})

    def __iter__(self) -> Iterator[District]:
        return iter(self._rows.values())

    def __len__(self) -> int:
        return len(self._rows)


def _number(text: str | None) -> float | None:
    if text is None or not text.strip():
        return None
    return float(text.replace(",", "").replace("_", ""))


def load_districts(path: Path) -> DistrictTable:
    """``[city,]kecamatan,...,area_km2,population,population_year,...`` -> the district table.

    Empty cells mean "not known" and stay None (the indicators that need them are left out).
    """
    rows: list[District] = []
    with path.open(encoding="utf-8", newline="") as handle:
        for number, row in enumerate(csv.DictReader(handle), start=2):
            name = (row.get("kecamatan") or "").strip()
            if not name:
                raise ValueError(f"{path}:{number}: kecamatan is empty")
            city = (row.get("city") or "").strip()
            if city and not re.match(CITY_PATTERN, city):
                raise ValueError(f"{path}:{number}: city {city!r} is not a city tag like "
                                 "'jakarta' (lower case, as in the device registry)")
            try:
                year = _number(row.get("population_year"))
                rows.append(District(name, _number(row.get("area_km2")),
                                     _number(row.get("population")),
                                     int(year) if year is not None else None, city))
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: {exc}") from None
    try:
        return DistrictTable(rows)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


@dataclass
class Context:
    registry: Registry = field(default_factory=Registry)
    districts: DistrictTable = field(default_factory=DistrictTable)
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
