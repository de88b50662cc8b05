"""Small helpers shared by the signal models: seeds, local time, shapes, ranges."""

from __future__ import annotations

import hashlib
import math
import random

from kota.kinds import KINDS

__all__ = ["KM_PER_DEG_LAT", "clamp", "clamp_to_kind", "derive_rng", "derive_seed", "gauss_bump",
           "local_hour", "local_weekday", "uniform"]

KM_PER_DEG_LAT = 111.32  # mean length of one degree of latitude, km
SECONDS_PER_HOUR = 3600.0
SECONDS_PER_DAY = 86400.0


def derive_seed(seed: int, *parts: str) -> int:
    """A stable 64-bit seed for a sub-stream (unlike hash(), not salted per process)."""
    digest = hashlib.blake2b("/".join([str(seed), *parts]).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def derive_rng(seed: int, *parts: str) -> random.Random:
    return random.Random(derive_seed(seed, *parts))


def local_hour(time_s: float, utc_offset_h: float) -> float:
    """Hour of the local day, 0 <= h < 24."""
    return ((time_s / SECONDS_PER_HOUR) + utc_offset_h) % 24.0


def local_weekday(time_s: float, utc_offset_h: float) -> int:
    """0 = Monday ... 6 = Sunday (1970-01-01 was a Thursday)."""
    days = math.floor((time_s + utc_offset_h * SECONDS_PER_HOUR) / SECONDS_PER_DAY)
    return (days + 3) % 7


def gauss_bump(hour: float, centre_h: float, width_h: float) -> float:
    """A bell of height 1 around ``centre_h`` on the 24-h circle."""
    distance = abs(hour - centre_h) % 24.0
    distance = min(distance, 24.0 - distance)
    return math.exp(-0.5 * (distance / width_h) ** 2)


def uniform(rng: random.Random, bounds: tuple[float, float]) -> float:
    return rng.uniform(bounds[0], bounds[1])


def clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def clamp_to_kind(kind: str, fields: dict[str, object]) -> dict[str, object]:
    """Keep every numeric field inside its kind's plausible range (kind.yaml), so a clean
    simulated reading can never be refused as out_of_range, whatever a scenario asks for."""
    spec = KINDS[kind].spec
    for name, value in fields.items():
        field = spec.fields.get(name)
        if field is None or field.type != "float" or not isinstance(value, float):
            continue
        low = field.min if field.min is not None else -math.inf
        high = field.max if field.max is not None else math.inf
        fields[name] = clamp(value, low, high)
    return fields
