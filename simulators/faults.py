"""Fault injection: what real devices get wrong, at a configured share of messages.

Each fault turns one clean element into what a faulty device would send, and says which
rejection reason ingest should give it (None for faults ingest must accept: a stuck or spiking
sensor sends well-formed, in-range data; detecting those is analytics' job)."""

from __future__ import annotations

import random
from dataclasses import dataclass

import orjson

from kota.kinds import KINDS
from simulators.models.common import SECONDS_PER_DAY
from simulators.settings import FaultSettings

__all__ = ["FaultInjector", "FaultResult"]

_SPIKE_FACTOR = (3.0, 10.0)            # a spike multiplies a reading by this much...
_SPIKE_SHARE_OF_RANGE = 0.05           # ...or adds this share of the range to a zero reading
# Fields whose spikes go down: a leaf or bird under an ultrasonic gauge gives a short echo (and a
# distance spike upward would push the derived level_cm out of range).
_SPIKES_DOWN = frozenset({"distance_cm"})
_OUT_OF_RANGE_OVERSHOOT = (1.2, 3.0)   # out_of_range: this many times the kind's maximum
_CLOCK_AHEAD_DAYS = (1.0, 7.0)         # a device whose clock runs days ahead
_UNSET_CLOCK_MAX_S = 30 * SECONDS_PER_DAY  # a device counting from 1970 since its last boot
_MALFORMED_VARIANTS = ("truncated", "not_object", "number_as_string", "renamed_key")
_MALFORMED_REASON = {"truncated": "not_json", "not_object": "not_object",
                     "number_as_string": "wrong_type", "renamed_key": "unknown_field"}


@dataclass(frozen=True, slots=True)
class FaultResult:
    payload: bytes | None   # None: the message is not sent (dropout)
    expected_reason: str | None


def _numeric_fields(kind: str, fields: dict[str, object]) -> list[str]:
    spec = KINDS[kind].spec
    return [name for name, value in fields.items()
            if name in spec.fields and spec.fields[name].type == "float"
            and isinstance(value, float)]


class FaultInjector:
    def __init__(self, settings: FaultSettings, window_end_s: float) -> None:
        self.share = settings.share
        self.types = list(settings.types)
        self.window_end_s = window_end_s

    def choose(self, rng: random.Random) -> str | None:
        """Draw whether this message gets a fault, and which. Always draws the same numbers."""
        draw, pick = rng.random(), rng.randrange(len(self.types))
        return self.types[pick] if draw < self.share else None

    def apply(self, fault: str, kind: str, element: dict[str, object],
              previous: dict[str, object] | None, rng: random.Random) -> FaultResult:
        """``element`` is the clean ``{ts, seq, ...fields}``; ``previous`` the device's last
        clean fields (for a stuck sensor)."""
        element = dict(element)
        numeric = _numeric_fields(kind, element)
        spec = KINDS[kind].spec
        if fault == "dropout":
            return FaultResult(None, None)
        if fault == "stuck":
            if previous:
                element.update(previous)
            return FaultResult(orjson.dumps(element), None)
        if fault == "spike":
            if numeric:
                name = rng.choice(numeric)
                field = spec.fields[name]
                low = field.min if field.min is not None else 0.0
                high = field.max if field.max is not None else 1e6
                value = element[name]
                assert isinstance(value, float)
                factor = rng.uniform(*_SPIKE_FACTOR)
                if name in _SPIKES_DOWN:
                    spiked = value / factor
                elif value > 0:
                    spiked = value * factor
                else:
                    spiked = value + (high - low) * _SPIKE_SHARE_OF_RANGE
                element[name] = round(max(low, min(high, spiked)), 1)
            return FaultResult(orjson.dumps(element), None)
        if fault == "out_of_range":
            bounded = [n for n in numeric if spec.fields[n].max is not None]
            if bounded:
                name = rng.choice(bounded)
                ceiling = spec.fields[name].max
                assert ceiling is not None
                element[name] = round(abs(ceiling) * rng.uniform(*_OUT_OF_RANGE_OVERSHOOT) + 1, 1)
                return FaultResult(orjson.dumps(element), "out_of_range")
            return FaultResult(orjson.dumps(element), None)
        if fault == "clock_skew":
            if rng.random() < 0.5:
                element["ts"] = round(self.window_end_s
                                      + rng.uniform(*_CLOCK_AHEAD_DAYS) * SECONDS_PER_DAY, 3)
                return FaultResult(orjson.dumps(element), "timestamp_future")
            element["ts"] = round(rng.uniform(1.0, _UNSET_CLOCK_MAX_S), 3)
            return FaultResult(orjson.dumps(element), "timestamp_too_old")
        if fault == "malformed":
            variant = rng.choice(_MALFORMED_VARIANTS)
            if variant in ("number_as_string", "renamed_key") and not numeric:
                variant = "truncated"
            if variant == "truncated":
                text = orjson.dumps(element)
                return FaultResult(text[: max(1, len(text) // 2)], "not_json")
            if variant == "not_object":
                return FaultResult(orjson.dumps([list(element.values())]), "not_object")
            name = rng.choice(numeric)
            if variant == "number_as_string":
                element[name] = str(element[name])
            else:
                element = {(f"{key}_raw" if key == name else key): value
                           for key, value in element.items()}
            return FaultResult(orjson.dumps(element), _MALFORMED_REASON[variant])
        raise ValueError(f"unknown fault type {fault!r}")
