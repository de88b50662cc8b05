"""The upstream rule's routes in alerts/rules/jakarta.yaml carry the travel times of the one
table, kota/standards/gauges.yaml (travel_times), and the ispu rule falls back to the standards'
advice for a category it gives no text of its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kota.standards import load_gauges_table, load_ispu_table

RULES = Path(__file__).resolve().parents[2] / "alerts" / "rules" / "jakarta.yaml"
SHIPPED: dict[str, dict[str, Any]] = {
    rule["id"]: rule for rule in yaml.safe_load(RULES.read_text(encoding="utf-8"))["rules"]}
ROUTES = [route for rule in SHIPPED.values() if rule["kind"] == "upstream"
          for route in rule["routes"]]


def test_there_are_routes_to_check() -> None:
    assert len(ROUTES) >= 3


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r['upstream']}>{r['downstream']}")
def test_route_travel_h_equals_the_standards_table(route: dict[str, Any]) -> None:
    table = load_gauges_table()
    reported = table.travel_time(route["upstream"], route["downstream"])
    assert reported is not None, "a route with no travel time in kota/standards/gauges.yaml"
    assert tuple(route["travel_h"]) == reported.hours
    assert route["confidence"] == reported.confidence.value


def test_the_ispu_rules_advice_texts_default_to_the_standards() -> None:
    advice = SHIPPED["air-ispu"]["advice"]
    categories = {band.name for band in load_ispu_table().categories.bands}
    assert set(advice) <= categories
    # no text of its own: the alert's instruction is the standards' advice (test_rule_kinds)
    assert all("id" not in entry and "en" not in entry for entry in advice.values())
