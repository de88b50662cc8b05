"""Latest readings and history from the raw measurements that ``kota ingest`` writes.

Statements are built only from validated values: identifiers through ``quote_ident``, strings
through ``quote_literal``, times as integers we format, intervals and aggregates from fixed sets.
"""

from __future__ import annotations

import asyncio
import csv
import io
import math
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

import orjson

from api.schemas import (
    DistrictLatest,
    FieldSummary,
    HistoryResponse,
    LatestReading,
)
from indicators.queries import eq, group_by, recent, where
from kota.influx import InfluxClient, quote_ident
from kota.kinds import KINDS
from kota.registry import Registry

__all__ = ["CSV_COLUMNS", "Filters", "ReadingsService", "district_summaries", "finite_number",
           "latest_query"]

TAG_COLUMNS = ("city", "district", "kelurahan", "kind", "device")
CHUNK_ROWS = 5000  # rows per chunk of a streamed history query
# The CSV history's first columns; then one per field. time_wib: Jakarta's clock (UTC+7).
CSV_COLUMNS = ("time_utc", "time_wib", "device", "district", "city")
WIB = ZoneInfo("Asia/Jakarta")
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

    def series_bound(self, kind: str, filters: Filters, max_series: int) -> int:
        """How many series a history request can return, at most, for the size estimate: one
        with a device filter; else the registry's matching devices (devices missing from it
        may add series, which the streamed answer's total cap still bounds); ``max_series``
        without a registry."""
        if filters.device is not None:
            return 1
        if not len(self.registry):
            return max_series
        matching = sum(1 for d in self.registry
                       if d.kind == kind and filters.city in (None, d.city)
                       and filters.district in (None, d.district))
        return max(1, min(max_series, matching))

    async def history(self, kind: str, fields: Sequence[str], filters: Filters,
                      start: datetime, end: datetime, interval: str | None,
                      aggregate: str | None, limit: int, max_series: int, max_total: int,
                      timeout_s: float | None = None,
                      media: Literal["json", "csv"] = "json") -> AsyncIterator[bytes]:
        """The history answer as JSON bytes, produced a series at a time from a chunked query
        (memory: one chunk and one series, whatever the answer's size); or as CSV
        (``media``), a chunk at a time (:data:`CSV_COLUMNS`, then the fields).

        The query is started, and its first chunk read, before this returns: a database that
        is away, slow or refusing raises here, while the caller can still answer a problem.
        Points beyond ``limit`` per series or ``max_total`` in all set ``truncated``."""
        measurement = KINDS[kind].spec.measurement
        # One more than asked, to tell the caller whether a series was cut.
        query = history_query(measurement, fields, filters, start, end, interval, aggregate,
                              limit + 1, max_series)
        chunks = self.influx.query_chunks(query, chunk_size=CHUNK_ROWS, timeout_s=timeout_s)
        try:
            first = await anext(chunks, None)
        except BaseException:
            await chunks.aclose()
            raise
        if media == "csv":
            return self._csv_body(first, chunks, list(fields), limit, max_total)
        head = HistoryResponse(kind=kind, fields=list(fields), start=start, end=end,
                               interval=interval, aggregate=aggregate if interval else None,
                               truncated=False, series=[]).model_dump(mode="json")
        del head["series"], head["truncated"]
        return self._history_body(head, first, chunks, list(fields), limit, max_total)

    async def _history_body(self, head: dict[str, Any], first: list[dict[str, Any]] | None,
                            chunks: AsyncGenerator[list[dict[str, Any]], None], fields: list[str],
                            limit: int, max_total: int) -> AsyncIterator[bytes]:
        # {"kind": ..., "series": [...], "truncated": ...}: truncated comes last, once known.
        yield orjson.dumps(head)[:-1] + b',"series":['
        truncated = False
        total = 0
        written = 0
        current: _SeriesBuffer | None = None
        try:
            pending = first
            while pending is not None:
                for series in pending:
                    device_id = str((series.get("tags") or {}).get("device", ""))
                    if current is None or current.device != device_id:
                        if current is not None:
                            yield await _encoded(current, written)
                            written += 1
                        device = self.registry.get(device_id)
                        current = _SeriesBuffer(device_id, device.district if device else "",
                                                device.city if device else "", fields)
                    rows = series.get("values") or []
                    room = min(limit - len(current.times), max_total - total)
                    if len(rows) > room:
                        truncated = True
                        rows = rows[:max(room, 0)]
                    current.add(series["columns"], rows)
                    total += len(rows)
                if total >= max_total:
                    truncated = truncated or await anext(chunks, None) is not None
                    break
                pending = await anext(chunks, None)
            if current is not None:
                yield await _encoded(current, written)
        finally:
            await chunks.aclose()
        yield b'],"truncated":' + (b"true" if truncated else b"false") + b"}"


    async def _csv_body(self, first: list[dict[str, Any]] | None,
                        chunks: AsyncGenerator[list[dict[str, Any]], None], fields: list[str],
                        limit: int, max_total: int) -> AsyncIterator[bytes]:
        """One row per point; the same caps as the JSON answer (a CSV has no place for
        ``truncated``: the limits are documented instead)."""
        yield _csv_line([*CSV_COLUMNS, *fields])
        total = 0
        per_device: dict[str, int] = {}
        try:
            pending = first
            while pending is not None and total < max_total:
                out = io.StringIO()
                writer = csv.writer(out, lineterminator="\r\n")
                for series in pending:
                    device_id = str((series.get("tags") or {}).get("device", ""))
                    device = self.registry.get(device_id)
                    columns = series["columns"]
                    index = [columns.index(f) if f in columns else None for f in fields]
                    rows = series.get("values") or []
                    room = min(limit - per_device.get(device_id, 0), max_total - total)
                    rows = rows[:max(room, 0)]
                    per_device[device_id] = per_device.get(device_id, 0) + len(rows)
                    total += len(rows)
                    for row in rows:
                        moment = ms_to_datetime(int(row[0]))
                        values = [finite_number(row[at]) if at is not None else None
                                  for at in index]
                        writer.writerow([
                            moment.isoformat().replace("+00:00", "Z"),
                            moment.astimezone(WIB).strftime("%Y-%m-%d %H:%M:%S"), device_id,
                            device.district if device else "", device.city if device else "",
                            *("" if v is None else repr(v) for v in values)])
                yield out.getvalue().encode()
                pending = await anext(chunks, None)
        finally:
            await chunks.aclose()


def _csv_line(cells: Sequence[str]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(cells)
    return out.getvalue().encode()


class _SeriesBuffer:
    """One device's rows, column-wise, while its chunks arrive."""

    def __init__(self, device: str, district: str, city: str, fields: list[str]) -> None:
        self.device = device
        self.district = district
        self.city = city
        self.fields = fields
        self.times: list[int] = []
        self.values: dict[str, list[float | None]] = {name: [] for name in fields}

    def add(self, columns: list[str], rows: list[list[Any]]) -> None:
        index = {name: columns.index(name) for name in self.fields if name in columns}
        self.times.extend(int(row[0]) for row in rows)
        for name in self.fields:
            at = index.get(name)
            self.values[name].extend(finite_number(row[at]) if at is not None else None
                                     for row in rows)


async def _encoded(series: _SeriesBuffer, position: int) -> bytes:
    document = {"device": series.device, "district": series.district, "city": series.city,
                "times_ms": series.times, "values": series.values}
    # A long series is encoded in a worker thread: the event loop keeps serving others.
    data = (await asyncio.to_thread(orjson.dumps, document) if len(series.times) > CHUNK_ROWS
            else orjson.dumps(document))
    return data if position == 0 else b"," + data


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
