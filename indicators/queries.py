"""InfluxQL for the indicator service and the API, and the shapes the answers are turned into.

The one place statements are built: quoting, time ranges, conditions, GROUP BY, and the window
lengths (``HOUR_MS`` …, from indicators.windows). api/services builds its queries from these too.

Every identifier goes through ``quote_ident`` and every string through ``quote_literal``; times
are integers (nanoseconds) formatted by us, so no setting, tag or device id can change a
statement. The builders are pure (tested without InfluxDB); the service runs them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from indicators.outputs import output
from indicators.windows import DAY_MS, HOUR_MS, MINUTE_MS
from kota.indices.ispu import ispu_parameters
from kota.influx import quote_ident, quote_literal

__all__ = [
    "AIR_PARAMETERS",
    "DAY_MS",
    "HOUR_MS",
    "MINUTE_MS",
    "DeviceKey",
    "Sample",
    "aggregate_query",
    "at",
    "delete_window_query",
    "eq",
    "group_by",
    "hourly_aggregate_query",
    "ispu_ranks_query",
    "last_run_query",
    "quote_ident",
    "quote_literal",
    "raw_query",
    "recent",
    "rows_by_device",
    "rows_by_tags",
    "time_range",
    "where",
]

AIR_PARAMETERS = ispu_parameters()  # the air fields an ISPU is computed from
DEVICE_TAGS = ("city", "district", "device")
AGGREGATES = frozenset({"mean", "sum", "count", "max", "min", "last"})


@dataclass(frozen=True, order=True)
class DeviceKey:
    city: str
    district: str
    device: str


Sample = tuple[int, dict[str, Any]]  # (time ms, column -> value)


def time_range(start_ms: int, end_ms: int) -> str:
    """``time >= start AND time < end`` (ms in, integer ns out)."""
    start_ns, end_ns = int(start_ms) * 1_000_000, int(end_ms) * 1_000_000
    return f"time >= {start_ns} AND time < {end_ns}"


def at(time_ms: int) -> str:
    """``time = t``: one window's points (they carry the window start)."""
    return f"time = {int(time_ms) * 1_000_000}"


def recent(seconds: int) -> str:
    """``time > now() - Ns``."""
    return f"time > now() - {int(seconds)}s"


def eq(tag: str, value: str) -> str:
    """``"tag" = 'value'``, both quoted."""
    return f"{quote_ident(tag)} = {quote_literal(value)}"


def where(*parts: str) -> str:
    """Conditions joined with AND (empty ones left out); each built by the helpers here."""
    return " AND ".join(part for part in parts if part)


def group_by(tags: Iterable[str]) -> str:
    return ", ".join(quote_ident(tag) for tag in tags)


def _where(start_ms: int, end_ms: int, city: str | None,
           equals: Sequence[tuple[str, str]] = (), conditions: Sequence[str] = ()) -> str:
    parts = [time_range(start_ms, end_ms)]
    if city is not None:
        parts.append(eq("city", city))
    parts += [eq(tag, value) for tag, value in equals]
    return where(*parts, *conditions)


_group = group_by


def _selections(aggregates: Sequence[tuple[str, str, str]]) -> str:
    """``fn(field) AS alias, ...`` for (function, field, alias); functions from a fixed set."""
    selections = []
    for function, field, alias in aggregates:
        if function not in AGGREGATES:
            raise ValueError(f"aggregate {function!r} not allowed")
        selections.append(f"{function}({quote_ident(field)}) AS {quote_ident(alias)}")
    return ", ".join(selections)


def hourly_aggregate_query(measurement: str, aggregates: Sequence[tuple[str, str, str]],
                           start_ms: int, end_ms: int, city: str | None,
                           tags: Sequence[str] = DEVICE_TAGS, bucket: str = "1h",
                           equals: Sequence[tuple[str, str]] = (),
                           conditions: Sequence[str] = ()) -> str:
    """``SELECT fn(field) AS alias, ... GROUP BY time(bucket), tags fill(none)``.

    ``aggregates`` are (function, field, alias); the function must be one of a fixed set.
    ``conditions``: more WHERE parts, built with ``eq`` and the like.
    """
    if bucket not in {"1m", "1h", "1d"} and not (bucket.endswith("s") and bucket[:-1].isdigit()):
        raise ValueError(f"bucket {bucket!r} is not a duration we use")
    return (f"SELECT {_selections(aggregates)} FROM {quote_ident(measurement)} "
            f"WHERE {_where(start_ms, end_ms, city, equals, conditions)} "
            f"GROUP BY time({bucket}), {_group(tags)} fill(none)")


def aggregate_query(measurement: str, aggregates: Sequence[tuple[str, str, str]],
                    start_ms: int, end_ms: int, city: str | None,
                    tags: Sequence[str]) -> str:
    """Aggregates over the whole range per tag set (no time buckets)."""
    return (f"SELECT {_selections(aggregates)} FROM {quote_ident(measurement)} "
            f"WHERE {_where(start_ms, end_ms, city)} GROUP BY {_group(tags)}")


def raw_query(measurement: str, fields: Sequence[str], start_ms: int, end_ms: int,
              city: str | None, tags: Sequence[str] = DEVICE_TAGS,
              equals: Sequence[tuple[str, str]] = ()) -> str:
    """The raw values of ``fields`` per tag set, oldest first."""
    columns = ", ".join(quote_ident(field) for field in fields)
    return (f"SELECT {columns} FROM {quote_ident(measurement)} "
            f"WHERE {_where(start_ms, end_ms, city, equals)} GROUP BY {_group(tags)}")


def last_run_query(runs_measurement: str, window: str) -> str:
    """The latest run point of a window length: its time is the watermark's window start."""
    return (f"SELECT last({quote_ident('points')}) FROM {quote_ident(runs_measurement)} "
            f"WHERE {quote_ident('window')} = {quote_literal(window)}")


def ispu_ranks_query(start_ms: int, end_ms: int) -> str:
    """Category ranks of the complete hourly district and city ISPU points in a range."""
    scope = quote_ident("scope")
    return (f"SELECT {quote_ident('category_rank')} FROM {quote_ident(output('ispu').measurement)} "
            f"WHERE {time_range(start_ms, end_ms)} AND {quote_ident('window')} = "
            f"{quote_literal('1h')} AND {quote_ident('complete')} = true AND "
            f"({scope} = {quote_literal('district')} OR {scope} = {quote_literal('city')}) "
            f"GROUP BY {_group(('city', 'district'))}")


def delete_window_query(measurements: Sequence[str], window: str, start_ms: int) -> str:
    """Delete one window's points from the given measurements (names checked: [a-z_] only)."""
    if not measurements or not all(m.replace("_", "").isalpha() and m.islower()
                                   for m in measurements):
        raise ValueError("measurement names must be lower-case letters and underscores")
    at_ns = int(start_ms) * 1_000_000
    return (f"DELETE FROM /^({'|'.join(measurements)})$/ WHERE {quote_ident('window')} = "
            f"{quote_literal(window)} AND time >= {at_ns} AND time <= {at_ns}")


def rows_by_device(series: list[dict[str, Any]]) -> dict[DeviceKey, list[Sample]]:
    """InfluxDB series grouped by city/district/device -> [(time ms, {column: value})]."""
    result: dict[DeviceKey, list[Sample]] = defaultdict(list)
    for one in series:
        tags = one.get("tags") or {}
        key = DeviceKey(tags.get("city", ""), tags.get("district", ""), tags.get("device", ""))
        columns = one["columns"]
        for values in one.get("values", []):
            result[key].append((int(values[0]), dict(zip(columns[1:], values[1:], strict=True))))
    return dict(result)


def rows_by_tags(series: list[dict[str, Any]]) -> list[tuple[dict[str, str], list[Sample]]]:
    """Series as (tags, [(time ms, {column: value})])."""
    out = []
    for one in series:
        columns = one["columns"]
        samples = [(int(values[0]), dict(zip(columns[1:], values[1:], strict=True)))
                   for values in one.get("values", [])]
        out.append((dict(one.get("tags") or {}), samples))
    return out

