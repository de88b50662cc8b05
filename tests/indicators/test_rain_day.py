"""BMKG's rain day runs 07:00 to 07:00 local time (kota/standards/bmkg_rain.yaml), not midnight to
midnight: the window arithmetic and the daily rain points at its boundaries (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from indicators.queries import DeviceKey, Sample
from indicators.rain import rain_points
from indicators.settings import RainSettings
from indicators.windows import HOUR_MS, Window, floor_start, next_start, rain_day
from kota.indices.rain import bmkg_daily_category
from kota.standards import load_rain_tables

JAKARTA = ZoneInfo("Asia/Jakarta")
MAKASSAR = ZoneInfo("Asia/Makassar")  # WITA, UTC+8
START_HOUR = load_rain_tables().observation_day.start_hour
GAUGE = DeviceKey("jakarta", "Tebet", "rain-a")


def ms(*args: int, zone: ZoneInfo = JAKARTA) -> int:
    return int(datetime(*args, tzinfo=zone).timestamp() * 1000)


def local_day(year: int, month: int, day: int, zone: ZoneInfo = JAKARTA) -> Window:
    start = floor_start("1d", ms(year, month, day, 12, zone=zone), zone)
    return Window(start, next_start("1d", start, zone), "1d")


def test_the_standards_say_07_00_and_the_date_it_starts() -> None:
    day = load_rain_tables().observation_day
    assert (day.start_hour, day.label) == (7, "start_date") and day.source


def test_the_rain_day_closed_by_a_local_day_runs_07_00_to_07_00_wib_which_is_00_utc() -> None:
    day = rain_day(local_day(2026, 11, 20), JAKARTA, START_HOUR)
    assert datetime.fromtimestamp(day.start_ms / 1000, UTC) == datetime(2026, 11, 19, 0,
                                                                          tzinfo=UTC)
    assert day.start_ms == ms(2026, 11, 19, 7) and day.end_ms == ms(2026, 11, 20, 7)
    assert day.name == "1d" and day.end_ms - day.start_ms == 24 * HOUR_MS
    # it has closed when the local day closes, seventeen hours before the next one does
    assert day.end_ms <= local_day(2026, 11, 20).end_ms


def test_rain_days_follow_each_other_without_gap_or_overlap() -> None:
    days = [rain_day(local_day(2026, 12, d), JAKARTA, START_HOUR) for d in (30, 31)]
    days.append(rain_day(local_day(2027, 1, 1), JAKARTA, START_HOUR))
    assert [b.start_ms for b in days[1:]] == [a.end_ms for a in days[:-1]]


def test_07_00_is_local_time_in_the_configured_zone() -> None:
    day = rain_day(local_day(2026, 11, 20, MAKASSAR), MAKASSAR, START_HOUR)
    assert day.start_ms == ms(2026, 11, 19, 7, zone=MAKASSAR)


def _hourly(*hours: tuple[int, float]) -> dict[DeviceKey, list[Sample]]:
    return {GAUGE: [(start, {"rain_mm": mm, "reports": 1.0}) for start, mm in hours]}


@pytest.mark.parametrize(("hour_start", "counted"), [
    (ms(2026, 11, 19, 6), False),   # 06:00-07:00 on D-1: the previous rain day
    (ms(2026, 11, 19, 7), True),    # 07:00 on D-1: the first hour of the rain day
    (ms(2026, 11, 19, 23), True),   # late evening: the same rain day, across midnight
    (ms(2026, 11, 20, 6), True),    # 06:00-07:00 on D: its last hour
    (ms(2026, 11, 20, 7), False),   # 07:00 on D: the next rain day
])
def test_an_hour_counts_in_the_rain_day_that_holds_it(hour_start: int, counted: bool) -> None:
    day = rain_day(local_day(2026, 11, 20), JAKARTA, START_HOUR)
    points = rain_points(day, _hourly((hour_start, 5.0)), RainSettings(min_hours_per_day=1))
    assert bool(points) is counted
    if counted:
        [point] = points
        assert point.time_ms == day.start_ms and point.tags["window"] == "1d"
        assert point.fields["rain_mm"] == 5.0


def test_a_storm_across_midnight_is_one_rain_day_not_two_calendar_days() -> None:
    # 60 mm from 20:00 to 02:00 WIB: split 30/30 by midnight days, whole in BMKG's day
    storm = [(ms(2026, 11, 19, 20) + h * HOUR_MS, 10.0) for h in range(6)]
    dry = [(ms(2026, 11, 19, 7) + h * HOUR_MS, 0.0) for h in range(24)
           if not 13 <= h < 19]
    day = rain_day(local_day(2026, 11, 20), JAKARTA, START_HOUR)
    [point] = rain_points(day, _hourly(*storm, *dry), RainSettings())
    assert point.fields["rain_mm"] == 60.0 and point.fields["hours_with_data"] == 24.0
    assert point.fields["complete"] is True
    assert point.fields["category"] == bmkg_daily_category(60.0).name == "Lebat"
