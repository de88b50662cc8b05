"""A line-protocol reader written from InfluxDB's rules, independent of kota.lineproto: the
property tests read back what the encoder wrote."""

from __future__ import annotations

from typing import Any


# -- an independent reader of one line, for checking the builder's escaping -----------------
def scan(line: str, start: int, stops: str, escapable: str) -> tuple[str, int]:
    out: list[str] = []
    i = start
    while i < len(line) and line[i] not in stops:
        if line[i] == "\\" and i + 1 < len(line) and line[i + 1] in escapable:
            out.append(line[i + 1])
            i += 2
        else:
            out.append(line[i])
            i += 1
    return "".join(out), i


def scan_string(line: str, start: int) -> tuple[str, int]:
    assert line[start] == '"'
    out: list[str] = []
    i = start + 1
    while line[i] != '"':
        if line[i] == "\\" and line[i + 1] in '"\\':
            i += 1
        out.append(line[i])
        i += 1
    return "".join(out), i + 1


def read_line(line: str) -> tuple[str, dict[str, str], dict[str, Any], int | None]:
    """(measurement, tags, fields, timestamp) as InfluxDB's reader would see them."""
    measurement, i = scan(line, 0, ", ", ", ")
    tags: dict[str, str] = {}
    while line[i] == ",":
        key, i = scan(line, i + 1, "=", ",= ")
        tag_value, i = scan(line, i + 1, ", ", ",= ")
        tags[key] = tag_value
    assert line[i] == " "
    fields: dict[str, Any] = {}
    i += 1
    while True:
        key, i = scan(line, i, "=", ",= ")
        i += 1
        value: Any
        if line[i] == '"':
            value, i = scan_string(line, i)
        else:
            token, i = scan(line, i, ", ", "")
            value = {"true": True, "false": False}.get(token)
            if value is None:
                value = float(token)
        fields[key] = value
        if i >= len(line) or line[i] == " ":
            break
        i += 1
    timestamp = int(line[i + 1:]) if i < len(line) else None
    return measurement, tags, fields, timestamp
