"""The ``rise`` rule: a warning before the Siaga alert, from the rate of rise."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alerts.rules import RuleContext
from alerts.rules._contract import Reading
from alerts.rules.flood import RiseRule, RiseSettings
from kota.registry import Registry
from kota.standards import load_gauges_table

REGISTRY = Registry.load("simulators/cities/jakarta/devices.yaml")
SIAGA3_CM = load_gauges_table().gauges["manggarai"].siaga3.value_cm
T0 = datetime(2026, 2, 1, 0, 0, tzinfo=UTC)


def _reading(minutes: float, level_cm: float) -> Reading:
    at = T0 + timedelta(minutes=minutes)
    return Reading(city="jakarta", kind="water", device_id="water-manggarai",
                   fields={"level_cm": level_cm}, at=at, received_at=at, device_at=at,
                   device=REGISTRY.get("water-manggarai"))


@pytest.mark.parametrize(("rise_cm_per_h", "below_cm", "warned", "hours"), [
    (60, 100, True, 1.7),      # reaches Siaga 3 in 100/60 h
    (20, 100, False, 5.0),     # 5 h away: beyond lead_h 3
    (2, 4, False, None),       # slower than min_rise_cm_per_h: noise
    (-30, 100, False, None),   # falling
])
def test_warns_when_the_rise_reaches_siaga_3_within_the_lead_time(
        rise_cm_per_h: float, below_cm: float, warned: bool, hours: float | None) -> None:
    assert SIAGA3_CM is not None
    rule = RiseRule(RiseSettings(id="rise", kind="rise", lead_h=3), RuleContext(REGISTRY,
                                                                              "jakarta"))
    end = SIAGA3_CM - below_cm
    findings = []
    for step in range(7):   # an hour of readings every 10 min, ending at `end`
        level = end - rise_cm_per_h * (6 - step) / 6
        findings = list(rule.on_reading(_reading(step * 10, level)))
    finding = findings[0]
    assert finding.scope == "manggarai" and finding.grade == int(warned)
    assert finding.details["hours"] == hours
    if warned:
        text = rule.texts(finding)
        assert text["en-US"].headline == f"Pintu Air Manggarai: Siaga 3 in about {hours} h"


def test_no_warning_once_the_status_is_reached() -> None:
    assert SIAGA3_CM is not None
    rule = RiseRule(RiseSettings(id="rise", kind="rise"), RuleContext(REGISTRY, "jakarta"))
    rule.on_reading(_reading(0, SIAGA3_CM - 60))
    finding = rule.on_reading(_reading(30, SIAGA3_CM + 10))[0]
    assert finding.grade == 0
