"""InfluxDB line protocol: escaping and building, pure functions.

Escaping follows the InfluxDB 1.x/2.x/3.x grammar: measurement escapes comma and space; tag keys,
tag values and field keys escape comma, equals sign and space; string field values escape
backslash and double quote, and carry a line feed or carriage return as itself inside the quotes
(InfluxDB's reader ends a line only at a newline outside a string field; verified against 1.6).
A newline cannot be represented in a tag or a key, and a backslash in a tag value cannot
round-trip through InfluxDB 1.x, so those raise ``LineProtocolError`` instead of writing
something else than was meant.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

__all__ = [
    "LineProtocolError",
    "build_line",
    "encode_line",
    "escape_key",
    "escape_measurement",
    "escape_string_field",
    "format_field_value",
    "series_key",
    "split_lines",
]

FieldValue = float | int | bool | str


class LineProtocolError(ValueError):
    """A value that line protocol cannot carry faithfully."""


_KEY_TABLE = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_MEASUREMENT_TABLE = str.maketrans({",": r"\,", " ": r"\ "})
_FORBIDDEN_IN_KEYS = ("\n", "\r", "\\", "\t")


def _check_key(text: str, what: str) -> None:
    if not text:
        raise LineProtocolError(f"{what} is empty")
    if any(ch in text for ch in _FORBIDDEN_IN_KEYS):
        raise LineProtocolError(f"{what} {text!r} contains a newline, tab or backslash")
    if text.startswith("_") and what == "tag key":
        # InfluxDB 2.x/3.x reserve underscore-prefixed keys (_measurement, _field ...).
        raise LineProtocolError(f"{what} {text!r} starts with an underscore (reserved)")


def escape_measurement(name: str) -> str:
    _check_key(name, "measurement")
    if name.startswith("#"):
        # A line starting with '#' is a comment: InfluxDB answers 204 and drops the point.
        raise LineProtocolError(f"measurement {name!r} starts with '#' (a comment line)")
    return name.translate(_MEASUREMENT_TABLE)


def escape_key(text: str, what: str = "tag value") -> str:
    """Escape a tag key, tag value or field key."""
    _check_key(text, what)
    return text.translate(_KEY_TABLE)


def escape_string_field(text: str) -> str:
    """A double-quoted string field value. Only backslash and double quote are escaped: a line
    feed or carriage return is written as itself inside the quotes, which InfluxDB's reader
    keeps as part of the value (see :func:`split_lines`), so the text reads back unchanged."""
    if "\\" in text or '"' in text:
        text = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + text + '"'


def format_field_value(value: FieldValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return escape_string_field(value)
    number = float(value)
    if not math.isfinite(number):
        raise LineProtocolError(f"field value {value!r} is not a finite number")
    # repr() of a float round-trips exactly; integers are written as floats on purpose so that
    # a field never changes type (InfluxDB refuses a batch on a field-type conflict).
    return repr(number)


def series_key(measurement: str, tags: Iterable[tuple[str, str]]) -> str:
    """``measurement,tag=value,...`` with tags sorted by key (InfluxDB's preferred order)."""
    parts = [escape_measurement(measurement)]
    for key, value in sorted(tags):
        parts.append(f"{escape_key(key, 'tag key')}={escape_key(value, 'tag value')}")
    return ",".join(parts)


def build_line(
    series: str, fields: Mapping[str, FieldValue], timestamp: int | None = None
) -> str:
    """One line: ``series`` from :func:`series_key`, fields in the given order, timestamp."""
    if not fields:
        raise LineProtocolError("a point needs at least one field")
    field_text = ",".join(
        f"{escape_key(key, 'field key')}={format_field_value(value)}"
        for key, value in fields.items()
    )
    if timestamp is None:
        return f"{series} {field_text}"
    return f"{series} {field_text} {int(timestamp)}"


def _text(value: FieldValue) -> str:
    if type(value) is str:
        return escape_string_field(value)
    return format_field_value(value)


def encode_line(series: str, fields: Mapping[str, FieldValue], timestamp: int) -> str:
    """The encode step: one line from validated fields (kota/kinds/validation.py), fast.

    Like :func:`build_line` with a timestamp, for fields already checked: the keys are written
    as given, so they must need no escaping (a kind's field names match ``[a-z][a-z0-9_]*``,
    kota/kinds/_spec.py), and floats are written without a finiteness check (JSON has no NaN
    or infinity). Integers are written as floats, like everywhere else.
    """
    parts = []
    for key, value in fields.items():  # a loop, not a comprehension: no extra frame in 3.11
        if type(value) is float:
            parts.append(f"{key}={value!r}")
        else:
            parts.append(f"{key}={_text(value)}")
    if not parts:
        raise LineProtocolError("a point needs at least one field")
    return f"{series} {','.join(parts)} {timestamp}"


def split_lines(body: str) -> list[str]:
    """The lines of a line-protocol body, split where InfluxDB 1.x's reader splits them: at a
    newline that is neither backslash-escaped nor inside a string field value. Empty lines are
    left out. For tests and tools; ingest itself never splits a body."""
    lines: list[str] = []
    start = i = equals = commas = 0
    in_fields = quoted = False
    end = len(body)
    while i < end:
        char = body[i]
        if char == "\\" and i + 1 < end:
            i += 2
            continue
        if char == " ":
            in_fields = True
        elif in_fields and not quoted and char == "=":
            equals += 1
        elif in_fields and not quoted and char == ",":
            commas += 1
        elif in_fields and char == '"' and equals > commas:
            quoted = not quoted
        elif char == "\n" and not quoted:
            if body[start:i].strip():
                lines.append(body[start:i])
            start, equals, commas, in_fields = i + 1, 0, 0, False
        i += 1
    if body[start:].strip():
        lines.append(body[start:])
    return lines
