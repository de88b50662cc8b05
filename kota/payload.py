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

from kota.kinds import KINDS, Kind
from kota.lineproto import LineProtocolError, escape_key, format_field_value, series_key
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


@dataclass(frozen=True, slots=True)
class _Route:
    kind: Kind
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
        return _Route(kind, city, device_id, tags, params,
                      series_key(kind.spec.measurement, tags.items()))

    # -- payload -----------------------------------------------------------------------------
    def parse(self, topic: str, payload: bytes, received_ms: int) -> Parsed:
        result = Parsed()
        try:
            route = self._route(topic)
            result.kind, result.device_id = route.kind.name, route.device_id
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
        spec = route.kind.spec
        fields: dict[str, object] = {}
        tag_values: dict[str, str] = {}
        timestamp_ms = received_ms
        ts_from_receive = True
        seq: int | None = None
        for key, value in element.items():
            if key == "ts":
                if value is not None:
                    timestamp_ms = self._timestamp_ms(value, received_ms)
                    ts_from_receive = False
                continue
            if key == "seq":
                if value is not None:
                    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                        raise _Reject("bad_seq", f"seq {value!r} is not a non-negative integer")
                    seq = value
                continue
            if value is None:  # a sensor that could not read this time
                continue
            field_spec = spec.fields.get(key)
            if field_spec is not None:
                fields[key] = _check_field(key, value, field_spec.type, field_spec.min,
                                           field_spec.max, field_spec.max_length)
                continue
            tag_spec = spec.tags.get(key)
            if tag_spec is not None:
                if not isinstance(value, str) or not (
                    value in tag_spec.values or (tag_spec.allow_other and value)):
                    raise _Reject("bad_tag", f"{key} {value!r} is not one of "
                                  f"{', '.join(tag_spec.values)}")
                tag_values[key] = value
                continue
            if self.rules.unknown_fields == "reject":
                raise _Reject("unknown_field", f"{key!r} is not a field of kind {spec.name!r} "
                              f"(fields: {', '.join(spec.fields)})")
        for tag_name, tag_spec in spec.tags.items():
            if tag_spec.required and tag_name not in tag_values:
                raise _Reject("bad_tag", f"{tag_name!r} is required for kind {spec.name!r}")
        if route.kind.derive is not None:
            given = set(fields)
            route.kind.derive(fields, route.params)
            for key in fields.keys() - given:  # a derived value must be as plausible as a sent one
                derived_spec = spec.fields.get(key)
                if derived_spec is not None:
                    _check_field(key, fields[key], derived_spec.type, derived_spec.min,
                                 derived_spec.max, derived_spec.max_length)
        if not fields and not (spec.tags and tag_values):
            raise _Reject("no_fields", f"no field of kind {spec.name!r} in the element "
                          f"(fields: {', '.join(spec.fields)})")
        for name, default in spec.defaults.items():
            fields.setdefault(name, default)
        if seq is not None:
            fields["seq"] = float(seq)
        if ts_from_receive:
            fields["ts_from_receive"] = True
        series = route.series
        if tag_values:
            series = series_key(spec.measurement, [*route.tags.items(), *tag_values.items()])
        field_text = ",".join(
            f"{escape_key(k, 'field key')}={format_field_value(v)}"  # type: ignore[arg-type]
            for k, v in fields.items())
        return f"{series} {field_text} {timestamp_ms}"

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


def _check_field(key: str, value: object, kind: str, low: float | None, high: float | None,
                 max_length: int) -> object:
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Reject("wrong_type", f"{key} {value!r} is a {type(value).__name__}, "
                          "expected a number")
        number = float(value)
        if not math.isfinite(number):
            raise _Reject("wrong_type", f"{key} {value!r} is not a finite number")
        if (low is not None and number < low) or (high is not None and number > high):
            raise _Reject("out_of_range", f"{key} {number:g} outside [{low:g}, {high:g}]"
                          if low is not None and high is not None
                          else f"{key} {number:g} out of range")
        return number
    if kind == "bool":
        if not isinstance(value, bool):
            raise _Reject("wrong_type", f"{key} {value!r} is not true/false")
        return value
    if not isinstance(value, str):
        raise _Reject("wrong_type", f"{key} {value!r} is not a string")
    if len(value) > max_length:
        raise _Reject("out_of_range", f"{key} is {len(value)} characters > {max_length}")
    return value


def check_line(line: str) -> None:
    """Raise LineProtocolError if a line cannot be sent (used by tests and the CLI)."""
    if "\n" in line:
        raise LineProtocolError("line contains a newline")
