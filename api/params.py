"""Validated request parameters, shared by the routers.

Patterns are the protocol's own (docs/protocol.md); a value that passes them still reaches
InfluxDB only through ``quote_literal``. Nothing here is ever compared as a regular expression.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import Path, Query

from kota.registry import CITY_PATTERN, DEVICE_ID_PATTERN

__all__ = [
    "DISTRICT_PATTERN",
    "INTERVAL_PATTERN",
    "MAX_TIME",
    "MIN_TIME",
    "Aggregate",
    "CityQuery",
    "DeviceIdPath",
    "DeviceQuery",
    "DistrictQuery",
    "KindName",
    "KindQuery",
    "interval_seconds",
]

KindName = Literal["air", "water", "rain", "noise", "safety", "status"]
# Kecamatan names: letters, digits, spaces and hyphens ("Kepulauan Seribu Utara", "Pulo Gadung").
DISTRICT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 -]{0,63}$"
FIELD_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"
INTERVAL_PATTERN = r"^[1-9][0-9]{0,6}(s|m|h|d)$"
Aggregate = Literal["mean", "median", "min", "max", "sum", "count", "first", "last", "spread",
                    "stddev"]

# InfluxDB keeps nanoseconds in an int64: 1677-09-21 … 2262-04-11. We stay well inside.
MIN_TIME = datetime(2000, 1, 1, tzinfo=UTC)
MAX_TIME = datetime(2100, 1, 1, tzinfo=UTC)

DeviceIdPath = Annotated[str, Path(pattern=DEVICE_ID_PATTERN, description="Device id",
                                   examples=["air-senen"])]
DeviceQuery = Annotated[str | None, Query(pattern=DEVICE_ID_PATTERN,
                                          description="Only this device")]
DistrictQuery = Annotated[str | None, Query(pattern=DISTRICT_PATTERN,
                                            description="Only this district (kecamatan)")]
CityQuery = Annotated[str | None, Query(pattern=CITY_PATTERN, description="Only this city")]
KindQuery = Annotated[KindName | None, Query(description="Only this sensor kind")]

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def interval_seconds(interval: str) -> int:
    """``"15m"`` → 900. The caller has matched ``INTERVAL_PATTERN``."""
    return int(interval[:-1]) * _UNIT_SECONDS[interval[-1]]
