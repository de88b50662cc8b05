"""The indicator service's US AQI points (indicators/air.py ``aqi_points``), from hourly means:
which concentration each pollutant's table gets in an hour and in a day, the sub-indices, the
responsible pollutant, the EPA colour, completeness and the district and city summaries.

Pure functions: the expected values come from kota.indices.aqi, itself tested at every
breakpoint in tests/kota/test_indices_aqi.py; what is tested here is the choice of hours.
"""

from __future__ import annotations

import math

import pytest

from indicators.air import aqi_points
from indicators.queries import DeviceKey
from indicators.settings import AirSettings
from indicators.windows import HOUR_MS, Window
from kota.indices import aqi

DAY_END = 1_700_006_400_000 - 1_700_006_400_000 % (24 * HOUR_MS)  # a UTC midnight
HOUR = Window(DAY_END - HOUR_MS, DAY_END, "1h")
DAY = Window(DAY_END - 24 * HOUR_MS, DAY_END, "1d")
A = DeviceKey("jakarta", "Menteng", "air-a")
B = DeviceKey("jakarta", "Menteng", "air-b")
C = DeviceKey("jakarta", "Tebet", "air-c")
SETTINGS = AirSettings()


def series(values: list[float | None], parameter: str) -> dict[int, dict[str, float]]:
    """Hourly means ending at DAY_END, oldest first."""
    start = DAY_END - len(values) * HOUR_MS
    return {start + i * HOUR_MS: {parameter: v} for i, v in enumerate(values) if v is not None}


def merge(*parts: dict[int, dict[str, float]]) -> dict[int, dict[str, float]]:
    hours: dict[int, dict[str, float]] = {}
    for part in parts:
        for hour, values in part.items():
            hours.setdefault(hour, {}).update(values)
    return hours


def device_point(points: list, key: DeviceKey) -> dict:
    (point,) = [p for p in points if p.tags["scope"] == "device"
                and p.tags["device"] == key.device]
    return point.fields


PM25 = [12.0 + 1.5 * h for h in range(24)]   # rising: the NowCast is not the 24-h mean
O3 = [60.0 + 4.0 * h for h in range(24)]     # µg/m³
CO = [3000.0 + 100.0 * h for h in range(24)]
NO2 = [40.0 + 2.0 * h for h in range(24)]
SO2 = [20.0 + 1.0 * h for h in range(24)]


def station() -> dict[int, dict[str, float]]:
    return merge(series(PM25, "pm25"), series([40.0] * 24, "pm10"), series(O3, "o3"),
                 series(CO, "co"), series(NO2, "no2"), series(SO2, "so2"))


def test_the_hour_uses_nowcast_for_pm_and_each_table_s_window() -> None:
    fields = device_point(aqi_points(HOUR, {A: station()}, SETTINGS), A)
    expected = aqi.overall_aqi({
        "pm25": aqi.nowcast(PM25).concentration_ugm3,
        "pm10": 40.0,
        "o3_8h": math.fsum(O3[-8:]) / 8, "o3_1h": O3[-1],
        "co": math.fsum(CO[-8:]) / 8, "no2": NO2[-1], "so2_1h": SO2[-1],
        "so2_24h": math.fsum(SO2) / 24})
    assert expected.aqi is not None and expected.category is not None
    for parameter, sub in expected.sub_indices.items():
        assert fields[f"aqi_{parameter}"] == float(sub.aqi), parameter
        assert fields[f"conc_{parameter}"] == pytest.approx(sub.concentration_ugm3)
    assert fields["basis_pm25"] == "nowcast" and fields["basis_o3"] == "8h"
    assert fields["basis_no2"] == "1h" and fields["basis_co"] == "8h"
    assert fields["aqi"] == float(expected.aqi)
    assert fields["responsible_pollutant"] == expected.responsible == "pm25"
    assert (fields["category"], fields["hex"]) == (expected.category.name, expected.category.hex)
    assert fields["complete"] is True and fields["insufficient"] == ""
    assert fields["aqi_at_least"] is False
    # The NowCast of the rising series is above its 24-h mean, so the index is too.
    assert fields["aqi_pm25"] > aqi.us_aqi("pm25", math.fsum(PM25) / 24).aqi


def test_the_day_uses_24_h_means_and_daily_maxima() -> None:
    fields = device_point(aqi_points(DAY, {A: station()}, SETTINGS), A)
    rolling_o3 = [math.fsum(O3[max(0, i - 7):i + 1]) / len(O3[max(0, i - 7):i + 1])
                  for i in range(24)]
    # The first hours' 8-h means lack hours before the day (none in the data): 6 of 8 needed.
    valid_o3 = [m for i, m in enumerate(rolling_o3) if i + 1 >= 6]
    expected = aqi.overall_aqi({
        "pm25": math.fsum(PM25) / 24, "pm10": 40.0,
        "o3_8h": max(valid_o3), "o3_1h": max(O3),
        "co": max(math.fsum(CO[max(0, i - 7):i + 1]) / len(CO[max(0, i - 7):i + 1])
                  for i in range(5, 24)),
        "no2": max(NO2), "so2_1h": max(SO2), "so2_24h": math.fsum(SO2) / 24})
    for parameter, sub in expected.sub_indices.items():
        assert fields[f"aqi_{parameter}"] == float(sub.aqi), parameter
        assert fields[f"conc_{parameter}"] == pytest.approx(sub.concentration_ugm3)
    assert fields["basis_pm25"] == "24h" and fields["basis_o3"] == "8h"
    assert fields["complete"] is True


def test_a_gap_in_the_newest_hours_leaves_pm_without_an_index() -> None:
    # 22 hours, then the two newest missing: no NowCast (2 of the 3 newest needed).
    fields = device_point(aqi_points(HOUR, {B: series([30.0] * 22 + [None, None], "pm25")},
                                     SETTINGS), B)
    assert fields["complete"] is False and fields["insufficient"] == "pm25"
    assert "aqi" not in fields and "aqi_pm25" not in fields


def test_ten_recent_hours_are_enough_for_the_nowcast() -> None:
    fields = device_point(aqi_points(HOUR, {B: series([None] * 14 + [30.0] * 10, "pm25")},
                                     SETTINGS), B)
    assert fields["complete"] is True and fields["basis_pm25"] == "nowcast"
    assert fields["aqi"] == float(aqi.us_aqi("pm25", 30.0).aqi)


def test_a_short_ozone_record_is_named_insufficient() -> None:
    # 5 of the last 8 hours: no 8-hour mean; the 1-hour table still gives an index when defined.
    hours = merge(series([30.0] * 24, "pm25"), series([None] * 19 + [300.0] * 5, "o3"))
    fields = device_point(aqi_points(HOUR, {A: hours}, SETTINGS), A)
    assert fields["insufficient"] == "o3_8h" and fields["complete"] is False
    assert fields["aqi_o3"] == float(aqi.us_aqi("o3_1h", 300.0).aqi)  # 0.152 ppm: 136


def test_district_and_city_carry_the_worst_complete_station() -> None:
    clean = merge(series([5.0] * 24, "pm25"))
    dirty = merge(series([80.0] * 24, "pm25"))
    broken = series([500.0] * 22 + [None, None], "pm25")  # incomplete: never the worst
    points = aqi_points(HOUR, {A: clean, B: dirty, C: broken}, SETTINGS)
    summaries = {(p.tags["scope"], p.tags.get("district")): p.fields for p in points
                 if p.tags["scope"] != "device"}
    assert summaries[("district", "Menteng")]["worst_device"] == "air-b"
    assert summaries[("district", "Menteng")]["stations"] == 2.0
    assert ("district", "Tebet") not in summaries
    city = next(f for (scope, _d), f in summaries.items() if scope == "city")
    assert city["worst_device"] == "air-b" and city["stations"] == 2.0
    assert city["aqi"] == float(aqi.us_aqi("pm25", 80.0).aqi)
