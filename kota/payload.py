"""Device payloads (docs/protocol.md) to line protocol: pure functions, no I/O.

``MessageParser.parse(topic, payload, received_ms)`` turns one MQTT message into InfluxDB lines
and, for anything it cannot accept, ``Rejection`` records with a machine-readable reason. One bad
element of a batch rejects that element only.

It composes three steps, each its own module:

1. **decode** — the device format (kota/formats/<format>/) turns topic and payload into readings;
2. **validate** — kota/kinds/validation.py checks each reading against its kind's ``kind.yaml``;
3. **encode** — kota/lineproto.py writes the valid reading as one line.

Between them the parser adds only what needs the registry or its own state: the device's tags
and parameters (cached per topic) and receive-time timestamps that never repeat per series.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from kota.formats import DEFAULT_FORMAT, FORMATS, REASONS, Refusal, Source
from kota.kinds import KINDS
from kota.kinds.validation import KindRules, Valid, validate
from kota.lineproto import encode_line, series_key
from kota.registry import Registry

__all__ = ["REASONS", "MessageParser", "ParseRules", "Parsed", "Rejection"]

# A refused message or element, as recorded in Parsed.rejections (reason, detail, index).
Rejection = Refusal


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
class Parsed:
    lines: list[str] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    kind: str = ""
    device_id: str = ""


@dataclass(frozen=True, slots=True)
class _Route:
    """What a topic means once: its kind's rules, the device's tags and parameters."""

    rules: KindRules
    kind: str
    device_id: str
    tags: dict[str, str]
    params: dict[str, object]
    series: str  # for readings without tag-valued keys


class MessageParser:
    """Parses messages against the kinds and a registry. Caches one route per topic.

    ``device_format`` names the decoder in ``kota.formats.FORMATS`` (default: Kota JSON).
    """

    def __init__(self, registry: Registry | None = None, rules: ParseRules | None = None,
                 device_format: str = DEFAULT_FORMAT) -> None:
        self.registry = registry or Registry()
        self.rules = rules or ParseRules()
        self.format = FORMATS[device_format](self.rules)
        self._max_payload_bytes = self.rules.max_payload_bytes
        self._kinds = {name: KindRules.of(kind, self.rules.unknown_fields,
                                          self.rules.max_future_s, self.rules.min_timestamp_s)
                       for name, kind in KINDS.items()}
        self._routes: dict[str, _Route | Refusal] = {}
        # Last receive-time timestamp given per series: readings without ts that arrive in
        # the same millisecond (a backlog in one TCP read, an array) must not share a point.
        self._last_receive_ms: dict[str, int] = {}

    def parse(self, topic: str, payload: bytes, received_ms: int) -> Parsed:
        result = Parsed()
        route = self._routes.get(topic) or self._route(topic)
        if isinstance(route, Refusal):
            result.rejections.append(Rejection(route.reason, route.detail))
            return result
        result.kind, result.device_id = route.kind, route.device_id
        if len(payload) > self._max_payload_bytes:
            result.rejections.append(Rejection("oversized", f"{len(payload)} bytes > "
                                               f"max_payload_bytes {self.rules.max_payload_bytes}"))
            return result
        readings = self.format.readings(payload)
        if isinstance(readings, Refusal):
            result.rejections.append(readings)
            return result
        for reading in readings:
            if isinstance(reading, Refusal):
                result.rejections.append(reading)
                continue
            valid = validate(route.rules, reading, route.params, received_ms)
            if isinstance(valid, Refusal):
                result.rejections.append(valid)
                continue
            values, tags = valid
            ts_ms = reading[1]
            if tags is None and ts_ms is not None:  # the fast path
                result.lines.append(encode_line(route.series, values, ts_ms))
            else:
                result.lines.append(self._encode(route, ts_ms, valid, received_ms))
        return result

    # -- topic -------------------------------------------------------------------------------
    def _route(self, topic: str) -> _Route | Refusal:
        """A topic's route, made and cached on its first message (parse looks up the cache)."""
        source = self.format.source(topic)
        route = source if isinstance(source, Refusal) else self._make_route(source)
        if len(self._routes) > 200_000:  # bound memory against topic floods
            self._routes.clear()
        self._routes[topic] = route
        return route

    def _make_route(self, source: Source) -> _Route | Refusal:
        city, kind, device_id = source.city, source.kind, source.device_id
        rules = self._kinds.get(kind)
        if rules is None:  # a format that does not know the kinds itself
            return Refusal("unknown_kind", f"kind {kind!r} is not one of {', '.join(KINDS)}")
        device = self.registry.get(device_id)
        if device is None:
            if self.rules.strict_registry:
                return Refusal("unknown_device",
                               f"device {device_id!r} is not in the registry (strict_registry)")
            tags = {"city": city, "district": "unregistered", "kind": kind, "device": device_id}
            params: dict[str, object] = {}
        else:
            if device.kind != kind or device.city != city:
                return Refusal("registry_mismatch",
                               f"registry has {device_id!r} as kind {device.kind!r} in city "
                               f"{device.city!r}, topic says {kind!r} in {city!r}")
            tags = device.tags()
            params = dict(device.params)
        return _Route(rules, kind, device_id, tags, params,
                      series_key(rules.kind.spec.measurement, tags.items()))

    # -- encode ------------------------------------------------------------------------------
    def _encode(self, route: _Route, timestamp_ms: int | None, valid: Valid,
                received_ms: int) -> str:
        values, tags = valid
        series = route.series
        if tags:
            series = series_key(route.rules.kind.spec.measurement,
                                [*route.tags.items(), *tags.items()])
        if timestamp_ms is None:
            values["ts_from_receive"] = True
            timestamp_ms = self._receive_time(series, received_ms)
        return encode_line(series, values, timestamp_ms)

    def _receive_time(self, series: str, received_ms: int) -> int:
        """The receive time, moved past the last one given to ``series`` if need be."""
        last_ms = self._last_receive_ms.get(series)
        timestamp_ms = received_ms if last_ms is None or received_ms > last_ms else last_ms + 1
        if len(self._last_receive_ms) > 100_000:  # bounded; a cleared entry only matters
            self._last_receive_ms.clear()  # for two readings in one millisecond
        self._last_receive_ms[series] = timestamp_ms
        return timestamp_ms
