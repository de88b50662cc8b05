"""Time windows: which closed windows are due, in UTC milliseconds. Pure functions.

Minute and hour windows are aligned on UTC (an hour in WIB, UTC+7, is also a UTC hour); day
windows are local days in the configured time zone. A window is identified by its name and its
start; every point computed for it carries the start as timestamp. Rain alone counts its day as
BMKG does, 07:00 to 07:00 local time (:func:`rain_day`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from indicators.settings import WindowName

__all__ = ["DAY_MS", "HOUR_MS", "MINUTE_MS", "WINDOW_MS", "Window", "closed_windows",
           "floor_start", "iso_utc", "next_start", "rain_day", "windows_between"]

# The window lengths, defined here only: the indicators, their queries and the API import them.
MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
WINDOW_MS: dict[str, int] = {"1m": MINUTE_MS, "1h": HOUR_MS, "1d": DAY_MS}


def iso_utc(ms: int) -> str:
    """Epoch milliseconds as ISO 8601 UTC to the second, e.g. 2026-11-26T17:00:00Z (for logs)."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace(
        "+00:00", "Z")


@dataclass(frozen=True, order=True)
class Window:
    start_ms: int
    end_ms: int
    name: WindowName

    def __str__(self) -> str:
        start = datetime.fromtimestamp(self.start_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%MZ")
        return f"{self.name}@{start}"


def _local_midnight(ms: int, zone: ZoneInfo) -> int:
    local = datetime.fromtimestamp(ms / 1000, zone)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return int(midnight.timestamp() * 1000)


def floor_start(name: WindowName, ms: int, zone: ZoneInfo) -> int:
    """Start of the window of length ``name`` that contains ``ms``."""
    if name == "1d":
        return _local_midnight(ms, zone)
    size = WINDOW_MS[name]
    return ms - ms % size


def next_start(name: WindowName, start_ms: int, zone: ZoneInfo) -> int:
    """Start of the window after the one that starts at ``start_ms`` (its end)."""
    if name != "1d":
        return start_ms + WINDOW_MS[name]
    local = datetime.fromtimestamp(start_ms / 1000, zone)
    # Add a calendar day in local time (no DST in Indonesia, but stay correct elsewhere).
    following = (local + timedelta(days=1, hours=2)).replace(hour=0, minute=0, second=0,
                                                              microsecond=0)
    return int(following.timestamp() * 1000)


def rain_day(day: Window, zone: ZoneInfo, start_hour: int) -> Window:
    """The BMKG rain day that has closed by the end of the local day ``day``.

    BMKG's day runs from ``start_hour`` (07:00) local time to the same hour the next day
    (kota/standards/bmkg_rain.yaml). When the local day D (midnight to midnight) closes, the
    rain day from ``start_hour`` on D-1 to ``start_hour`` on D is complete; the one that starts
    on D ends only the next morning, so it waits for D+1's window.
    """
    local = datetime.fromtimestamp(day.start_ms / 1000, zone)
    end = local.replace(hour=start_hour, minute=0, second=0, microsecond=0)
    # Aware arithmetic keeps the wall-clock hour: the previous calendar day at start_hour.
    start = end - timedelta(days=1)
    return Window(int(start.timestamp() * 1000), int(end.timestamp() * 1000), day.name)


def windows_between(name: WindowName, since_ms: int, until_ms: int, zone: ZoneInfo,
                    limit: int = 100_000) -> list[Window]:
    """Windows whose start is in [floor(since), until) and whose end is <= until."""
    windows: list[Window] = []
    start = floor_start(name, since_ms, zone)
    while len(windows) < limit:
        end = next_start(name, start, zone)
        if end > until_ms:
            break
        windows.append(Window(start, end, name))
        start = end
    return windows


def closed_windows(name: WindowName, watermark_ms: int | None, now_ms: int, lateness_ms: int,
                   horizon_ms: int, zone: ZoneInfo, max_windows: int) -> list[Window]:
    """Closed windows not yet computed: from the watermark (the end of the last computed window)
    or the horizon, whichever is later, to ``now - lateness``; the newest ``max_windows``."""
    closed_until = now_ms - lateness_ms
    earliest = now_ms - horizon_ms
    since = earliest if watermark_ms is None else max(watermark_ms, earliest)
    if watermark_ms is None:
        # First run ever: only the latest closed window, not a whole horizon of history.
        since = floor_start(name, closed_until, zone) - 1
        since = floor_start(name, since, zone)
    windows = windows_between(name, since, closed_until, zone)
    if watermark_ms is not None:
        windows = [w for w in windows if w.start_ms >= watermark_ms]
    return windows[-max_windows:]
