"""Which subscribers an alert version is for (alerts/subscriptions/match.py): table-driven over
the Manggarai sample alert (Tebet and Matraman, a 3 km circle around the floodgate)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from alert_samples import flood_view

from alerts.model import Area
from alerts.subscriptions.match import (
    Criteria,
    haversine_km,
    matches,
    point_in_polygon,
    severities_at_most,
)
from alerts.subscriptions.notifier import quiet_until

MANGGARAI = (-6.2086, 106.8497)
# About 5.0 km due south of the floodgate (1° of latitude ≈ 111.2 km).
FIVE_KM_SOUTH = (-6.2086 - 5.0 / 111.195, 106.8497)
SQUARE = ((-6.30, 106.80), (-6.30, 106.90), (-6.20, 106.90), (-6.20, 106.80))


def who(**fields: Any) -> Criteria:
    return Criteria(id=1, **fields)


@pytest.mark.parametrize(("criteria", "view_changes", "expected"), [
    # the area
    (who(districts=("Tebet",)), {}, True),
    (who(districts=("tebet ",)), {}, True),                       # case and spaces
    (who(districts=("Menteng",)), {}, False),
    (who(kelurahan=("Manggarai",)), {}, True),                    # named in the description
    (who(kelurahan=("Kampung Melayu",)), {}, False),
    (who(kelurahan=("Bukit Duri",)),
     {"area": Area(description="Kampung Melayu, Bukit Duri, Tebet")}, True),
    (who(kelurahan=("Duri",)), {"area": Area(description="Duri Kepa, Kebon Jeruk")}, True),
    (who(kelurahan=("Duri Kepa",)), {"area": Area(description="Duri Kosambi")}, False),
    (who(kelurahan=("Cawang",)), {"details": {"kelurahan": ["Cawang", "Cililitan"]}}, True),
    (who(lat=MANGGARAI[0], lon=MANGGARAI[1], radius_km=0.0), {}, True),
    (who(lat=FIVE_KM_SOUTH[0], lon=FIVE_KM_SOUTH[1], radius_km=1.0), {}, False),   # 5 > 3 + 1
    (who(lat=FIVE_KM_SOUTH[0], lon=FIVE_KM_SOUTH[1], radius_km=2.1), {}, True),    # 5 ≤ 3 + 2.1
    (who(lat=-6.25, lon=106.85, radius_km=0.0),
     {"area": Area(description="a square", polygon=SQUARE)}, True),
    (who(lat=-6.10, lon=106.85, radius_km=0.0),
     {"area": Area(description="a square", polygon=SQUARE)}, False),
    (who(), {}, False),                                           # no area at all
    # hazards and severity
    (who(districts=("Tebet",), hazards=("air",)), {}, False),
    (who(districts=("Tebet",), hazards=("air", "flood")), {}, True),
    (who(districts=("Tebet",), min_severity="Severe"), {}, True),      # the sample is Severe
    (who(districts=("Tebet",), min_severity="Extreme"), {}, False),
    (who(districts=("Tebet",), min_severity="Extreme"), {"severity": "Extreme"}, True),
    (who(districts=("Tebet",)), {"severity": "Unknown"}, False),
    # never: not active, not for the public, a drill, a hazard that is never public
    (who(districts=("Tebet",), status="pending"), {}, False),
    (who(districts=("Tebet",), status="unsubscribed"), {}, False),
    (who(districts=("Tebet",)), {"audience": "operators"}, False),
    (who(districts=("Tebet",)), {"audience": "field"}, False),
    (who(districts=("Tebet",)), {"cap_status": "Exercise"}, False),
    (who(districts=("Tebet",)), {"cap_status": "Test"}, False),
    (who(districts=("Tebet",)), {"hazard": "safety", "audience": "operators"}, False),
    (who(districts=("Tebet",)), {"hazard": "safety"}, True),          # a public fire alert
    (who(districts=("Tebet",), hazards=("flood",)), {"hazard": "safety"}, False),
    (who(districts=("Tebet",)), {"hazard": "device"}, False),
    (who(districts=("Tebet",)), {"hazard": "air"}, True),
])
def test_matches(criteria: Criteria, view_changes: dict[str, Any], expected: bool) -> None:
    assert matches(criteria, replace(flood_view(), **view_changes)) is expected


def test_haversine_one_degree_of_latitude_and_monas_to_manggarai() -> None:
    assert haversine_km(0, 0, 1, 0) == pytest.approx(111.195, abs=0.01)
    # Monas (-6.1754, 106.8272) to the Manggarai floodgate: about 4.45 km.
    assert haversine_km(-6.1754, 106.8272, *MANGGARAI) == pytest.approx(4.45, abs=0.05)


def test_point_in_polygon_edges() -> None:
    assert point_in_polygon(-6.25, 106.85, SQUARE)
    assert not point_in_polygon(-6.25, 106.95, SQUARE)
    assert not point_in_polygon(-6.25, 106.85, SQUARE[:2])   # not a polygon


def test_severities_at_most_is_the_cap_order() -> None:
    assert severities_at_most("Severe") == ["Unknown", "Minor", "Moderate", "Severe"]
    assert severities_at_most("Minor") == ["Unknown", "Minor"]


WIB = ZoneInfo("Asia/Jakarta")


@pytest.mark.parametrize(("local_hour", "start", "end", "until_local_hour"), [
    (23, 22, 6, 6), (3, 22, 6, 6), (6, 22, 6, None), (21, 22, 6, None),
    (13, 12, 14, 14), (14, 12, 14, None), (10, 5, 5, None), (10, None, 6, None),
])
def test_quiet_hours(local_hour: int, start: int | None, end: int | None,
                     until_local_hour: int | None) -> None:
    now = datetime(2026, 1, 15, local_hour, 30, tzinfo=WIB).astimezone(UTC)
    until = quiet_until(now, start, end, WIB)
    if until_local_hour is None:
        assert until is None
    else:
        assert until is not None and until > now
        assert until.astimezone(WIB).hour == until_local_hour
        assert until - now <= (datetime(2026, 1, 16, 0, 0) - datetime(2026, 1, 15, 0, 0))
