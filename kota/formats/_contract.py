"""What every device format gives ingest: the decode step's types and reason codes.

A format turns one MQTT message into a :class:`Source` (who sent it, from the topic) and a list of
:class:`Reading` (the raw field values of one element, its time and sequence number), or into a
:class:`Refusal` with a reason code from :data:`REASONS`. It knows nothing of kinds' ranges or of
line protocol: kota/kinds/validation.py checks readings, kota/lineproto.py encodes them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Protocol

__all__ = ["REASONS", "DecodeRules", "Decoded", "DeviceFormat", "Reading", "Refusal", "Source"]

# Every reason a message or element can be refused for; dashboards and metrics use these codes.
# A format refuses with these codes only, so the dead-letter summaries mean the same everywhere.
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


@dataclass(slots=True)
class Refusal:
    """Why a message (``index`` None) or one element of a batch (``index``) was not accepted."""

    reason: str
    detail: str
    index: int | None = None  # element of an array payload, when the payload was an array


@dataclass(frozen=True, slots=True)
class Source:
    """Who sent a message, as its topic says."""

    city: str
    kind: str
    device_id: str


# One element of a message, decoded but not yet checked against its kind:
# (fields, ts_ms, seq, index). ``fields`` maps payload keys to JSON values (None: not read this
# time); ``ts_ms`` is the device's time in epoch milliseconds, None when it sent none; ``seq``
# its sequence number or None; ``index`` the element's position in a batch, None for a single
# object. A plain tuple: the hot path makes one per reading, and a class costs a tenth more.
Reading = tuple[dict[str, object], int | None, int | None, int | None]


@dataclass(slots=True)
class Decoded:
    source: Source
    readings: list[Reading | Refusal]


class DecodeRules(Protocol):
    """The limits a decoder is given (``kota.payload.ParseRules`` has them)."""

    @property
    def topic_prefix(self) -> str: ...

    @property
    def max_batch_items(self) -> int: ...


class DeviceFormat(ABC):
    """One device format. The parser caches :meth:`source` per topic and calls
    :meth:`readings` per message; :meth:`decode` is the two together."""

    name: str = ""

    def __init__(self, rules: DecodeRules) -> None:
        self.rules = rules

    @abstractmethod
    def source(self, topic: str) -> Source | Refusal:
        """Who sent a message on ``topic``, or why the topic is refused."""

    @abstractmethod
    def readings(self, payload: bytes) -> list[Reading | Refusal] | Refusal:
        """The readings of one payload (one per element), or why the whole payload is refused."""

    def decode(self, topic: str, payload: bytes) -> Decoded | Refusal:
        source = self.source(topic)
        if isinstance(source, Refusal):
            return source
        readings = self.readings(payload)
        if isinstance(readings, Refusal):
            return readings
        return Decoded(source, readings)
