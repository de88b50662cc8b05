"""The rules file loader (alerts/rules/__init__.py, ``load_rules``): every problem is one line
that names the rule, the setting and file:line; nothing is kept from a file with a problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerts.rules import (
    DEFAULT_RULES_FILE,
    RULE_KINDS,
    RuleContext,
    RulesError,
    RuleSettings,
    _known_fields,
    load_rules,
)
from kota.registry import Registry

REPO = Path(__file__).resolve().parents[2]
CONTEXT = RuleContext(Registry.load(REPO / "simulators" / "cities" / "jakarta" / "devices.yaml"),
                      "jakarta")


def problem(tmp_path: Path, text: str) -> tuple[Path, str]:
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RulesError) as caught:
        load_rules(path, CONTEXT)
    return path, str(caught.value)


def test_an_unknown_kind_lists_the_known_kinds(tmp_path: Path) -> None:
    path, message = problem(tmp_path, "rules:\n  - id: wave\n    kind: tsunami\n")
    assert f"rule wave ({path}:3): unknown kind 'tsunami'" in message
    known = message.split("known kinds: ")[1].split(", ")
    assert sorted(known) == sorted(RULE_KINDS)


@pytest.mark.parametrize(("setting", "value", "line", "words"), [
    ("hysteresis_cm", "-5", 5, "greater than or equal to 0"),
    ("fire_at_status", "7", 5, "3, 2 or 1"),
    ("pending_s", "soon", 5, "valid number"),
    ("hysteresis_cn", "10", 5, "Extra inputs are not permitted"),   # a misspelt setting
])
def test_a_bad_setting_names_the_rule_the_setting_and_its_line(
        tmp_path: Path, setting: str, value: str, line: int, words: str) -> None:
    path, message = problem(tmp_path, (
        "rules:\n"
        "  - id: low-battery\n    kind: battery\n"
        f"  - id: flood-a\n    {setting}: {value}\n    kind: siaga\n"))
    lines = message.splitlines()
    assert lines[0] == f"{path}: 1 problem(s) in the rules:"
    assert lines[1].strip().startswith(f"rule flood-a: {setting} ({path}:{line}): ")
    assert words in lines[1]
    assert "Traceback" not in message


def test_a_setting_inside_a_list_points_at_its_own_line(tmp_path: Path) -> None:
    path, message = problem(tmp_path, (
        "rules:\n"
        "  - id: up\n    kind: upstream\n    routes:\n"
        "      - {upstream: katulampa, downstream: depok, travel_h: [3, 5], source: news}\n"
        "      - upstream: depok\n        downstream: manggarai\n        travel_h: [4]\n"
        "        source: derived\n"))
    [line] = [line for line in message.splitlines() if "rule up:" in line]
    assert line.strip().startswith("rule up: routes.1.travel_h")
    assert f"({path}:8)" in line


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path, message = problem(tmp_path, (
        "rules:\n"
        "  - id: a\n    kind: battery\n    below_pct: 200\n"
        "  - id: b\n    kind: nope\n"))
    assert message.splitlines()[0] == f"{path}: 2 problem(s) in the rules:"
    assert f"rule a: below_pct ({path}:4)" in message
    assert f"rule b ({path}:6): unknown kind 'nope'" in message


def test_a_duplicate_id_names_the_second_one(tmp_path: Path) -> None:
    path, message = problem(tmp_path, (
        "rules:\n  - id: twice\n    kind: battery\n  - id: twice\n    kind: clock\n"))
    assert f"rule twice ({path}:4): the id is used twice" in message


def test_an_unknown_message_figure_lists_the_figures_of_the_kind(tmp_path: Path) -> None:
    path, message = problem(tmp_path, (
        "rules:\n  - id: low-battery\n    kind: battery\n    messages:\n"
        "      id-ID: {headline: 'Baterai {voltage}', description: '{device}'}\n"))
    assert f"rule low-battery ({path}:4): unknown figure(s) voltage in the messages" in message
    figures = message.split("this kind has: ")[1].split(", ")
    assert "battery" in figures and "device" in figures and "voltage" not in figures


def test_a_known_figure_in_own_messages_loads(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - id: low-battery\n    kind: battery\n    messages:\n"
                    "      id-ID: {headline: 'Baterai {battery}', description: '{device}'}\n",
                    encoding="utf-8")
    [rule] = load_rules(path, CONTEXT)
    assert rule.messages["id-ID"].headline == "Baterai {battery}"


def test_broken_yaml_is_one_line_with_the_line_number(tmp_path: Path) -> None:
    path, message = problem(tmp_path, "rules:\n  - id: a\n    kind: [battery\n")
    assert "\n" not in message
    assert message.startswith(f"{path}:3: not valid YAML")


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "rules:\n", "rules: []\n",
                                  "- id: a\n  kind: battery\n"])
def test_an_empty_file_or_rule_list_is_refused(tmp_path: Path, text: str) -> None:
    path, message = problem(tmp_path, text)
    assert "\n" not in message
    assert str(path) in message and "rules" in message


def test_a_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="cannot read the rules file") as caught:
        load_rules(tmp_path / "absent.yaml", CONTEXT)
    assert "\n" not in str(caught.value)


def test_a_kind_check_after_validation_names_the_rule(tmp_path: Path) -> None:
    # The hourly BMKG scale has no "Ekstrem" (kota/standards/bmkg_rain.yaml).
    path, message = problem(tmp_path, "rules:\n  - id: rain-a\n    kind: rain\n"
                                      "    fire_at: {1h: Ekstrem, 1d: Lebat}\n")
    assert f"rule rain-a ({path}:2): fire_at.1h: 'Ekstrem' is not a BMKG category" in message


def test_a_disabled_rule_is_validated_but_not_loaded(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - id: a\n    kind: battery\n    enabled: false\n"
                    "  - id: b\n    kind: clock\n", encoding="utf-8")
    assert [rule.id for rule in load_rules(path, CONTEXT)] == ["b"]
    path.write_text("rules:\n  - id: a\n    kind: battery\n    enabled: false\n"
                    "    below_pct: -1\n", encoding="utf-8")
    with pytest.raises(RulesError, match="below_pct"):
        load_rules(path, CONTEXT)


def test_the_shipped_rules_load_and_each_says_where_its_numbers_come_from() -> None:
    rules = load_rules(DEFAULT_RULES_FILE, CONTEXT)
    assert len(rules) >= len(RULE_KINDS)
    assert {rule.settings.kind for rule in rules} == set(RULE_KINDS)
    for rule in rules:
        assert rule.settings.source.strip(), f"rule {rule.id} has no source"


def test_the_readme_names_every_kind_setting_and_figure() -> None:
    readme = (REPO / "alerts" / "rules" / "README.md").read_text(encoding="utf-8")
    sections = readme.split("\n### ")
    common = set(RuleSettings.model_fields)
    for name in common:
        assert f"| `{name}` |" in sections[0], f"README: common setting {name}"
    for name, kind in RULE_KINDS.items():
        [section] = [s for s in sections[1:] if s.startswith(f"`{name}`")]
        for setting in set(kind.settings_model.model_fields) - common:
            assert f"`{setting}`" in section, f"README {name}: setting {setting}"
        for figure in _known_fields(kind):
            assert f"`{figure}`" in section.split("Figures:")[1], f"README {name}: {figure}"
