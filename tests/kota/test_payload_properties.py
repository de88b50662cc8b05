"""Property tests for kota.payload.MessageParser: it never raises, refuses with a known reason,
accepts every in-range payload as one float-valued line per element, refuses every number
outside its kind's range, and is deterministic (a redelivered message is the same point).
"""

from __future__ import annotations

import math
import re
import tracemalloc
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from lineproto_reader import read_line

from kota.kinds import KINDS, FieldSpec
from kota.payload import REASONS, MessageParser, Parsed, ParseRules

RECEIVED_MS = 1_768_446_000_000  # 2026-01-15T03:00:00Z
MIN_TS_S = 1_577_836_800  # ParseRules.min_timestamp_s
SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

KIND_NAMES = sorted(KINDS)
ALL_KEYS = sorted({key for kind in KINDS.values()
                   for key in [*kind.spec.fields, *kind.spec.tags]} | {"ts", "seq"})

json_scalars = st.one_of(
    st.none(), st.booleans(), st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(2**63), max_value=2**64 - 1), st.text(max_size=20))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.one_of(st.sampled_from(ALL_KEYS), st.text(max_size=8)), inner,
                      max_size=5),
    max_leaves=20)
topics = st.one_of(
    st.builds(lambda kind, device: f"kota/jakarta/{kind}/{device}",
              st.sampled_from(KIND_NAMES), st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,8}",
                                                         fullmatch=True)),
    st.builds(lambda kind, city, device: f"kota/{city}/{kind}/{device}",
              st.sampled_from([*KIND_NAMES, "weather", ""]), st.text(max_size=6),
              st.text(max_size=6)),
    st.text(max_size=30))


def _check_invariants(parsed: Parsed) -> None:
    for rejection in parsed.rejections:
        assert rejection.reason in REASONS, rejection
        assert rejection.detail
    for line in parsed.lines:
        assert "\n" not in line and "\r" not in line


# -- never raises -------------------------------------------------------------------------
@pytest.mark.slow
@SETTINGS
@given(topic=topics, payload=st.binary(max_size=300))
@example(topic="kota/jakarta/air/dev1\n", payload=b'{"pm25": 1}')
@example(topic="kota/jakarta\n/air/dev1", payload=b'{"pm25": 1}')
@example(topic="kota/jakarta/air/dev1", payload=b"\xef\xbb\xbf{}")
def test_any_bytes_never_raise(topic: str, payload: bytes) -> None:
    parsed = MessageParser().parse(topic, payload, RECEIVED_MS)
    _check_invariants(parsed)


@pytest.mark.slow
@SETTINGS
@given(kind=st.sampled_from(KIND_NAMES), document=json_values,
       strict=st.booleans(), ignore_unknown=st.booleans())
@example(kind="air", document={"ts": "0001-01-01T00:00:00+01:00", "pm25": 1}, strict=False,
         ignore_unknown=False)
@example(kind="air", document={"ts": "9999-12-31T23:59:59-01:00", "pm25": 1}, strict=False,
         ignore_unknown=False)
@example(kind="air", document={"ts": 1e308, "pm25": 1}, strict=False, ignore_unknown=False)
@example(kind="air", document={"ts": 2**64 - 1, "seq": 2**64 - 1, "pm25": 1}, strict=False,
         ignore_unknown=False)
@example(kind="water", document={"distance_cm": 1e-300}, strict=False, ignore_unknown=True)
def test_any_json_never_raises(kind: str, document: Any, strict: bool,
                               ignore_unknown: bool) -> None:
    parser = MessageParser(rules=ParseRules(strict_registry=strict,
                                            unknown_fields="ignore" if ignore_unknown
                                            else "reject"))
    elements = len(document) if isinstance(document, list) and document else 1
    parsed = parser.parse(f"kota/jakarta/{kind}/dev-1", orjson.dumps(document), RECEIVED_MS)
    _check_invariants(parsed)
    if strict:
        assert [r.reason for r in parsed.rejections] == ["unknown_device"]
    else:
        # Every element ends as exactly one line or one rejection.
        assert len(parsed.lines) + len(parsed.rejections) == elements


def test_unknown_kind_is_refused() -> None:
    parsed = MessageParser().parse("kota/jakarta/weather/dev-1", b'{"temperature": 30}',
                                   RECEIVED_MS)
    assert [r.reason for r in parsed.rejections] == ["unknown_kind"]
    assert parsed.lines == []


# -- valid payloads -----------------------------------------------------------------------
def _in_range(spec: FieldSpec) -> st.SearchStrategy[Any]:
    if spec.type == "bool":
        return st.booleans()
    if spec.type == "string":
        # Line feeds and carriage returns must come back as themselves (issue 8).
        return st.text(st.one_of(st.sampled_from("\n\r\\\" "),
                                 st.characters(exclude_categories=["Cs"])),  # UTF-8 only
                       max_size=spec.max_length)
    return st.one_of(
        st.floats(min_value=spec.min, max_value=spec.max, allow_nan=False),
        st.integers(min_value=math.ceil(spec.min if spec.min is not None else -1e9),
                    max_value=math.floor(spec.max if spec.max is not None else 1e9)),
        st.sampled_from([v for v in (spec.min, spec.max) if v is not None] or [0.0]))


@st.composite
def valid_elements(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    spec = KINDS[kind].spec
    names = draw(st.lists(st.sampled_from(list(spec.fields)), min_size=1, unique=True))
    element: dict[str, Any] = {name: draw(_in_range(spec.fields[name])) for name in names}
    for tag, tag_spec in spec.tags.items():
        element[tag] = draw(st.sampled_from(tag_spec.values))
    ts_s = draw(st.integers(min_value=MIN_TS_S, max_value=RECEIVED_MS // 1000))
    element["ts"] = draw(st.sampled_from([ts_s, ts_s * 1000,
                                          datetime.fromtimestamp(ts_s, UTC).isoformat()]))
    if draw(st.booleans()):
        element["seq"] = draw(st.integers(min_value=0, max_value=2**53))
    if kind == "water" and "level_cm" not in element:
        element.pop("distance_cm", None)  # unregistered: no mount height, nothing derived
        element["level_cm"] = draw(_in_range(spec.fields["level_cm"]))
    return element


@st.composite
def valid_messages(draw: st.DrawFn) -> tuple[str, list[dict[str, Any]], bool]:
    kind = draw(st.sampled_from(KIND_NAMES))
    elements = draw(st.lists(valid_elements(kind), min_size=1, max_size=5))
    return kind, elements, draw(st.booleans())


@pytest.mark.slow
@SETTINGS
@given(message=valid_messages())
def test_valid_payloads_give_one_float_line_per_element(
        message: tuple[str, list[dict[str, Any]], bool]) -> None:
    kind, elements, as_array = message
    spec = KINDS[kind].spec
    payload = orjson.dumps(elements if as_array or len(elements) > 1 else elements[0])
    parsed = MessageParser().parse(f"kota/jakarta/{kind}/dev-1", payload, RECEIVED_MS)
    assert parsed.rejections == []
    assert len(parsed.lines) == len(elements)
    for element, line in zip(elements, parsed.lines, strict=True):
        measurement, tags, fields, timestamp = read_line(line)
        assert measurement == spec.measurement
        assert tags["kind"] == kind and tags["device"] == "dev-1"
        for tag in spec.tags:
            assert tags[tag] == element[tag]
        expected: dict[str, Any] = {k: v for k, v in element.items() if k in spec.fields}
        for name, default in spec.defaults.items():
            expected.setdefault(name, default)
        if "seq" in element:
            expected["seq"] = element["seq"]
        assert fields == expected
        for key, value in expected.items():  # numbers are written as float literals
            if type(value) in (int, float):
                assert re.search(rf"[ ,]{key}={re.escape(repr(float(value)))}( |,)", line), key
        assert timestamp is not None and timestamp <= RECEIVED_MS


@pytest.mark.slow
@SETTINGS
@given(kind=st.sampled_from(KIND_NAMES), ts_s=st.integers(min_value=MIN_TS_S,
                                                          max_value=RECEIVED_MS // 1000 + 300),
       millis=st.integers(min_value=0, max_value=999),
       offset_min=st.integers(min_value=-14 * 60, max_value=14 * 60))
def test_timestamp_forms_agree(kind: str, ts_s: int, millis: int, offset_min: int) -> None:
    """Seconds, milliseconds and RFC 3339 in any zone name the same instant."""
    spec = KINDS[kind].spec
    body: dict[str, Any] = {tag: tag_spec.values[0] for tag, tag_spec in spec.tags.items()}
    first = next(name for name, f in spec.fields.items() if f.type == "float")
    body[first] = spec.fields[first].max
    ms = ts_s * 1000 + millis
    if ms > RECEIVED_MS + 300_000:
        ms = RECEIVED_MS + 300_000
    zone = timezone(timedelta(minutes=offset_min))
    forms = [ms / 1000, ms, datetime.fromtimestamp(ms / 1000, UTC).astimezone(zone).isoformat()]
    lines = []
    for ts in forms:
        parsed = MessageParser().parse(f"kota/jakarta/{kind}/dev-1",
                                       orjson.dumps({**body, "ts": ts}), RECEIVED_MS)
        assert parsed.rejections == [], (ts, parsed.rejections)
        lines.extend(parsed.lines)
    assert len(set(lines)) == 1
    assert lines[0].endswith(f" {ms}")


# -- out of range -------------------------------------------------------------------------
RANGED = [(kind, name, spec) for kind in KIND_NAMES
          for name, spec in KINDS[kind].spec.fields.items()
          if spec.type == "float" and spec.min is not None and spec.max is not None]


@st.composite
def out_of_range(draw: st.DrawFn) -> tuple[str, str, float]:
    kind, name, spec = draw(st.sampled_from(RANGED))
    assert spec.min is not None and spec.max is not None
    value = draw(st.one_of(
        st.floats(max_value=spec.min, exclude_max=True, allow_nan=False, allow_infinity=False),
        st.floats(min_value=spec.max, exclude_min=True, allow_nan=False, allow_infinity=False),
        st.sampled_from([math.nextafter(spec.min, -math.inf),
                         math.nextafter(spec.max, math.inf)])))
    return kind, name, value


@pytest.mark.slow
@SETTINGS
@given(case=out_of_range(), with_ts=st.booleans(), as_int=st.booleans())
def test_numbers_outside_the_range_are_refused(case: tuple[str, str, float], with_ts: bool,
                                               as_int: bool) -> None:
    kind, name, value = case
    spec = KINDS[kind].spec
    number: float | int = value
    if as_int and value.is_integer() and abs(value) < 2**63:
        number = int(value)
    element: dict[str, Any] = {tag: t.values[0] for tag, t in spec.tags.items()}
    element[name] = number
    if with_ts:
        element["ts"] = RECEIVED_MS
    parsed = MessageParser().parse(f"kota/jakarta/{kind}/dev-1", orjson.dumps(element),
                                   RECEIVED_MS)
    assert parsed.lines == []
    assert [r.reason for r in parsed.rejections] == ["out_of_range"]


# -- determinism ----------------------------------------------------------------------------
@pytest.mark.slow
@SETTINGS
@given(message=valid_messages(), drop_ts=st.booleans())
def test_same_message_twice_is_the_same_point(
        message: tuple[str, list[dict[str, Any]], bool], drop_ts: bool) -> None:
    """MQTT QoS 1 redelivers: the copy must be the same series and timestamp, so InfluxDB
    overwrites the point instead of counting it twice."""
    kind, elements, _ = message
    if drop_ts:
        elements = [{k: v for k, v in e.items() if k != "ts"} for e in elements]
    topic = f"kota/jakarta/{kind}/dev-1"
    payload = orjson.dumps(elements)
    parser = MessageParser()
    first = parser.parse(topic, payload, RECEIVED_MS)
    again = parser.parse(topic, payload, RECEIVED_MS)  # cached route
    fresh = MessageParser().parse(topic, payload, RECEIVED_MS)
    assert first.lines and first.lines == fresh.lines
    assert first.rejections == again.rejections == fresh.rejections == []
    if not drop_ts:
        assert again.lines == first.lines
    else:
        # Without ts the receive time is used, and readings of one series never share a
        # millisecond: the second parse in the same millisecond moves on.
        def split(line: str) -> tuple[str, int]:
            head, timestamp = line.rsplit(" ", 1)
            return head, int(timestamp)

        for before, after in zip(first.lines, again.lines, strict=True):
            assert split(before)[0] == split(after)[0]
            assert split(after)[1] > split(before)[1]


def test_repeated_bad_topic_does_not_grow_memory() -> None:
    """A refused topic's rejection is cached; re-raising it must not pile up tracebacks."""
    parser = MessageParser()
    for _ in range(100):  # warm up caches and interned strings
        parser.parse("kota/jakarta/weather/dev-1", b"{}", RECEIVED_MS)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(5_000):
            parsed = parser.parse("kota/jakarta/weather/dev-1", b"{}", RECEIVED_MS)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert [r.reason for r in parsed.rejections] == ["unknown_kind"]
    assert grown < 200_000, f"{grown} bytes kept after 5 000 refused messages"
