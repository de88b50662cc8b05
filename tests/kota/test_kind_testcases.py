"""Golden test cases of every sensor kind (Telegraf's ``testcases/`` pattern) and the kind docs.

``kota/kinds/<kind>/testcases/<scenario>/`` holds one MQTT message and what ingest must make of
it; the layout is described in kota/kinds/README.md. One test walks them all, so adding a case is
adding a folder.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from kota.kinds import KINDS, KINDS_DIR
from kota.kinds._readme import generated_section, render_section
from kota.lineproto import split_lines
from kota.payload import REASONS, MessageParser, ParseRules
from kota.registry import Registry

RECEIVED_MS = 1_768_446_000_000  # 2026-01-15T03:00:00Z, 10:00 WIB: the receive time of every case
CASE_FILES = {"input.json", "expected.lp", "expected.err", "registry.yaml", "registry.csv",
              "case.yaml"}
CASE_KEYS = {"topic", "received_ms", "rules"}

CASES = sorted(path for path in KINDS_DIR.glob("*/testcases/*") if path.is_dir())

# Scenarios every kind must have; kinds add their own (water's derived level, safety's tag ...).
REQUIRED_SCENARIOS = {
    "valid_object", "valid_batch", "ts_seconds", "ts_milliseconds", "ts_rfc3339_offset",
    "ts_missing", "range_at_edges", "out_of_range_below_min", "out_of_range_above_max",
    "wrong_type", "unknown_field", "bad_timestamp", "timestamp_future", "timestamp_too_old",
    "bad_seq", "not_json", "not_object", "batch_too_large", "oversized",
    "registry_mismatch_kind", "unknown_device_strict", "bad_topic",
}
KIND_SCENARIOS = {
    "water": {"derived_level_from_distance", "derived_level_edges",
              "derived_level_no_mount_height", "derived_level_sent_level_wins"},
    "safety": {"bad_tag", "event_only", "message_escaping", "message_length_limit"},
    "status": {"last_will", "firmware_length_limit", "bool_wrong_type"},
}
# Kinds where an element can carry no measured value (safety's required tag comes first).
NO_FIELDS_KINDS = set(KINDS) - {"safety"}


def _case_id(case: Path) -> str:
    return f"{case.parent.parent.name}/{case.name}"


def _read_lines(path: Path) -> list[str]:
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".lp":  # a string field may hold a newline: split as InfluxDB does
        return split_lines(text)
    return [line for line in text.splitlines() if line.strip()]


def _split_unquoted(text: str, separator: str) -> list[str]:
    """Split on ``separator`` where it is neither backslash-escaped nor inside a string field."""
    parts, current, quoted, i = [], [], False, 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            current.append(text[i:i + 2])
            i += 2
            continue
        if char == '"':
            quoted = not quoted
        if char == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    parts.append("".join(current))
    return parts


def canonical(line: str) -> tuple[str, list[str], str]:
    """(series, field tokens sorted, timestamp): field order means nothing to InfluxDB, so the
    golden files pin every field's exact text but not the order of the fields."""
    series, fields, timestamp = _split_unquoted(line, " ")
    return series, sorted(_split_unquoted(fields, ",")), timestamp


def _case_config(case: Path) -> dict[str, Any]:
    path = case / "case.yaml"
    config: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() \
        else {}
    return config


def test_cases_were_found() -> None:
    assert {case.parent.parent.name for case in CASES} == set(KINDS)


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_testcase(case: Path) -> None:
    kind = case.parent.parent.name
    config = _case_config(case)
    registries = [path for path in (case / "registry.yaml", case / "registry.csv")
                  if path.exists()]
    assert len(registries) <= 1, "a case has one registry file"
    registry = Registry.load(registries[0]) if registries else Registry()
    parser = MessageParser(registry, ParseRules(**config.get("rules", {})))
    topic = config.get("topic", f"kota/jakarta/{kind}/test-{kind}-1")
    parsed = parser.parse(topic, (case / "input.json").read_bytes(),
                          int(config.get("received_ms", RECEIVED_MS)))

    rejections = [r.reason if r.index is None else f"{r.reason} {r.index}"
                  for r in parsed.rejections]
    expected_lines = _read_lines(case / "expected.lp")
    assert [canonical(line) for line in parsed.lines] == \
        [canonical(line) for line in expected_lines], parsed.lines
    assert rejections == _read_lines(case / "expected.err"), [r.detail for r in parsed.rejections]


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_testcase_layout(case: Path) -> None:
    files = {path.name for path in case.iterdir()}
    assert files <= CASE_FILES, f"unexpected files {sorted(files - CASE_FILES)}"
    assert "input.json" in files
    assert files & {"expected.lp", "expected.err"}, "a case needs expected.lp or expected.err"
    assert set(_case_config(case)) <= CASE_KEYS
    for line in _read_lines(case / "expected.lp"):
        _series, fields, timestamp = canonical(line)
        assert fields and timestamp.isdigit(), line
    for line in _read_lines(case / "expected.err"):
        reason, _, index = line.partition(" ")
        assert reason in REASONS, line
        assert index == "" or index.isdigit(), line


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_kind_has_required_scenarios(kind: str) -> None:
    scenarios = {path.name for path in (KINDS_DIR / kind / "testcases").iterdir()}
    required = REQUIRED_SCENARIOS | KIND_SCENARIOS.get(kind, set())
    if kind in NO_FIELDS_KINDS:
        required.add("no_fields")
    assert required - scenarios == set()


def test_every_reason_has_a_testcase() -> None:
    covered = {line.split(" ")[0] for case in CASES for line in _read_lines(case / "expected.err")}
    # unknown_kind cannot live in a kind's folder; tests/kota/test_payload_properties.py covers it.
    assert set(REASONS) - {"unknown_kind"} - covered == set()


def test_every_kind_folder_is_registered() -> None:
    folders = {path.name for path in KINDS_DIR.iterdir()
               if path.is_dir() and not path.name.startswith(("_", "."))}
    assert folders == set(KINDS)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_readme_matches_kind_yaml(kind: str) -> None:
    folder = KINDS_DIR / kind
    readme = (folder / "README.md").read_text(encoding="utf-8")
    sample = (folder / "sample.json").read_text(encoding="utf-8")
    section = generated_section(readme)
    documented = re.findall(r"^\| `([a-z0-9_]+)` \| [^|]+ \| (?:float|string|bool) \|", section,
                            re.MULTILINE)
    assert documented == list(KINDS[kind].spec.fields), \
        "README field list differs from kind.yaml: run python -m kota.kinds._readme"
    assert section == render_section(KINDS[kind].spec, sample), \
        "README tables are stale: run python -m kota.kinds._readme"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_sample_is_accepted(kind: str) -> None:
    raw = (KINDS_DIR / kind / "sample.json").read_bytes()
    sample = json.loads(raw)
    parsed = MessageParser().parse(f"kota/jakarta/{kind}/sample-{kind}-1", raw, RECEIVED_MS)
    assert parsed.rejections == []
    assert len(parsed.lines) == 1
    line = parsed.lines[0]
    assert "ts_from_receive" not in line, "the sample should carry its own ts"
    spec = KINDS[kind].spec
    measured = [key for key in sample if key in spec.fields]
    assert measured, "the sample should carry at least one field"
    for key in measured:
        assert re.search(rf"[ ,]{key}=", line), key
