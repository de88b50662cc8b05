"""Latest readings and history from the raw measurements that ``kota ingest`` writes.

Statements are built only from validated values: identifiers through ``quote_ident``, strings
through ``quote_literal``, times as integers we format, intervals and aggregates from fixed sets.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from api.schemas import (
    DistrictLatest,
    FieldSummary,
    HistoryResponse,
    HistorySeries,
    LatestReading,
)
from indicators.queries import eq, group_by, recent, where
from kota.influx import InfluxClient, quote_ident
from kota.kinds import KINDS
from kota.registry import Registry

__all__ = ["Filters", "ReadingsService", "district_summaries", "finite_number",
           "latest_query"]

TAG_COLUMNS = ("city", "district", "kelurahan", "kind", "device")
AGGREGATES = frozenset({"mean", "median", "min", "max", "sum", "count", "first", "last",
                        "spread", "stddev"})


@dataclass(frozen=True)
class Filters:
    city: str | None = None
    district: str | None = None
    device: str | None = None

    def conditions(self) -> list[str]:
        parts = []
        for tag, value in (("city", self.city), ("district", self.district),
                           ("device", self.device)):
            if value is not None:
                parts.append(eq(tag, value))
        return parts


def ms_to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


def latest_query(measurement: str, filters: Filters, lookback_s: int) -> str:
    """The newest point of every device of ``measurement``."""
    return (f"SELECT * FROM {quote_ident(measurement)} "
            f"WHERE {where(recent(lookback_s), *filters.conditions())} "
            f"GROUP BY {group_by(['device'])} ORDER BY time DESC LIMIT 1")


def history_query(measurement: str, fields: Sequence[str], filters: Filters, start: datetime,
                  end: datetime, interval: str | None, aggregate: str | None, limit: int,
                  max_series: int) -> str:
    conditions = where(f"time >= {_ns(start)}", f"time < {_ns(end)}", *filters.conditions())
    if interval is None:
        columns = ", ".join(quote_ident(f) for f in fields)
        return (f"SELECT {columns} FROM {quote_ident(measurement)} WHERE {conditions} "
                f"GROUP BY {group_by(['device'])} ORDER BY time ASC "
                f"LIMIT {int(limit)} SLIMIT {int(max_series)}")
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate {aggregate!r} not allowed")
    if not interval[:-1].isdigit() or interval[-1] not in "smhd":
        raise ValueError(f"interval {interval!r} not allowed")
    columns = ", ".join(f"{aggregate}({quote_ident(f)}) AS {quote_ident(f)}" for f in fields)
    return (f"SELECT {columns} FROM {quote_ident(measurement)} WHERE {conditions} "
            f"GROUP BY time({interval}), {group_by(['device'])} fill(none) "
            f"LIMIT {int(limit)} SLIMIT {int(max_series)}")


def _reading(kind: str, series: dict[str, Any], registry: Registry) -> LatestReading | None:
    values = series.get("values") or []
    if not values:
        return None
    row = dict(zip(series["columns"], values[0], strict=False))
    device_id = str((series.get("tags") or {}).get("device") or row.get("device") or "")
    time_ms = int(row.pop("time"))
    tags: dict[str, str] = {}
    fields: dict[str, Any] = {}
    known_fields = KINDS[kind].spec.fields
    extra_tags = KINDS[kind].spec.tags
    for column, value in row.items():
        if column in TAG_COLUMNS:
            continue
        if column in extra_tags and column not in known_fields:
            if value is not None:
                tags[column] = str(value)
        elif value is not None:
            fields[column] = value
    device = registry.get(device_id)
    return LatestReading(
        device=device_id, kind=kind, city=str(row.get("city") or ""),
        district=str(row.get("district") or ""), kelurahan=str(row.get("kelurahan") or ""),
        time=ms_to_datetime(time_ms), time_ms=time_ms, fields=fields, tags=tags,
        lat=device.lat if device else None, lon=device.lon if device else None,
        name=device.name if device else "")


class ReadingsService:
    def __init__(self, influx: InfluxClient, registry: Registry, lookback_s: int) -> None:
        self.influx = influx
        self.registry = registry
        self.lookback_s = lookback_s

    async def latest(self, kinds: Sequence[str], filters: Filters) -> list[LatestReading]:
        """The newest point per device, for each of ``kinds``; sorted by kind, then device."""
        answers = await asyncio.gather(*(
            self.influx.query(latest_query(KINDS[kind].spec.measurement, filters,
                                           self.lookback_s))
            for kind in kinds))
        readings = []
        for kind, series_list in zip(kinds, answers, strict=True):
            for series in series_list:
                reading = _reading(kind, series, self.registry)
                if reading is not None:
                    readings.append(reading)
        readings.sort(key=lambda r: (r.kind, r.device))
        return readings

    async def history(self, kind: str, fields: Sequence[str], filters: Filters,
                      start: datetime, end: datetime, interval: str | None,
                      aggregate: str | None, limit: int, max_series: int) -> HistoryResponse:
        measurement = KINDS[kind].spec.measurement
        # One more than asked, to tell the caller whether a series was cut.
        query = history_query(measurement, fields, filters, start, end, interval, aggregate,
                              limit + 1, max_series)
        truncated = False
        out = []
        for series in await self.influx.query(query):
            rows = series.get("values") or []
            if len(rows) > limit:
                truncated = True
                rows = rows[:limit]
            columns = series["columns"]
            index = {name: columns.index(name) for name in fields if name in columns}
            tags = series.get("tags") or {}
            device_id = str(tags.get("device", ""))
            device = self.registry.get(device_id)
            out.append(HistorySeries(
                device=device_id, district=device.district if device else "",
                city=device.city if device else "",
                times_ms=[int(row[0]) for row in rows],
                values={name: [finite_number(row[index[name]]) if name in index else None
                               for row in rows] for name in fields}))
        out.sort(key=lambda s: s.device)
        return HistoryResponse(kind=kind, fields=list(fields), start=start, end=end,
                               interval=interval, aggregate=aggregate if interval else None,
                               truncated=truncated, series=out)


def finite_number(value: Any) -> float | None:
    """A finite int or float as float; None for anything else (bool, str, NaN, inf, None)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def district_summaries(readings: Sequence[LatestReading]) -> list[DistrictLatest]:
    """Per kind and district: how many devices, and mean / min / max of each numeric field."""
    groups: dict[tuple[str, str, str], list[LatestReading]] = {}
    for reading in readings:
        groups.setdefault((reading.kind, reading.city, reading.district), []).append(reading)
    out = []
    for (kind, city, district), members in sorted(groups.items()):
        numbers: dict[str, list[float]] = {}
        for reading in members:
            for name, value in reading.fields.items():
                number = finite_number(value)
                if number is not None:
                    numbers.setdefault(name, []).append(number)
        summaries = {name: FieldSummary(mean=math.fsum(vals) / len(vals), min=min(vals),
                                        max=max(vals), devices=len(vals))
                     for name, vals in sorted(numbers.items())}
        times = [r.time for r in members]
        out.append(DistrictLatest(kind=kind, city=city, district=district, devices=len(members),
                                  newest=max(times), oldest=min(times), fields=summaries))
    return out
