"""Rule kinds, one module each, and the rules file that configures them (``alerts.rules_file``;
the shipped default is alerts/rules/jakarta.yaml). A new kind is a :class:`RuleKind` subclass in
a module here plus one line in ``RULE_KINDS``; the contract is in ``_contract.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from alerts.rules._contract import (
    Finding,
    Reading,
    RuleContext,
    RuleKind,
    RuleSettings,
    Template,
    template_fields,
)
from alerts.rules.air import IspuRule, RainRule
from alerts.rules.device import BatteryRule, ClockRule, OfflineRule
from alerts.rules.flood import RiseRule, SiagaRule, UpstreamRule
from alerts.rules.safety import IncidentOpenRule, SafetyEventRule
from kota.config import line_numbers, yaml_problem

__all__ = ["DEFAULT_RULES_FILE", "RULE_KINDS", "Finding", "Reading", "RuleContext",
           "RuleKind", "RuleSettings", "RulesError", "load_rules"]

RULES_DIR = Path(__file__).resolve().parent
DEFAULT_RULES_FILE = RULES_DIR / "jakarta.yaml"

RULE_KINDS: dict[str, type[RuleKind[Any]]] = {
    kind.kind: kind for kind in (SiagaRule, RiseRule, UpstreamRule, IspuRule, RainRule,
                                 SafetyEventRule, IncidentOpenRule, OfflineRule, BatteryRule,
                                 ClockRule)}


class RulesError(ValueError):
    """A rules file that cannot be used; the message names the file, the rule and the line."""


class _RulesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[dict[str, Any]] = Field(min_length=1)


def _where(path: Path, lines: dict[tuple[str, ...], int], loc: tuple[str, ...]) -> str:
    line = next((lines[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in lines), None)
    return f"{path}:{line}" if line else str(path)


def load_rules(path: Path | str, context: RuleContext) -> list[RuleKind[Any]]:
    """Every enabled rule of the file, validated. Raises :class:`RulesError` (one line per
    problem) and keeps nothing when any rule is wrong: a half-loaded rule set would silently
    drop alerts."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        document = yaml.safe_load(text)
        lines = line_numbers(text)
    except OSError as exc:
        raise RulesError(f"{path}: cannot read the rules file: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise RulesError(yaml_problem(path, exc)) from None
    if not isinstance(document, dict):
        raise RulesError(f"{path}: expected a mapping with `rules:` (a list of rules)")
    try:
        parsed = _RulesFile.model_validate(
            {key: value for key, value in document.items() if not str(key).startswith("_")})
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = tuple(str(part) for part in error["loc"])
        raise RulesError(f"{'.'.join(loc)} ({_where(path, lines, loc)}): {error['msg']}") \
            from None
    problems: list[str] = []
    rules: list[RuleKind[Any]] = []
    seen: set[str] = set()
    for index, raw in enumerate(parsed.rules):
        base = ("rules", str(index))
        name = str(raw.get("id", f"#{index + 1}")) if isinstance(raw, dict) else f"#{index + 1}"
        kind_name = raw.get("kind") if isinstance(raw, dict) else None
        kind = RULE_KINDS.get(str(kind_name))
        if kind is None:
            problems.append(f"rule {name} ({_where(path, lines, (*base, 'kind'))}): unknown kind "
                            f"{kind_name!r}; known kinds: {', '.join(RULE_KINDS)}")
            continue
        try:
            settings = kind.settings_model.model_validate(raw)
        except ValidationError as exc:
            for error in exc.errors():
                loc = tuple(str(part) for part in error["loc"])
                problems.append(f"rule {name}: {'.'.join(loc)} "
                                f"({_where(path, lines, (*base, *loc))}): {error['msg']}")
            continue
        if settings.id in seen:
            problems.append(f"rule {name} ({_where(path, lines, (*base, 'id'))}): the id is "
                            "used twice")
            continue
        seen.add(settings.id)
        unknown = _unknown_fields(kind, settings.messages)
        if unknown:
            problems.append(f"rule {name} ({_where(path, lines, (*base, 'messages'))}): "
                            f"unknown figure(s) {', '.join(sorted(unknown))} in the messages; "
                            f"this kind has: {', '.join(sorted(_known_fields(kind)))}")
            continue
        if not settings.enabled:
            continue
        try:
            rules.append(kind(settings, context))
        except (ValueError, OSError) as exc:
            problems.append(f"rule {name} ({_where(path, lines, base)}): {exc}")
    if problems:
        raise RulesError(f"{path}: {len(problems)} problem(s) in the rules:\n  "
                         + "\n  ".join(problems))
    return rules


def _known_fields(kind: type[RuleKind[Any]]) -> set[str]:
    defaults = {language: Template(**texts) for language, texts in kind.default_messages.items()}
    return set(kind.detail_fields) | template_fields(defaults)


def _unknown_fields(kind: type[RuleKind[Any]], messages: dict[str, Template] | None) -> set[str]:
    if not messages:
        return set()
    return template_fields(messages) - _known_fields(kind)
