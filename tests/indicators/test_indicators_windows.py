"""Window arithmetic of the indicator service (pure): local days, closing, catch-up horizon."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from indicators.windows import HOUR_MS, closed_windows, floor_start, windows_between

JAKARTA = ZoneInfo("Asia/Jakarta")
HOUR = HOUR_MS
T0 = int(datetime(2026, 11, 20, 3, 30, tzinfo=UTC).timestamp() * 1000)  # 10:30 WIB


def test_a_day_window_is_a_jakarta_day() -> None:
    start = floor_start("1d", T0, JAKARTA)
    assert datetime.fromtimestamp(start / 1000, UTC) == datetime(2026, 11, 19, 17, tzinfo=UTC)
    (day,) = windows_between("1d", start, start + 24 * HOUR, JAKARTA)
    assert day.end_ms - day.start_ms == 24 * HOUR
    assert floor_start("1h", T0, JAKARTA) == T0 - 30 * 60_000


def test_first_start_takes_only_the_latest_closed_window() -> None:
    due = closed_windows("1h", None, T0, 120_000, 48 * HOUR, JAKARTA, 1000)
    assert [w.start_ms for w in due] == [T0 - 90 * 60_000]  # 09:00-10:00 WIB, closed at 10:02


def test_a_window_waits_for_lateness() -> None:
    hour_end = T0 - 30 * 60_000
    early = closed_windows("1h", hour_end - HOUR, hour_end + 60_000, 120_000, 48 * HOUR,
                           JAKARTA, 1000)
    assert early == []
    late = closed_windows("1h", hour_end - HOUR, hour_end + 120_000, 120_000, 48 * HOUR,
                          JAKARTA, 1000)
    assert [w.start_ms for w in late] == [hour_end - HOUR]


def test_catch_up_is_bounded_by_the_horizon_and_the_count() -> None:
    watermark = T0 - 200 * HOUR
    due = closed_windows("1h", watermark, T0, 0, 48 * HOUR, JAKARTA, 1000)
    assert len(due) == 48 and due[-1].end_ms <= T0 and due[0].start_ms >= T0 - 48 * HOUR - HOUR
    minutes = closed_windows("1m", T0 - 10 * HOUR, T0, 0, 48 * HOUR, JAKARTA, 180)
    assert len(minutes) == 180 and minutes[-1].end_ms == T0  # the newest 180
    assert [w.start_ms for w in due] == sorted({w.start_ms for w in due})  # once each, in order
