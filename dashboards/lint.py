"""Checks on generated dashboard JSON that need no Grafana: structure Grafana requires, and that
every query reads only measurements, tags and fields that ingest or the indicator service
write (dashboards.schema). Each check returns a list of problems; empty means fine.

Queries must double-quote every identifier (``"city"``, not ``city``): an unquoted word that
is not an InfluxQL keyword, function, duration or Grafana macro is itself a problem, so no name
escapes the schema check.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from dashboards.common import GRID_COLUMNS
from dashboards.influxql import ANNOTATION_KEYS, DATASOURCE_TYPE, DATASOURCE_UID
from dashboards.schema import MeasurementSchema

__all__ = ["GRID_COLUMNS", "QueryNames", "annotation_queries", "check_names",
           "check_structure", "parse_query", "targets", "variable_queries"]

SCHEMA_VERSION = 41  # grafana-foundation-sdk 11.6's dashboard model (Grafana 11.6)
REQUIRED_DASHBOARD_KEYS = ("uid", "title", "panels", "schemaVersion", "templating", "time")
REQUIRED_PANEL_KEYS = ("id", "type", "title", "gridPos", "datasource", "targets")
VARIABLES = ("city", "district", "device")
MACROS = ("$timeFilter", "$__interval", "$__interval_ms")

_KEYWORDS = {
    "select", "from", "where", "and", "or", "group", "by", "as", "fill", "none", "null",
    "previous", "linear", "order", "desc", "asc", "limit", "time", "show", "tag", "values",
    "with", "key", "true", "false", "now", "tz",
}
_FUNCTIONS = {"last", "first", "mean", "median", "max", "min", "sum", "count", "spread",
              "non_negative_derivative", "derivative", "difference", "distinct", "stddev",
              "percentile"}
_TOKEN = re.compile(r"""
    (?P<ident>"(?:[^"\\]|\\.)*")
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<regex>/(?:[^/\\]|\\.)*/)
  | (?P<macro>\$[A-Za-z_]+)
  | (?P<duration>\d+(?:ns|u|µ|ms|s|m|h|d|w)\b)
  | (?P<number>\d+(?:\.\d+)?)
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>=~|!~|!=|<>|<=|>=|[=<>(),*+\-])
  | (?P<space>\s+)
""", re.VERBOSE)


@dataclass
class QueryNames:
    """What one InfluxQL statement names, by role."""

    measurements: list[str] = field(default_factory=list)
    selected: list[str] = field(default_factory=list)        # fields (or tags) read
    compared: list[tuple[str, str, str]] = field(default_factory=list)  # (name, op, literal)
    grouped: list[str] = field(default_factory=list)         # GROUP BY tags
    aliases: list[str] = field(default_factory=list)
    show_key: str | None = None                               # SHOW TAG VALUES … KEY
    problems: list[str] = field(default_factory=list)


def _tokens(query: str) -> Iterator[tuple[str, str]]:
    position = 0
    while position < len(query):
        match = _TOKEN.match(query, position)
        if match is None:
            raise ValueError(f"cannot read {query[position:position + 20]!r} in {query!r}")
        position = match.end()
        kind = match.lastgroup or ""
        if kind != "space":
            yield kind, match.group()


def parse_query(query: str) -> QueryNames:
    """The names an InfluxQL statement (as the dashboards write them) refers to, by role."""
    names = QueryNames()
    clause = ""
    tokens = list(_tokens(query))
    is_show = bool(tokens) and tokens[0][1].lower() == "show"
    for index, (kind, text) in enumerate(tokens):
        lower = text.lower()
        previous = tokens[index - 1][1].lower() if index else ""
        if kind == "word":
            if lower in ("select", "from", "where", "group", "order", "limit", "fill", "show"):
                clause = lower
            elif lower == "key" and is_show:
                clause = "key"
            elif lower not in _KEYWORDS and lower not in _FUNCTIONS:
                names.problems.append(f"unquoted identifier {text!r}")
            continue
        if kind == "macro" and text not in MACROS and text.lstrip("$") not in VARIABLES:
            names.problems.append(f"unknown macro or variable {text}")
        if kind != "ident":
            continue
        name = text[1:-1]
        following = tokens[index + 1] if index + 1 < len(tokens) else ("", "")
        if previous == "as":
            names.aliases.append(name)
        elif clause == "key":
            names.show_key = name
            clause = "show-where"
        elif clause == "select":
            names.selected.append(name)
        elif clause in ("where", "show-where"):
            literal = tokens[index + 2][1] if index + 2 < len(tokens) else ""
            names.compared.append((name, following[1], literal))
        elif clause == "group":
            names.grouped.append(name)
        elif clause == "from":
            names.measurements.append(name)
    return names


def targets(dashboard: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(panel, target) for every query target of every panel (rows' panels included)."""
    for panel in dashboard.get("panels", []):
        for inner in [panel, *panel.get("panels", [])]:
            for target in inner.get("targets") or []:
                yield inner, target


def variable_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable.get("query")
            yield variable["name"], query if isinstance(query, str) else str(query)


def annotation_queries(dashboard: dict[str, Any]) -> Iterator[tuple[dict[str, Any], str]]:
    """(annotation, query) for every InfluxDB annotation query (Grafana's built-in one has
    no query)."""
    for annotation in (dashboard.get("annotations") or {}).get("list") or []:
        if not annotation.get("builtIn"):
            yield annotation, str(annotation.get("query", ""))


def _check_annotations(dashboard: dict[str, Any], defined: set[str]) -> list[str]:
    problems = []
    for annotation, query in annotation_queries(dashboard):
        label = f"annotation {annotation.get('name')!r}"
        if " / " not in str(annotation.get("name", "")):
            problems.append(f"{label}: name is not 'Bahasa / English'")
        if annotation.get("datasource") != {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID}:
            problems.append(f"{label}: datasource {annotation.get('datasource')} is not the "
                            "provisioned one")
        problems += [f"{label} lacks {key!r}" for key in ANNOTATION_KEYS if key not in annotation]
        if "$timeFilter" not in query:
            problems.append(f"{label}: query without $timeFilter: {query}")
        try:
            selected = set(parse_query(query).selected)
        except ValueError as exc:
            problems.append(f"{label}: {exc}")
            continue
        columns = [str(annotation.get("textColumn", ""))] + [
            c for c in str(annotation.get("tagsColumn", "")).split(",") if c]
        problems += [f"{label}: column {c!r} is not selected by its query" for c in columns
                     if c not in selected]
        for variable in re.findall(r"\$([a-z]+)\b", query):
            if variable not in defined and f"${variable}" not in MACROS:
                problems.append(f"{label}: uses ${variable}, which is not defined")
    return problems


def check_structure(dashboard: dict[str, Any]) -> list[str]:
    """What Grafana needs to load and lay the dashboard out, and our own conventions."""
    problems = [f"dashboard lacks {key!r}" for key in REQUIRED_DASHBOARD_KEYS
                if key not in dashboard]
    if dashboard.get("schemaVersion") != SCHEMA_VERSION:
        problems.append(f"schemaVersion {dashboard.get('schemaVersion')} != {SCHEMA_VERSION}")
    if " / " not in str(dashboard.get("title", "")):
        problems.append(f"title {dashboard.get('title')!r} is not 'Bahasa / English'")
    defined = {name for name, _ in variable_queries(dashboard)}
    for name in ("city", "district"):
        if name not in defined:
            problems.append(f"no ${name} variable")
    ids: set[int] = set()
    cells: dict[tuple[int, int], int] = {}
    for panel in dashboard.get("panels", []):
        label = f"panel {panel.get('id')} {panel.get('title', '')!r}"
        problems += [f"{label} lacks {key!r}" for key in REQUIRED_PANEL_KEYS if key not in panel]
        if panel.get("id") in ids:
            problems.append(f"{label}: duplicate id")
        ids.add(panel.get("id", -1))
        if " / " not in str(panel.get("title", "")):
            problems.append(f"{label}: title is not 'Bahasa / English'")
        pos = panel.get("gridPos", {})
        x, y, w, h = (pos.get(k, -1) for k in ("x", "y", "w", "h"))
        if not (x >= 0 and w >= 1 and x + w <= GRID_COLUMNS and y >= 0 and h >= 1):
            problems.append(f"{label}: gridPos {pos} outside the {GRID_COLUMNS}-column grid")
        else:
            for cx in range(x, x + w):
                for cy in range(y, y + h):
                    if (cx, cy) in cells:
                        problems.append(f"{label}: overlaps panel {cells[(cx, cy)]}")
                        break
                    cells[(cx, cy)] = panel.get("id", -1)
                else:
                    continue
                break
        refs = [panel.get("datasource", {})] + [t.get("datasource", {})
                                                for t in panel.get("targets") or []]
        for ref in refs:
            if ref != {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID}:
                problems.append(f"{label}: datasource {ref} is not the provisioned one")
        ref_ids = [t.get("refId") for t in panel.get("targets") or []]
        if len(ref_ids) != len(set(ref_ids)) or not ref_ids:
            problems.append(f"{label}: refIds {ref_ids} missing or not unique")
        for target in panel.get("targets") or []:
            query = target.get("query", "")
            if "$timeFilter" not in query:
                problems.append(f"{label}: query without $timeFilter: {query}")
            if not target.get("rawQuery"):
                problems.append(f"{label}: not a raw InfluxQL query")
            for variable in re.findall(r"\$([a-z]+)\b", query):
                if variable not in defined and f"${variable}" not in MACROS:
                    problems.append(f"{label}: uses ${variable}, which is not defined")
    for name, query in variable_queries(dashboard):
        if not query.startswith("SHOW TAG VALUES"):
            problems.append(f"variable {name}: not a SHOW TAG VALUES query")
    return problems + _check_annotations(dashboard, defined)


def check_names(query: str, schema: dict[str, MeasurementSchema]) -> list[str]:
    """Measurements, fields, tags and listed tag values the query names must be written."""
    try:
        names = parse_query(query)
    except ValueError as exc:
        return [str(exc)]
    problems = list(names.problems)
    if not names.measurements:
        return [*problems, f"no measurement in {query}"]
    known = [schema[m] for m in names.measurements if m in schema]
    problems += [f"measurement {m!r} is written by neither ingest, the indicator service "
                 "nor the alert service"
                 for m in names.measurements if m not in schema]
    if not known:
        return problems
    tags = {tag: values for s in known for tag, values in s.tags.items()}
    fields = set().union(*(s.fields for s in known)) | set(names.aliases)
    where = "/".join(names.measurements)
    for name in names.selected:
        if name not in fields and name not in tags:
            problems.append(f"{where} has no field {name!r}")
    for name, _op, literal in names.compared:
        if name in tags:
            allowed = tags[name]
            if allowed is not None and literal.startswith("'") and literal[1:-1] not in allowed:
                problems.append(f"{where}: tag {name!r} never has the value {literal}")
        elif name not in fields:
            problems.append(f"{where} has no tag or field {name!r}")
    for name in names.grouped:
        if name not in tags:
            problems.append(f"{where} has no tag {name!r} to group by")
    if names.show_key is not None and names.show_key not in tags:
        problems.append(f"{where} has no tag {names.show_key!r}")
    return problems
