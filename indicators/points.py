"""The points the service writes: measurement, tags, fields, window start. Pure."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from kota.lineproto import FieldValue, build_line, series_key

__all__ = ["Point", "to_lines"]


@dataclass
class Point:
    measurement: str
    tags: dict[str, str]
    time_ms: int
    fields: dict[str, FieldValue] = field(default_factory=dict)

    def put(self, name: str, value: FieldValue | None) -> None:
        """Set a field; None (could not be computed) and non-finite numbers are left out."""
        if value is None:
            return
        if isinstance(value, bool | str):
            self.fields[name] = value
            return
        number = float(value)
        if math.isfinite(number):
            self.fields[name] = number

    def line(self) -> str:
        tags = [(key, value) for key, value in self.tags.items() if value != ""]
        return build_line(series_key(self.measurement, tags), self.fields, self.time_ms)


def to_lines(points: list[Point]) -> list[str]:
    return [point.line() for point in points if point.fields]
