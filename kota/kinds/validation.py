"""The kind validation step: decoded readings checked against their kind's ``kind.yaml``.

Pure functions over :class:`~kota.formats.Reading`: the time window, known fields, types,
ranges, tag-valued keys, derivations (water's ``level_cm`` from ``distance_cm`` and the
registry's mount height) and defaults. The result is :class:`Valid` — typed field values and
tag values, ready for kota/lineproto.py — or a :class:`~kota.formats.Refusal`.

Hot path (tens of thousands of readings a second): exact type checks, and each kind's contract
prepared once in :class:`KindRules`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from kota.formats._contract import Reading, Refusal
from kota.kinds import Derive, Kind
from kota.kinds._spec import TagFieldSpec

__all__ = ["FieldCheck", "KindRules", "Valid", "complete", "validate"]

FieldValue = float | bool | str
FieldCheck = tuple[str, float, float, int]  # type, min, max, max length


# A valid reading: (field values: in payload order, then derived, then defaults; tag values
# of tag-valued keys such as safety's event, None when there are none). A plain tuple: the hot
# path makes one per reading.
Valid = tuple[dict[str, FieldValue], dict[str, str] | None]


@dataclass(frozen=True, slots=True)
class KindRules:
    """A kind's contract prepared for the hot path, with the limits from the parse rules."""

    kind: Kind
    derive: Derive | None
    fields: dict[str, FieldCheck]
    tags: dict[str, TagFieldSpec]
    required_tags: tuple[str, ...]
    defaults: tuple[tuple[str, float], ...]
    unknown_fields: Literal["reject", "ignore"] = "reject"
    complete: bool = False  # required tags, a derivation or defaults: complete() has work
    max_future_ms: float = 300_000.0
    min_ms: float = 1_577_836_800_000.0

    @classmethod
    def of(cls, kind: Kind, unknown_fields: Literal["reject", "ignore"] = "reject",
           max_future_s: float = 300.0, min_timestamp_s: float = 1_577_836_800.0) -> KindRules:
        spec = kind.spec
        fields: dict[str, FieldCheck] = {
            name: (field.type, -math.inf if field.min is None else field.min,
                   math.inf if field.max is None else field.max, field.max_length)
            for name, field in spec.fields.items()
        }
        return cls(kind, kind.derive, fields, dict(spec.tags),
                   tuple(name for name, tag in spec.tags.items() if tag.required),
                   tuple((name, float(value)) for name, value in spec.defaults.items()),
                   unknown_fields,
                   bool(kind.derive or spec.defaults or any(t.required
                                                            for t in spec.tags.values())),
                   max_future_s * 1000, min_timestamp_s * 1000)


class _Refused(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def validate(rules: KindRules, reading: Reading, params: Mapping[str, object],
             received_ms: int) -> Valid | Refusal:
    """``reading`` checked against its kind: a :class:`Valid` or why it is refused."""
    fields, ts_ms, seq, index = reading
    try:
        if ts_ms is not None and not rules.min_ms <= ts_ms <= received_ms + rules.max_future_ms:
            raise _time_refusal(rules, ts_ms, received_ms)
        values: dict[str, FieldValue] = {} if seq is None else {"seq": float(seq)}
        tags: dict[str, str] | None = None
        checks = rules.fields
        for key, value in fields.items():
            check = checks.get(key)
            if check is None:
                tags = check_other_key(rules, key, value, tags)
            elif value is None:  # a sensor that could not read this time
                continue
            elif check[0] == "float" and (type(value) is float or type(value) is int):
                if not check[1] <= value <= check[2]:
                    raise _out_of_range(key, value, check)
                values[key] = float(value)
            else:
                values[key] = check_value(key, value, check)
        if rules.complete or len(values) <= (seq is not None):
            complete(rules, values, tags, seq is not None, params)
        return values, tags
    except _Refused as exc:
        return Refusal(exc.reason, exc.detail, index)


def _time_refusal(rules: KindRules, ts_ms: int, received_ms: int) -> _Refused:
    if ts_ms > received_ms + rules.max_future_ms:
        return _Refused("timestamp_future",
                        f"ts is {(ts_ms - received_ms) / 1000:.0f} s ahead of the receive time "
                        f"(max_future_s {rules.max_future_ms / 1000:g})")
    return _Refused("timestamp_too_old", f"ts {ts_ms} ms is before min_timestamp; "
                    "is the device clock set?")


def complete(rules: KindRules, values: dict[str, FieldValue], tags: dict[str, str] | None,
             has_seq: bool, params: Mapping[str, object]) -> None:
    """Required tags, derivations, at least one measured value, defaults."""
    for name in rules.required_tags:
        if tags is None or name not in tags:
            raise _Refused("bad_tag", f"{name!r} is required for kind {rules.kind.name!r}")
    measured = len(values) - has_seq
    if rules.derive is not None:
        measured += derive(rules, values, params)
    if measured <= 0 and not tags:
        raise _Refused("no_fields", f"no field of kind {rules.kind.name!r} in the element "
                       f"(fields: {', '.join(rules.fields)})")
    for name, default in rules.defaults:
        if name not in values:
            values[name] = default


def check_other_key(rules: KindRules, key: str, value: object,
                    tags: dict[str, str] | None) -> dict[str, str] | None:
    """A key that is not a field: a tag-valued key (added to ``tags``), skipped, or refused."""
    tag = rules.tags.get(key)
    if tag is not None:
        if not isinstance(value, str) or not (
                value in tag.values or (tag.allow_other and value)):
            raise _Refused("bad_tag", f"{key} {value!r} is not one of {', '.join(tag.values)}")
        return {**(tags or {}), key: value}
    if value is not None and rules.unknown_fields == "reject":
        raise _Refused("unknown_field", f"{key!r} is not a field of kind {rules.kind.name!r} "
                       f"(fields: {', '.join(rules.fields)})")
    return tags


def check_value(key: str, value: object, check: FieldCheck) -> FieldValue:
    """A non-null value that is not a plain number for a float field (the slow path)."""
    field_type, _, _, max_length = check
    if field_type == "float":
        raise _Refused("wrong_type", f"{key} {value!r} is a {type(value).__name__}, "
                       "expected a number")
    if field_type == "bool":
        if type(value) is not bool:
            raise _Refused("wrong_type", f"{key} {value!r} is not true/false")
        return value
    if type(value) is not str:
        raise _Refused("wrong_type", f"{key} {value!r} is not a string")
    if len(value) > max_length:
        raise _Refused("out_of_range", f"{key} is {len(value)} characters > {max_length}")
    return value


def derive(rules: KindRules, values: dict[str, FieldValue], params: Mapping[str, object]) -> int:
    """Run the kind's derivation; check what it added against the ranges; count it."""
    assert rules.derive is not None
    known = set(values)
    rules.derive(values, params)  # type: ignore[arg-type]
    added = values.keys() - known
    for key in added:
        _, low, high, _ = rules.fields[key]
        derived = values[key]
        if not low <= derived <= high:  # type: ignore[operator]  # as plausible as sent
            raise _Refused("out_of_range", f"derived {key} {derived!r} outside "
                           f"[{low:g}, {high:g}]")
    return len(added)


def _out_of_range(key: str, value: object, check: FieldCheck) -> _Refused:
    shown = repr(value) if len(repr(value)) <= 24 else repr(value)[:24] + "…"
    return _Refused("out_of_range", f"{key} {shown} outside [{check[1]:g}, {check[2]:g}]")
