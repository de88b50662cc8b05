"""City indicators as ISO 37120 / 37122 define them (issue 13), as pure functions, table-driven
at their edges: the annual means and their completeness, the daily means of the other
pollutants, response times against the SPM target, noise exposure and alert coverage."""

from __future__ import annotations

from typing import Any

import pytest

from indicators.city import CityInputs, Limits, city_points
from indicators.context import District, DistrictTable
from indicators.coverage import Subscription, covered_districts
from indicators.points import Point
from indicators.safety import ALL, SafetyEvent, response_minutes, response_stats, safety_points
from indicators.windows import Window
from kota.registry import Device

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = Window(1_700_000_000_000, 1_700_000_000_000 + 24 * HOUR, "1d")
# a 4-day "year" needing 3 valid days keeps the tables short; the arithmetic is the same
LIMITS = Limits(pm25_national=55.0, pm25_who=15.0, min_hours=18, live_min_hours=18,
                annual_days=4, annual_min_valid_share=0.75, response_target_min=15.0)
TABLE = DistrictTable([District("Menteng", 6.53, 68_000.0, 2020, "jakarta"),
                       District("Tebet", 9.03, 210_000.0, 2020, "jakarta")])


def by_scope(points: list[Point]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(p.tags["city"], p.tags.get("district", "")): p.fields for p in points}


def hours(count: int, **values: float) -> dict[int, dict[str, float]]:
    return {DAY.start_ms + h * HOUR: dict(values) for h in range(count)}


# -- annual means ----------------------------------------------------------------------------

@pytest.mark.parametrize(("earlier", "today_hours", "mean", "days", "complete"), [
    # three earlier valid days + a valid today: 4 of 4
    ([10.0, 20.0, 30.0], 24, 25.0, 4.0, True),
    # two earlier + today = 3 = ceil(0.75 * 4): complete at the edge
    ([10.0, 20.0], 18, 70 / 3, 3.0, True),
    # today has 17 hours: not a valid day, so 2 of 4
    ([10.0, 20.0], 17, 15.0, 2.0, False),
    # nothing earlier, a valid today
    ([], 24, 40.0, 1.0, False),
])
def test_the_annual_mean_is_the_mean_of_valid_daily_means(
        earlier: list[float], today_hours: int, mean: float, days: float,
        complete: bool) -> None:
    inputs = CityInputs(air={("jakarta", "Menteng"): {"a": hours(today_hours, pm25=40.0)}},
                        earlier_daily={("jakarta", "Menteng"): {"pm25": earlier}})
    point = by_scope(city_points(DAY, inputs, TABLE, LIMITS))[("jakarta", "Menteng")]
    assert point["pm25_annual_mean"] == pytest.approx(mean)
    assert point["pm25_annual_valid_days"] == days
    assert point["pm25_annual_complete"] is complete
    # the daily mean stays the project's own figure, written only for a valid day
    assert ("pm25_daily_mean" in point) is (today_hours >= 18)


def test_no_valid_day_no_annual_mean() -> None:
    inputs = CityInputs(air={("jakarta", "Menteng"): {"a": hours(5, pm25=40.0)}})
    point = by_scope(city_points(DAY, inputs, TABLE, LIMITS))[("jakarta", "Menteng")]
    assert "pm25_annual_mean" not in point and "pm25_annual_valid_days" not in point
    assert point["pm25_hours"] == 5.0 and point["complete"] is False


@pytest.mark.parametrize(("parameter", "count", "written"), [
    ("pm10", 18, True), ("pm10", 17, False), ("no2", 24, True), ("so2", 18, True),
    ("so2", 17, False), ("o3", 24, True),
])
def test_pm10_and_the_gases_have_daily_and_annual_means(parameter: str, count: int,
                                                         written: bool) -> None:
    inputs = CityInputs(air={("jakarta", "Tebet"): {"a": hours(count, **{parameter: 30.0}),
                                                    "b": hours(count, **{parameter: 50.0})}},
                        earlier_daily={("jakarta", "Tebet"): {parameter: [20.0]},
                                       ("jakarta", ""): {parameter: [20.0]}})
    points = by_scope(city_points(DAY, inputs, TABLE, LIMITS))
    for key in (("jakarta", "Tebet"), ("jakarta", "")):
        point = points[key]
        assert point[f"{parameter}_hours"] == float(count)
        if written:
            assert point[f"{parameter}_daily_mean"] == pytest.approx(40.0)
            assert point[f"{parameter}_annual_mean"] == pytest.approx(30.0)
            assert point[f"{parameter}_annual_valid_days"] == 2.0
        else:
            assert f"{parameter}_daily_mean" not in point
            assert point[f"{parameter}_annual_mean"] == pytest.approx(20.0)
        # PM2.5 is not measured here: the complete flag (PM2.5's) is false
        assert point["complete"] is False and "pm25_daily_mean" not in point


# -- response times --------------------------------------------------------------------------

@pytest.mark.parametrize(("minutes", "median", "p90", "within"), [
    ([], None, None, None),
    ([15.0], 15.0, 15.0, 1.0),            # exactly on the target is within it
    ([15.5], 15.5, 15.5, 0.0),
    ([5.0, 20.0], 12.5, 20.0, 0.5),
    ([float(m) for m in range(1, 11)], 5.5, 9.0, 1.0),   # nearest rank: the 9th of 10
    ([float(m) for m in range(1, 12)], 6.0, 10.0, 1.0),  # ceil(0.9 * 11) = 10th
    ([3.0, 30.0, 12.0, 60.0, 14.0], 14.0, 60.0, 0.6),
])
def test_response_stats(minutes: list[float], median: float | None, p90: float | None,
                        within: float | None) -> None:
    stats = response_stats(minutes, 15.0)
    assert stats.resolved == len(minutes)
    assert stats.median_min == median and stats.p90_min == p90
    assert stats.within_target_share == within


def event(minutes: float, kind: str, incident: str = "", district: str = "Menteng",
          ) -> SafetyEvent:
    return SafetyEvent(DAY.start_ms + int(minutes * MINUTE), "jakarta", district, "panic-a",
                       kind, incident)


@pytest.mark.parametrize(("events", "expected"), [
    # opened and resolved inside the day
    ([event(60, "fire", "i1"), event(72, "resolved", "i1")], {"fire": [12.0]}),
    # opened the day before, resolved today: counted today, by its first event's category
    ([event(-30, "smoke", "i1"), event(5, "fire", "i1"), event(10, "resolved", "i1")],
     {"smoke": [40.0]}),
    # resolved before the day: not today's response
    ([event(-30, "fire", "i1"), event(-10, "resolved", "i1"), event(10, "resolved", "i1")],
     {}),
    # resolved twice today: the first resolution counts
    ([event(0, "panic", "i1"), event(20, "resolved", "i1"), event(50, "resolved", "i1")],
     {"panic": [20.0]}),
    # no incident_id: cannot be resolved; a resolution whose opening is not in the events
    ([event(0, "panic"), event(5, "resolved"), event(30, "resolved", "gone")], {}),
    # resolved after the window: not yet
    ([event(60, "fire", "i1"), event(24 * 60 + 1, "resolved", "i1")], {}),
    # a self-test is never the opening event
    ([event(0, "test", "i1"), event(3, "fire", "i1"), event(9, "resolved", "i1")],
     {"fire": [6.0]}),
])
def test_response_minutes(events: list[SafetyEvent], expected: dict[str, list[float]]) -> None:
    got = response_minutes(DAY, events)
    want = {("jakarta", "Menteng", category): minutes for category, minutes in expected.items()}
    if want:
        want[("jakarta", "Menteng", ALL)] = [m for ms in expected.values() for m in ms]
    assert got == want


def test_safety_events_carry_responses_per_category_and_city() -> None:
    responses = {("jakarta", "Menteng", "fire"): [10.0, 20.0],
                 ("jakarta", "Menteng", ALL): [10.0, 20.0],
                 ("jakarta", "Tebet", "fire"): [30.0], ("jakarta", "Tebet", ALL): [30.0]}
    points = safety_points(DAY, {("jakarta", "Menteng", "fire"): (1.0, 1.0)},
                           [("jakarta", "Menteng")], TABLE, responses, 15.0)
    fields = {(p.tags["scope"], p.tags.get("district", ""), p.tags["event"]): p.fields
              for p in points}
    assert fields[("district", "Menteng", "fire")]["response_median_min"] == 15.0
    assert fields[("district", "Menteng", "fire")]["response_within_target_share"] == 0.5
    # Tebet had no event today, only a resolution: its row exists with 0 events
    assert fields[("district", "Tebet", "fire")]["events"] == 0.0
    assert fields[("district", "Tebet", "fire")]["resolved_incidents"] == 1.0
    city = fields[("city", "", "fire")]
    assert city["resolved_incidents"] == 3.0 and city["response_median_min"] == 20.0
    assert city["response_p90_min"] == 30.0
    assert pytest.approx(1 / 3) == city["response_within_target_share"]
    # an hour window carries no responses
    hour = safety_points(Window(DAY.start_ms, DAY.start_ms + HOUR, "1h"),
                         {("jakarta", "Menteng", "fire"): (1.0, 1.0)}, [], TABLE)
    assert all("resolved_incidents" not in p.fields for p in hour)


def test_city_indicators_carry_the_all_category_responses() -> None:
    inputs = CityInputs(responses={("jakarta", "Menteng", "fire"): [10.0],
                                   ("jakarta", "Menteng", ALL): [10.0, 40.0],
                                   ("jakarta", "Tebet", ALL): [5.0]})
    points = by_scope(city_points(DAY, inputs, TABLE, LIMITS))
    menteng = points[("jakarta", "Menteng")]
    assert menteng["resolved_incidents"] == 2.0 and menteng["response_median_min"] == 25.0
    assert menteng["response_within_target_share"] == 0.5
    assert menteng["response_target_min"] == 15.0
    city = points[("jakarta", "")]
    assert city["resolved_incidents"] == 3.0 and city["response_median_min"] == 10.0
    assert city["response_p90_min"] == 40.0
    assert points[("jakarta", "Tebet")]["response_within_target_share"] == 1.0


# -- noise -----------------------------------------------------------------------------------

def test_noise_exposure_counts_people_where_a_complete_device_exceeded() -> None:
    inputs = CityInputs(noise_days={("jakarta", "Menteng"): [(58.0, True), (50.0, False)],
                                    ("jakarta", "Tebet"): [(52.0, False)]})
    points = by_scope(city_points(DAY, inputs, TABLE, LIMITS))
    assert points[("jakarta", "Menteng")]["noise_population_share_exceeding"] == 1.0
    assert points[("jakarta", "Menteng")]["noise_devices_exceeding"] == 1.0
    assert points[("jakarta", "Menteng")]["noise_lsm_db_max"] == 58.0
    assert points[("jakarta", "Tebet")]["noise_population_share_exceeding"] == 0.0
    city = points[("jakarta", "")]
    assert city["noise_population_share_exceeding"] == pytest.approx(68 / 278)
    assert city["noise_devices_complete"] == 3.0


# -- alert coverage (ISO 37122) --------------------------------------------------------------

def device(device_id: str, kind: str, district: str, lat: float, lon: float,
           kelurahan: str = "") -> Device:
    return Device(device_id=device_id, kind=kind, city="jakarta", district=district,
                  kelurahan=kelurahan, lat=lat, lon=lon)


DEVICES = [device("air-m", "air", "Menteng", -6.200, 106.830, "Gondangdia"),
           device("water-t", "water", "Tebet", -6.230, 106.850, "Manggarai"),
           device("air-t", "air", "Tebet", -6.240, 106.860)]


@pytest.mark.parametrize(("subscription", "flood", "air"), [
    (Subscription(hazards=("flood",), districts=("tebet",)), {"Tebet"}, set()),
    # no hazard chosen: every public hazard
    (Subscription(districts=(" Menteng ",)), {"Menteng"}, {"Menteng"}),
    (Subscription(hazards=("air",), kelurahan=("gondangdia",)), set(), {"Menteng"}),
    (Subscription(hazards=("rain",), districts=("Tebet",)), set(), set()),
    # a point 0.5 km from Tebet's gauge: reached within 0.6 km, not within 0.4 km
    (Subscription(hazards=("flood",), lat=-6.2345, lon=106.85, radius_km=0.6), {"Tebet"}, set()),
    (Subscription(hazards=("flood",), lat=-6.2345, lon=106.85, radius_km=0.4), set(), set()),
    # the point is near Tebet's air station too, for air
    (Subscription(lat=-6.24, lon=106.8605, radius_km=0.1), set(), {"Tebet"}),
    # a district no device is in reaches nothing
    (Subscription(districts=("Gambir",)), set(), set()),
])
def test_which_districts_a_subscription_reaches(subscription: Subscription, flood: set[str],
                                                air: set[str]) -> None:
    coverage = covered_districts([subscription], DEVICES)
    assert {d for _, d in coverage["flood"]} == flood
    assert {d for _, d in coverage["air"]} == air


@pytest.mark.parametrize(("gauge_hours", "air_hours", "flood_subs", "air_subs", "flood", "air"), [
    # both sensed live and subscribed in Tebet; Menteng subscribed but nothing live
    (24.0, 24, {"Tebet": 2, "Menteng": 1}, {"Tebet": 1}, 210 / 278, 210 / 278),
    # the gauge live only 17 hours: no live flood sensing, no flood coverage
    (17.0, 24, {"Tebet": 2}, {"Tebet": 1}, 0.0, 210 / 278),
    # live sensing without a subscription is not access to alerts
    (24.0, 18, {}, {}, 0.0, 0.0),
    # the air station 17 hours: not live
    (24.0, 17, {"Tebet": 1}, {"Tebet": 1}, 210 / 278, 0.0),
])
def test_alert_coverage_needs_live_sensing_and_a_subscription(
        gauge_hours: float, air_hours: int, flood_subs: dict[str, int], air_subs: dict[str, int],
        flood: float, air: float) -> None:
    inputs = CityInputs(
        air={("jakarta", "Tebet"): {"air-t": hours(air_hours, pm25=20.0)}},
        gauge_hours={("jakarta", "Tebet"): [gauge_hours], ("jakarta", "Menteng"): [0.0]},
        alerting_gauge_hours={("jakarta", "Tebet"): [gauge_hours]},
        coverage={"flood": {("jakarta", d): n for d, n in flood_subs.items()},
                  "air": {("jakarta", d): n for d, n in air_subs.items()}})
    points = by_scope(city_points(DAY, inputs, TABLE, LIMITS))
    assert points[("jakarta", "")]["population_share_alerts_flood"] == pytest.approx(flood)
    assert points[("jakarta", "")]["population_share_alerts_air"] == pytest.approx(air)
    tebet = points[("jakarta", "Tebet")]
    assert tebet["alert_subscriptions_flood"] == float(flood_subs.get("Tebet", 0))
    assert tebet["population_share_alerts_flood"] == (1.0 if flood else 0.0)
    assert points[("jakarta", "Menteng")]["population_share_alerts_flood"] == 0.0


def test_without_a_database_the_coverage_fields_are_absent() -> None:
    inputs = CityInputs(gauge_hours={("jakarta", "Tebet"): [24.0]},
                        alerting_gauge_hours={("jakarta", "Tebet"): [24.0]})
    for fields in by_scope(city_points(DAY, inputs, TABLE, LIMITS)).values():
        assert not [name for name in fields if "alert" in name and name != "flood_gauge_alerting"]
