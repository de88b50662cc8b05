"""The benchmark's messages: realistic payloads of three kinds, each a distinct point.

Pure functions, no I/O. Message ``i`` goes to kind ``KINDS[i % 3]``; within a kind, devices
take turns and each device's timestamps step by one millisecond, so (device, ts) never repeats
and every message becomes its own point in InfluxDB.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

import orjson

__all__ = ["CITY", "KINDS", "LIVE_CITY", "PROBE_CITY", "PROBE_EVERY", "BenchKind",
           "backlog_messages", "live_message", "point_count_field"]

CITY = "benchkota"
LIVE_CITY = "benchlive"  # apart from CITY so the floor's session does not queue live messages
# Every PROBE_EVERY-th device of the live phase reports under PROBE_CITY: latency is measured on
# those series only, because counting over all of them would load InfluxDB noticeably.
PROBE_CITY = "benchprobe"
PROBE_EVERY = 10
DEVICES_PER_KIND = 500


@dataclass(frozen=True)
class BenchKind:
    name: str  # kind and InfluxDB measurement
    count_field: str  # a field every benchmark point carries, for SELECT count(...)
    device_prefix: str

    def fields(self, rng: random.Random) -> dict[str, float]:
        if self.name == "air":
            return {"pm25": round(rng.uniform(5, 180), 1), "pm10": round(rng.uniform(10, 300), 1),
                    "co": round(rng.uniform(200, 4000), 0), "no2": round(rng.uniform(5, 200), 1),
                    "temperature": round(rng.uniform(24, 35), 2),
                    "humidity": round(rng.uniform(40, 95), 1)}
        if self.name == "water":
            return {"level_cm": round(rng.uniform(50, 950), 1),
                    "flow_m3s": round(rng.uniform(1, 120), 2)}
        return {"laeq_db": round(rng.uniform(45, 85), 1),
                "lamax_db": round(rng.uniform(60, 105), 1)}


KINDS: tuple[BenchKind, ...] = (
    BenchKind("air", "pm25", "bench-air"),
    BenchKind("water", "level_cm", "bench-water"),
    BenchKind("noise", "laeq_db", "bench-noise"),
)


def point_count_field(measurement: str) -> str:
    return next(kind.count_field for kind in KINDS if kind.name == measurement)


def _topic(kind: BenchKind, device: int, city: str = CITY) -> str:
    return f"kota/{city}/{kind.name}/{kind.device_prefix}-{device:04d}"


def backlog_messages(count: int, base_ms: int, part: int = 0,
                     parts: int = 1) -> Iterator[tuple[str, bytes]]:
    """Messages ``part``, ``part + parts``, ... of a backlog of ``count`` (topic, JSON payload),
    with timestamps from ``base_ms`` onwards."""
    rng = random.Random(part)
    kinds = len(KINDS)
    for index in range(part, count, parts):
        kind = KINDS[index % kinds]
        within = index // kinds
        device = within % DEVICES_PER_KIND
        ts_ms = base_ms + within // DEVICES_PER_KIND
        payload = kind.fields(rng)
        yield _topic(kind, device), orjson.dumps({**payload, "ts": ts_ms})


def live_message(kind_index: int, number: int, publish_ms: int,
                 rng: random.Random) -> tuple[str, bytes, bool]:
    """Message ``number`` of kind ``KINDS[kind_index]`` in the live phase, stamped with its
    publish time in milliseconds. Returns (topic, payload, is a latency probe).

    A device of a kind publishes every ``DEVICES_PER_KIND`` messages of that kind; below
    500,000 msg/s per kind that is >= 1 ms apart, so its points keep distinct timestamps.
    """
    kind = KINDS[kind_index]
    device = number % DEVICES_PER_KIND
    probe = device % PROBE_EVERY == 0
    payload = kind.fields(rng)
    return (_topic(kind, device, PROBE_CITY if probe else LIVE_CITY),
            orjson.dumps({**payload, "ts": publish_ms}), probe)
