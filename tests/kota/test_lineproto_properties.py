"""Property tests for kota.lineproto: what line protocol cannot carry raises, everything else is
one line that means what was given — checked by a small independent reader here and by a round
trip through a real InfluxDB 1.6. A line feed or carriage return in a string field is carried as
itself inside the quotes and reads back unchanged.
"""

from __future__ import annotations

import math
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from lineproto_reader import read_line, scan, scan_string

from devstack.localstack import LocalService
from kota.influx import quote_ident
from kota.lineproto import (
    LineProtocolError,
    build_line,
    escape_key,
    escape_measurement,
    escape_string_field,
    format_field_value,
    series_key,
    split_lines,
)

FORBIDDEN = ("\n", "\r", "\t", "\\")
# Characters line protocol treats specially, plus unicode beyond the BMP and control characters.
AWKWARD = " ,=\"'\\\n\r\t#_éü中😀\x00\x1f\x7f\u2028"
SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

awkward_text = st.text(st.one_of(st.sampled_from(AWKWARD), st.characters(codec="utf-8")),
                       max_size=12)
field_values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.booleans(),
    awkward_text,
)
timestamps = st.integers(min_value=1_577_836_800_000, max_value=1_893_456_000_000)  # 2020..2030








def expected_value(value: float | int | bool | str) -> float | bool | str:
    """What a field reads back as: strings unchanged (line feeds and carriage returns too)."""
    if isinstance(value, bool | str):
        return value
    return float(value)


def cannot_carry(text: str, what: str) -> bool:
    return (not text or any(ch in text for ch in FORBIDDEN)
            or (what == "tag key" and text.startswith("_"))
            or (what == "measurement" and text.startswith("#")))  # a comment line


# -- pure properties ------------------------------------------------------------------------
@SETTINGS
@given(text=awkward_text, what=st.sampled_from(["tag key", "tag value", "field key"]))
@example(text="a\\b", what="tag value")
@example(text="_measurement", what="tag key")
@example(text="a=b, c", what="field key")
@example(text="#comment", what="tag key")
def test_escape_key_raises_exactly_for_what_it_cannot_carry(text: str, what: str) -> None:
    if cannot_carry(text, what):
        with pytest.raises(LineProtocolError):
            escape_key(text, what)
        return
    escaped = escape_key(text, what)
    assert "\n" not in escaped
    unescaped, end = scan(escaped, 0, ",= ", ",= ")
    assert (unescaped, end) == (text, len(escaped))


@SETTINGS
@given(text=awkward_text)
@example(text="#comment")
def test_escape_measurement_round_trips(text: str) -> None:
    if cannot_carry(text, "measurement"):
        with pytest.raises(LineProtocolError):
            escape_measurement(text)
        return
    escaped = escape_measurement(text)
    assert scan(escaped, 0, ", ", ", ") == (text, len(escaped))


@SETTINGS
@given(text=awkward_text)
@example(text='say "hi"\\\n')
@example(text="baris 1\r\nbaris 2\n\\")
def test_string_field_is_one_quoted_token(text: str) -> None:
    escaped = escape_string_field(text)
    assert scan_string(escaped, 0) == (text, len(escaped))


@SETTINGS
@given(value=st.one_of(st.floats(), st.integers(min_value=-(2**63), max_value=2**64)))
@example(value=float("nan"))
@example(value=-0.0)
@example(value=5e-324)
def test_numbers_are_floats_that_round_trip(value: float | int) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        with pytest.raises(LineProtocolError):
            format_field_value(value)
        return
    text = format_field_value(value)
    assert float(text) == float(value)
    assert text == repr(float(value))  # never an integer literal: the field type never changes


@pytest.mark.slow
@SETTINGS
@given(measurement=awkward_text,
       tags=st.dictionaries(awkward_text, awkward_text, max_size=4),
       fields=st.dictionaries(awkward_text, st.one_of(field_values, st.just(math.inf)),
                              max_size=4),
       timestamp=st.none() | timestamps)
@example(measurement="air", tags={"district": "Kebayoran Baru"},
         fields={"message": 'a "b", c=d\\'}, timestamp=None)
@example(measurement="air", tags={"kelurahan": "a\nb"}, fields={"pm25": 1.0}, timestamp=None)
def test_build_line_raises_or_writes_one_faithful_line(
        measurement: str, tags: dict[str, str], fields: dict[str, Any],
        timestamp: int | None) -> None:
    must_raise = (
        cannot_carry(measurement, "measurement")
        or any(cannot_carry(k, "tag key") or cannot_carry(v, "tag value") for k, v in tags.items())
        or any(cannot_carry(k, "field key") for k in fields)
        or any(isinstance(v, float) and not math.isfinite(v) for v in fields.values())
        or not fields)
    if must_raise:
        with pytest.raises(LineProtocolError):
            build_line(series_key(measurement, tags.items()), fields, timestamp)
        return
    line = build_line(series_key(measurement, tags.items()), fields, timestamp)
    assert split_lines(line) == [line]  # newlines only inside string fields
    read = read_line(line)
    assert read == (measurement, tags, {k: expected_value(v) for k, v in fields.items()},
                    timestamp)
    assert list(read[1]) == sorted(tags)  # InfluxDB's preferred tag order


@pytest.mark.slow
@SETTINGS
@given(points=st.lists(st.tuples(awkward_text, awkward_text), min_size=1, max_size=5))
@example(points=[("a\nb", "\r\n"), ("\n", "x\\\n\"")])
def test_a_body_splits_back_into_its_lines(points: list[tuple[str, str]]) -> None:
    """Newlines inside string fields never split a batch (InfluxDB's reader, split_lines)."""
    lines = [build_line(series_key("m", [("t", "x y")]), {"s": text, "k=,": other}, index)
             for index, (text, other) in enumerate(points)]
    assert split_lines("\n".join(lines)) == lines
    assert split_lines("\n".join(lines) + "\n\n") == lines


# -- round trip through a real InfluxDB ------------------------------------------------------
usable_key = awkward_text.filter(
    lambda t: not cannot_carry(t, "tag key") and t.lower() != "time")

point_strategy = st.tuples(
    # No NUL in the measurement: the InfluxQL parser cannot read it inside a quoted identifier,
    # so the point could not be selected back (it is stored; NUL in tags and fields is tested).
    awkward_text.filter(lambda t: not cannot_carry(t, "measurement") and "\x00" not in t),
    st.dictionaries(usable_key, awkward_text.filter(lambda t: not cannot_carry(t, "tag value")),
                    max_size=3),
    # InfluxDB 1.6 drops a leading NUL from a field key (the builder cannot escape it; kinds
    # never declare such a key), so the round trip leaves that case out.
    st.dictionaries(usable_key.filter(lambda t: not t.startswith("\x00")), field_values,
                    min_size=1, max_size=4),
)


def _collect_points() -> list[tuple[str, dict[str, str], dict[str, Any]]]:
    points: list[tuple[str, dict[str, str], dict[str, Any]]] = []

    @settings(max_examples=200, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(point=point_strategy)
    @example(point=("air quality, hourly", {"district": "Kebayoran Baru", "a=b": "c,d"},
                    {"pm25": 35.2, "message": 'kata "orang", \\ 中文 😀\nbaris'}))
    @example(point=("a#hash", {"#kind": "#air"}, {"#pm25": 1.0}))
    @example(point=("n", {"t": "x"}, {"big": 1e300, "tiny": 5e-324, "neg0": -0.0, "i": 2**53}))
    def collect(point: tuple[str, dict[str, str], dict[str, Any]]) -> None:
        _measurement, tags, fields = point
        assume(not set(tags) & set(fields))  # a name is either a tag or a field in a query
        points.append(point)

    collect()
    return points


@pytest.mark.slow
def test_round_trip_through_influxdb(influxdb: LocalService, database: str) -> None:
    points = _collect_points()
    assert len(points) >= 50
    base_ms = 1_768_446_000_000
    lines = []
    for index, (measurement, tags, fields) in enumerate(points):
        # One measurement per point: no field-type conflicts between examples, easy to select.
        name = f"{measurement}·{index}"
        lines.append(build_line(series_key(name, tags.items()), fields, base_ms + index))
    url = f"http://127.0.0.1:{influxdb.port}"
    response = httpx.post(f"{url}/write", params={"db": database, "precision": "ms"},
                          content="\n".join(lines).encode(), timeout=30)
    assert response.status_code == 204, response.text

    statements = ";".join(f"SELECT * FROM {quote_ident(f'{m}·{i}')}"
                          for i, (m, _, _) in enumerate(points))
    response = httpx.post(f"{url}/query", data={"db": database, "q": statements},
                          params={"epoch": "ms"}, timeout=30)
    response.raise_for_status()
    results = response.json()["results"]
    assert len(results) == len(points)
    for index, ((measurement, tags, fields), result) in enumerate(
            zip(points, results, strict=True)):
        assert "error" not in result, (measurement, result)
        assert "series" in result, f"point {index} ({measurement!r}) was not stored"
        (series,) = result["series"]
        assert series["name"] == f"{measurement}·{index}"
        (values,) = series["values"]
        row = dict(zip(series["columns"], values, strict=True))
        assert row.pop("time") == base_ms + index
        assert {k: row[k] for k in tags} == tags
        read_fields = {k: v for k, v in row.items() if k not in tags}
        assert read_fields.keys() == fields.keys(), lines[index]
        for key, value in fields.items():
            want, got = expected_value(value), read_fields[key]
            if isinstance(want, float):
                # InfluxDB's JSON writes 6.1e16 as 61221900704134580: compare as float64.
                assert type(got) in (int, float) and float(got) == want, (key, got, lines[index])
            else:
                assert (type(got), got) == (type(want), want), (key, got, lines[index])
