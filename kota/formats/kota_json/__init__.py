"""The Kota JSON format: ``kota/{city}/{kind}/{device_id}`` topics, JSON object or array payloads.

See README.md beside this file; tests/kota/test_formats.py decodes ``sample.topic`` and
``sample.json``.
"""

from __future__ import annotations

import math
import re
from datetime import datetime

import orjson

from kota.formats._contract import DeviceFormat, Reading, Refusal, Source
from kota.kinds import KINDS
from kota.registry import CITY_PATTERN, DEVICE_ID_PATTERN

__all__ = ["KotaJson"]

_DEVICE_RE = re.compile(DEVICE_ID_PATTERN)
_CITY_RE = re.compile(CITY_PATTERN)
_MS_THRESHOLD = 100_000_000_000  # 1e11: as seconds, year 5138; as milliseconds, 1973
_INFINITY = math.inf


class _Refused(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.refusal = Refusal(reason, detail)


class KotaJson(DeviceFormat):
    name = "kota_json"

    def source(self, topic: str) -> Source | Refusal:
        prefix = self.rules.topic_prefix
        parts = topic.split("/")
        if len(parts) != 4 or parts[0] != prefix:
            return Refusal("bad_topic", f"topic {topic!r} is not "
                           f"{prefix}/{{city}}/{{kind}}/{{device_id}}")
        _, city, kind, device_id = parts
        if not _CITY_RE.fullmatch(city):
            return Refusal("bad_topic", f"city {city!r} in topic must match {CITY_PATTERN}")
        if kind not in KINDS:
            return Refusal("unknown_kind", f"kind {kind!r} is not one of {', '.join(KINDS)}")
        if not _DEVICE_RE.fullmatch(device_id):
            return Refusal("bad_topic", f"device id {device_id!r} must match {DEVICE_ID_PATTERN}")
        return Source(city, kind, device_id)

    def readings(self, payload: bytes) -> list[Reading | Refusal] | Refusal:
        try:
            document = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            return Refusal("not_json", f"not JSON: {exc}")
        if type(document) is dict:
            return [reading(document, None)]
        if isinstance(document, list) and document:
            limit = self.rules.max_batch_items
            if len(document) > limit:
                return Refusal("batch_too_large",
                               f"{len(document)} elements > max_batch_items {limit}")
            return [reading(element, index) for index, element in enumerate(document)]
        return Refusal("not_object", "expected a JSON object or a non-empty array of objects, "
                       f"got {type(document).__name__}")


def reading(element: object, index: int | None) -> Reading | Refusal:
    """One element: ``ts`` and ``seq`` taken out and checked, the other keys left as fields."""
    if type(element) is not dict:
        return Refusal("not_object", f"element is {type(element).__name__}, not an object",
                       index)
    ts = element.pop("ts", None)
    seq = element.pop("seq", None)
    try:
        return (element, ts if ts is None else timestamp_ms(ts),
                seq if seq is None else sequence(seq), index)
    except _Refused as exc:
        exc.refusal.index = index
        return exc.refusal


def sequence(value: object) -> int:
    if type(value) is not int or value < 0:
        raise _Refused("bad_seq", f"seq {value!r} is not a non-negative integer")
    return value


def timestamp_ms(value: object) -> int:
    """Epoch seconds, epoch milliseconds (≥ 1e11) or RFC 3339 with a zone, as epoch ms."""
    kind = type(value)
    if kind is int:
        if value < 0:  # type: ignore[operator]
            raise _Refused("bad_timestamp", f"ts {value!r} is not a valid epoch time")
        return value if value >= _MS_THRESHOLD else value * 1000  # type: ignore
    if kind is float:
        if not 0 <= value < _INFINITY:  # type: ignore[operator]  # NaN fails too
            raise _Refused("bad_timestamp", f"ts {value!r} is not a valid epoch time")
        return int(value) if value >= _MS_THRESHOLD else round(value * 1000)  # type: ignore
    if kind is bool:
        raise _Refused("bad_timestamp", f"ts {value!r} is a boolean")
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise _Refused("bad_timestamp", f"ts {value!r} is not RFC 3339") from None
        if parsed.tzinfo is None:
            raise _Refused("bad_timestamp",
                           f"ts {value!r} has no time zone; add Z or an offset like +07:00")
        return round(parsed.timestamp() * 1000)
    raise _Refused("bad_timestamp", f"ts {value!r} is a {type(value).__name__}")
