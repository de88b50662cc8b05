"""The measurements, tags and fields that ingest and the indicator service write, so a test can
refuse a panel that reads a name nobody writes.

- Raw measurements: from each kind's ``kind.yaml`` (kota.kinds) plus the tags ingest adds
  (docs/protocol.md) and the fields it adds (``seq``, ``ts_from_receive``).
- ``kota_ingest``: ingest's own counters (``IngestCounters.fields()``); ``kota_deadletter``:
  the line ingest/service.py builds (docs/ingest.md).
- Indicator measurements: parsed from the tables and "Tags:"/"Fields:" lines of
  docs/indicators.md, because the indicators package exports no machine-readable schema. The
  test that runs the real indicator service checks that what it writes is in this parse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ingest.metrics import IngestCounters
from kota.kinds import KINDS

__all__ = ["INDICATORS_DOC", "MeasurementSchema", "indicator_schema", "raw_schema",
           "written_schema"]

INDICATORS_DOC = Path(__file__).resolve().parent.parent / "docs" / "indicators.md"
# Tags ingest puts on every raw point (docs/protocol.md, "Tags").
RAW_TAGS = ("city", "district", "kind", "device", "kelurahan")
RAW_EXTRA_FIELDS = ("seq", "ts_from_receive")
DEADLETTER_TAGS = ("reason", "kind", "device", "instance")
DEADLETTER_FIELDS = ("count", "detail", "payload")


@dataclass
class MeasurementSchema:
    """Tag names (with their allowed values where the source lists them) and field names."""

    name: str
    source: str
    tags: dict[str, frozenset[str] | None] = field(default_factory=dict)
    fields: set[str] = field(default_factory=set)


def raw_schema() -> dict[str, MeasurementSchema]:
    result = {}
    for kind in KINDS.values():
        spec = kind.spec
        schema = MeasurementSchema(spec.measurement, f"kota/kinds/{spec.name}/kind.yaml")
        schema.tags = {tag: None for tag in RAW_TAGS}
        schema.tags["kind"] = frozenset({spec.name})
        for tag, tag_spec in spec.tags.items():
            schema.tags[tag] = None if tag_spec.allow_other else frozenset(tag_spec.values)
        schema.fields = set(spec.fields) | set(RAW_EXTRA_FIELDS)
        result[spec.measurement] = schema
    result["kota_ingest"] = MeasurementSchema(
        "kota_ingest", "ingest/metrics.py IngestCounters.fields()", {"instance": None},
        set(IngestCounters().fields()))
    result["kota_deadletter"] = MeasurementSchema(
        "kota_deadletter", "ingest/service.py _deadletter_line (docs/ingest.md)",
        {tag: None for tag in DEADLETTER_TAGS}, set(DEADLETTER_FIELDS))
    return result


_SECTION = re.compile(r"^### `([a-z_0-9]+)`", re.MULTILINE)
_TICKED = re.compile(r"`([^`]+)`")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_PARENS = re.compile(r"\(([^()]*)\)")


def _names(text: str) -> list[str]:
    return [name for name in _TICKED.findall(text) if _NAME.match(name)]


def _tags(line: str) -> dict[str, frozenset[str] | None]:
    """``Tags: `window` (`1h`, `1d`), `scope=device`, `city` …`` → names and listed values."""
    tags: dict[str, frozenset[str] | None] = {}
    body = line.split(":", 1)[1]
    # Values in parentheses belong to the name just before them.
    for match in re.finditer(r"`([a-z_]+)(?:=([a-z0-9]+))?`\s*(\(([^()]*)\))?", body):
        name, fixed, _, inside = match.groups()
        before = body[:match.start()]
        if before.count("(") > before.count(")"):
            continue  # a value inside another tag's parentheses
        if fixed:
            tags[name] = frozenset({fixed})
        elif inside and name in ("window", "scope"):
            tags[name] = frozenset(v for v in _TICKED.findall(inside))
        else:
            tags[name] = None
    return tags


def _param_names(row: str) -> list[str]:
    """``ispu_<param>`` rows list the expansions in their meaning column."""
    return [name for name in _names(row) if "_" in name]


def _sentence(text: str) -> tuple[str, str]:
    """Split at the first full stop outside parentheses: (first sentence, the rest)."""
    depth = 0
    for index, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "." and depth == 0 and (index + 1 == len(text) or text[index + 1] == " "):
            return text[:index], text[index + 1:]
    return text, ""


def _items(body: str) -> list[str]:
    """Paragraphs and bullet items joined onto one line each; table rows kept as they are."""
    items: list[str] = []
    for paragraph in re.split(r"\n\s*\n", body):
        lines = [line for line in paragraph.splitlines() if line.strip()]
        if lines and lines[0].lstrip().startswith("|"):
            items.extend(line.strip() for line in lines)
            continue
        for line in lines:
            if line.startswith("- ") or not items or items[-1].startswith("|"):
                items.append(line.strip())
            else:
                items[-1] += " " + line.strip()
    return items


def _fields_after(marker: str, text: str) -> list[str]:
    """Names listed after ``marker``, up to the end of that sentence, outside parentheses."""
    listed, _ = _sentence(text.split(marker, 1)[1])
    return _names(_PARENS.sub("", listed))


def indicator_schema(doc: Path = INDICATORS_DOC) -> dict[str, MeasurementSchema]:
    text = doc.read_text(encoding="utf-8")
    result: dict[str, MeasurementSchema] = {}
    params: list[str] = []
    for chapter in re.split(r"^## ", text, flags=re.MULTILINE):
        sections = list(_SECTION.finditer(chapter))
        for index, match in enumerate(sections):
            name = match.group(1)
            end = sections[index + 1].start() if index + 1 < len(sections) else len(chapter)
            schema = MeasurementSchema(name, f"docs/indicators.md, section {name}")
            heading_end = chapter.find("\n", match.end())
            for item in _items(chapter[heading_end:end]):
                if item.startswith("Tags as `"):
                    schema.tags = dict(result[_TICKED.findall(item)[0]].tags)
                if item.startswith("Tags:"):
                    tags_text, rest = _sentence(item)
                    schema.tags = _tags(tags_text)
                    if "Fields:" in rest:
                        schema.fields.update(_fields_after("Fields:", rest))
                elif "Fields:" in item:
                    schema.fields.update(_fields_after("Fields:", item))
                elif item.startswith("|") and not item.startswith("|---"):
                    cells = [cell.strip() for cell in item.strip("|").split("|")]
                    if not cells[0].startswith("`"):
                        continue  # header row
                    for candidate in _TICKED.findall(cells[0]):
                        if candidate.endswith("_<param>"):
                            expanded = _param_names(cells[-1])
                            if expanded:
                                params = [n.split("_", 1)[1] for n in expanded]
                            prefix = candidate[: -len("<param>")]
                            schema.fields.update(prefix + p for p in params)
                        elif _NAME.match(candidate):
                            schema.fields.add(candidate)
                elif " plus `" in item:
                    schema.fields.update(_fields_after(" plus ", item))
            if schema.tags or schema.fields:
                result[name] = schema
    return result


def written_schema(doc: Path = INDICATORS_DOC) -> dict[str, MeasurementSchema]:
    """Every measurement a panel may read: raw, ingest's own, and the indicators'."""
    return {**raw_schema(), **indicator_schema(doc)}
