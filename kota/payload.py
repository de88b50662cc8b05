"""Device payloads (docs/protocol.md) to line protocol: pure functions, no I/O.

``MessageParser.parse(topic, payload, received_ms)`` turns one MQTT message into InfluxDB lines
and, for anything it cannot accept, ``Rejection`` records with a machine-readable reason. One bad
element of a batch rejects that element only.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import orjson

from kota.kinds import KINDS, Derive, Kind, TagFieldSpec
from kota.lineproto import (
    LineProtocolError,
    escape_key,
    escape_string_field,
    format_field_value,
    series_key,
    split_lines,
)
from kota.registry import CITY_PATTERN, DEVICE_ID_PATTERN, Device, Registry

__all__ = ["REASONS", "MessageParser", "ParseRules", "Parsed", "Rejection"]

# Every reason a message or element can be refused for; dashboards and metrics use these codes.
REASONS: dict[str, str] = {
    "bad_topic": "topic is not kota/{city}/{kind}/{device_id}",
    "unknown_kind": "the topic's kind is not one of the declared kinds",
    "oversized": "payload larger than max_payload_bytes",
    "not_json": "payload is not UTF-8 JSON",
    "not_object": "payload is neither a JSON object nor an array of objects",
    "batch_too_large": "array payload with more than max_batch_items elements",
    "unknown_device": "device not in the registry and strict_registry is on",
    "registry_mismatch": "the registry has this device under another kind or city",
    "unknown_field": "a key that is not a field of the kind",
    "wrong_type": "a field value of the wrong JSON type",
    "out_of_range": "a value outside the kind's plausible range",
    "no_fields": "no measured value in the element",
    "bad_timestamp": "ts is not epoch seconds, epoch milliseconds or RFC 3339 with a zone",
    "timestamp_future": "ts further in the future than max_future_s",
    "timestamp_too_old": "ts before min_timestamp (device clock not set?)",
    "bad_seq": "seq is not a non-negative integer",
    "bad_tag": "a tag-valued key (e.g. event) missing or not an accepted value",
}

_DEVICE_RE = re.compile(DEVICE_ID_PATTERN)
_CITY_RE = re.compile(CITY_PATTERN)
_MS_THRESHOLD = 100_000_000_000  # 1e11: as seconds, year 5138; as milliseconds, 1973
_RESERVED_KEYS = frozenset({"ts", "seq"})


@dataclass(frozen=True, slots=True)
class ParseRules:
    max_payload_bytes: int = 262_144
    max_batch_items: int = 1_000
    max_future_s: float = 300.0
    min_timestamp_s: float = 1_577_836_800.0  # 2020-01-01T00:00:00Z
    strict_registry: bool = False
    unknown_fields: Literal["reject", "ignore"] = "reject"
    topic_prefix: str = "kota"


@dataclass(slots=True)
class Rejection:
    reason: str
    detail: str
    index: int | None = None  # element of an array payload, when the payload was an array


@dataclass(slots=True)
class Parsed:
    lines: list[str] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    kind: str = ""
    device_id: str = ""


FieldCheck = tuple[str, str, float, float, int]  # escaped key, type, min, max, max length


@dataclass(frozen=True, slots=True)
class _KindTable:
    """A kind's contract prepared for the hot path."""

    name: str
    measurement: str
    fields: dict[str, FieldCheck]
    tags: dict[str, TagFieldSpec]
    required_tags: tuple[str, ...]
    defaults: tuple[tuple[str, str], ...]  # (field, formatted "key=value")
    derive: Derive | None

    @classmethod
    def of(cls, kind: Kind) -> _KindTable:
        spec = kind.spec
        fields: dict[str, FieldCheck] = {
            name: (escape_key(name, "field key"), field.type,
                   -math.inf if field.min is None else field.min,
                   math.inf if field.max is None else field.max, field.max_length)
            for name, field in spec.fields.items()
        }
        defaults = tuple((name, f"{escape_key(name, 'field key')}={format_field_value(value)}")
                         for name, value in spec.defaults.items())
        return cls(spec.name, spec.measurement, fields, dict(spec.tags),
                   tuple(name for name, tag in spec.tags.items() if tag.required), defaults,
                   kind.derive)


_TABLES = {name: _KindTable.of(kind) for name, kind in KINDS.items()}


@dataclass(frozen=True, slots=True)
class _Route:
    kind: Kind
    table: _KindTable
    city: str
    device_id: str
    tags: dict[str, str]
    params: dict[str, object]
    series: str  # for kinds without tag-valued keys


class _Reject(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class MessageParser:
    """Parses messages against the kinds and a registry. Caches one route per topic."""

    def __init__(self, registry: Registry | None = None, rules: ParseRules | None = None) -> None:
        self.registry = registry or Registry()
        self.rules = rules or ParseRules()
        self._routes: dict[str, _Route | _Reject] = {}
        # Last receive-time timestamp given per series: readings without ts that arrive in
        # the same millisecond (a backlog in one TCP read, an array) must not share a point.
        self._last_receive_ms: dict[str, int] = {}

    def set_registry(self, registry: Registry) -> None:
        self.registry = registry
        self._routes.clear()

    # -- topic -------------------------------------------------------------------------------
    def _route(self, topic: str) -> _Route:
        cached = self._routes.get(topic)
        if cached is None:
            try:
                cached = self._make_route(topic)
            except _Reject as exc:
                cached = exc
            if len(self._routes) > 200_000:  # bound memory against topic floods
                self._routes.clear()
            self._routes[topic] = cached
        if isinstance(cached, _Reject):
            # Drop the previous raise's traceback, or it grows (and pins frames) on every reuse.
            raise cached.with_traceback(None)
        return cached

    def _make_route(self, topic: str) -> _Route:
        parts = topic.split("/")
        if len(parts) != 4 or parts[0] != self.rules.topic_prefix:
            raise _Reject("bad_topic", f"topic {topic!r} is not "
                          f"{self.rules.topic_prefix}/{{city}}/{{kind}}/{{device_id}}")
        _, city, kind_name, device_id = parts
        if not _CITY_RE.fullmatch(city):
            raise _Reject("bad_topic", f"city {city!r} in topic must match {CITY_PATTERN}")
        kind = KINDS.get(kind_name)
        if kind is None:
            raise _Reject("unknown_kind", f"kind {kind_name!r} is not one of {', '.join(KINDS)}")
        if not _DEVICE_RE.fullmatch(device_id):
            raise _Reject("bad_topic", f"device id {device_id!r} must match {DEVICE_ID_PATTERN}")
        device: Device | None = self.registry.get(device_id)
        if device is None:
            if self.rules.strict_registry:
                raise _Reject("unknown_device",
                              f"device {device_id!r} is not in the registry (strict_registry)")
            tags = {"city": city, "district": "unregistered", "kind": kind_name,
                    "device": device_id}
            params: dict[str, object] = {}
        else:
            if device.kind != kind_name or device.city != city:
                raise _Reject("registry_mismatch",
                              f"registry has {device_id!r} as kind {device.kind!r} in city "
                              f"{device.city!r}, topic says {kind_name!r} in {city!r}")
            tags = device.tags()
            params = dict(device.params)
        return _Route(kind, _TABLES[kind_name], city, device_id, tags, params,
                      series_key(kind.spec.measurement, tags.items()))

    # -- payload -----------------------------------------------------------------------------
    def parse(self, topic: str, payload: bytes, received_ms: int) -> Parsed:
        result = Parsed()
        try:
            route = self._route(topic)
            result.kind, result.device_id = route.table.name, route.device_id
            if len(payload) > self.rules.max_payload_bytes:
                raise _Reject("oversized", f"{len(payload)} bytes > max_payload_bytes "
                              f"{self.rules.max_payload_bytes}")
            try:
                document = orjson.loads(payload)
            except orjson.JSONDecodeError as exc:
                raise _Reject("not_json", f"not JSON: {exc}") from None
        except _Reject as exc:
            result.rejections.append(Rejection(exc.reason, exc.detail))
            return result
        if isinstance(document, dict):
            self._element(route, document, received_ms, None, result)
        elif isinstance(document, list) and document:
            if len(document) > self.rules.max_batch_items:
                result.rejections.append(Rejection(
                    "batch_too_large",
                    f"{len(document)} elements > max_batch_items {self.rules.max_batch_items}"))
                return result
            for index, element in enumerate(document):
                self._element(route, element, received_ms, index, result)
        else:
            result.rejections.append(Rejection(
                "not_object", f"expected a JSON object or a non-empty array of objects, "
                f"got {type(document).__name__}"))
        return result

    def _element(self, route: _Route, element: object, received_ms: int, index: int | None,
                 result: Parsed) -> None:
        try:
            if not isinstance(element, dict):
                raise _Reject("not_object", f"element is {type(element).__name__}, not an object")
            result.lines.append(self._line(route, element, received_ms))
        except _Reject as exc:
            result.rejections.append(Rejection(exc.reason, exc.detail, index))

    def _line(self, route: _Route, element: dict[str, object], received_ms: int) -> str:
        # Hot path (tens of thousands of calls a second): exact type checks, fields formatted
        # as they are validated, per-kind tables prepared once in _KindTable.
        table = route.table
        checks = table.fields
        formatted: list[str] = []
        values: dict[str, object] | None = {} if table.derive is not None else None
        tag_values: dict[str, str] | None = None
        timestamp_ms = received_ms
        ts_from_receive = True
        for key, value in element.items():
            check = checks.get(key)
            if check is not None:
                if value is None:  # a sensor that could not read this time
                    continue
                escaped_key, field_type, low, high, max_length = check
                value_type = type(value)
                if field_type == "float":
                    if value_type is not float and value_type is not int:
                        raise _Reject("wrong_type", f"{key} {value!r} is a "
                                      f"{value_type.__name__}, expected a number")
                    if not low <= value <= high:  # type: ignore[operator]
                        shown = repr(value) if len(repr(value)) <= 24 else repr(value)[:24] + "…"
                        raise _Reject("out_of_range", f"{key} {shown} outside [{low:g}, {high:g}]")
                    number = float(value)  # type: ignore[arg-type]
                    formatted.append(f"{escaped_key}={number!r}")
                    if values is not None:
                        values[key] = number
                elif field_type == "bool":
                    if value_type is not bool:
                        raise _Reject("wrong_type", f"{key} {value!r} is not true/false")
                    formatted.append(f"{escaped_key}={'true' if value else 'false'}")
                else:
                    if value_type is not str:
                        raise _Reject("wrong_type", f"{key} {value!r} is not a string")
                    if len(value) > max_length:  # type: ignore[arg-type]
                        raise _Reject("out_of_range", f"{key} is {len(value)} "  # type: ignore[arg-type]
                                      f"characters > {max_length}")
                    formatted.append(f"{escaped_key}={escape_string_field(value)}")  # type: ignore[arg-type]
                continue
            if key == "ts":
                if value is not None:
                    timestamp_ms = self._timestamp_ms(value, received_ms)
                    ts_from_receive = False
                continue
            if key == "seq":
                if value is not None:
                    if type(value) is not int or value < 0:
                        raise _Reject("bad_seq", f"seq {value!r} is not a non-negative integer")
                    formatted.append(f"seq={float(value)!r}")
                continue
            tag_spec = table.tags.get(key)
            if tag_spec is not None:
                if not isinstance(value, str) or not (
                        value in tag_spec.values or (tag_spec.allow_other and value)):
                    raise _Reject("bad_tag", f"{key} {value!r} is not one of "
                                  f"{', '.join(tag_spec.values)}")
                if tag_values is None:
                    tag_values = {}
                tag_values[key] = value
                continue
            if value is not None and self.rules.unknown_fields == "reject":
                raise _Reject("unknown_field", f"{key!r} is not a field of kind {table.name!r} "
                              f"(fields: {', '.join(checks)})")
        for tag_name in table.required_tags:
            if tag_values is None or tag_name not in tag_values:
                raise _Reject("bad_tag", f"{tag_name!r} is required for kind {table.name!r}")
        if values is not None and table.derive is not None:
            known = set(values)
            table.derive(values, route.params)
            for key in values.keys() - known:
                escaped_key, _, low, high, _ = checks[key]
                derived = values[key]
                if not low <= derived <= high:  # type: ignore[operator]  # as plausible as sent
                    raise _Reject("out_of_range", f"derived {key} {derived!r} outside "
                                  f"[{low:g}, {high:g}]")
                formatted.append(f"{escaped_key}={format_field_value(derived)}")  # type: ignore[arg-type]
        measured = len(formatted) - ("seq" in element and element["seq"] is not None)
        if measured <= 0 and not tag_values:
            raise _Reject("no_fields", f"no field of kind {table.name!r} in the element "
                          f"(fields: {', '.join(checks)})")
        for name, default_text in table.defaults:
            if name not in element or element[name] is None:
                formatted.append(default_text)
        if ts_from_receive:
            formatted.append("ts_from_receive=true")
        series = route.series
        if tag_values:
            series = series_key(table.measurement, [*route.tags.items(), *tag_values.items()])
        if ts_from_receive:
            last_ms = self._last_receive_ms.get(series)
            if last_ms is not None and timestamp_ms <= last_ms:
                timestamp_ms = last_ms + 1
            if len(self._last_receive_ms) > 100_000:  # bounded; a cleared entry only matters
                self._last_receive_ms.clear()  # for two readings in one millisecond
            self._last_receive_ms[series] = timestamp_ms
        return f"{series} {','.join(formatted)} {timestamp_ms}"

    def _timestamp_ms(self, value: object, received_ms: int) -> int:
        if isinstance(value, bool):
            raise _Reject("bad_timestamp", f"ts {value!r} is a boolean")
        if isinstance(value, int | float):
            if not math.isfinite(value) or value < 0:
                raise _Reject("bad_timestamp", f"ts {value!r} is not a valid epoch time")
            timestamp_ms = int(value) if value >= _MS_THRESHOLD else round(value * 1000)
        elif isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                raise _Reject("bad_timestamp", f"ts {value!r} is not RFC 3339") from None
            if parsed.tzinfo is None:
                raise _Reject("bad_timestamp",
                              f"ts {value!r} has no time zone; add Z or an offset like +07:00")
            timestamp_ms = round(parsed.timestamp() * 1000)
        else:
            raise _Reject("bad_timestamp", f"ts {value!r} is a {type(value).__name__}")
        if timestamp_ms > received_ms + self.rules.max_future_s * 1000:
            raise _Reject("timestamp_future",
                          f"ts is {(timestamp_ms - received_ms) / 1000:.0f} s ahead of the "
                          f"receive time (max_future_s {self.rules.max_future_s:g})")
        if timestamp_ms < self.rules.min_timestamp_s * 1000:
            raise _Reject("timestamp_too_old", f"ts {value!r} is before min_timestamp; "
                          "is the device clock set?")
        return timestamp_ms


def check_line(line: str) -> None:
    """Raise LineProtocolError if a line cannot be sent (used by tests and the CLI)."""
    if len(split_lines(line)) != 1 or line != line.strip("\n"):
        raise LineProtocolError("line contains a newline outside a string field")
