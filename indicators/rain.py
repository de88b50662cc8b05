"""BMKG rainfall intensity per gauge, hourly and daily. Pure functions over hourly sums;
the step at the end (registered in indicators.steps) queries for them.

The daily figure is BMKG's rain day, 07:00 to 07:00 local time (kota/standards/bmkg_rain.yaml,
``observation_day``), not the service's midnight day: when the local day D closes, the step
computes the rain day from 07:00 on D-1 to 07:00 on D and stamps it with its start.
"""

from __future__ import annotations

from collections.abc import Mapping

from indicators import queries as q
from indicators import steps
from indicators.outputs import output
from indicators.points import Point
from indicators.queries import DeviceKey, Sample
from indicators.settings import RainSettings
from indicators.windows import Window, rain_day
from kota.indices import rain as rain_index
from kota.indices.rain import RainCategory
from kota.standards import load_rain_tables

__all__ = ["rain_points"]

RAIN_CATEGORY = output("rain_category").measurement


def _category(result: RainCategory | None) -> tuple[str | None, float | None]:
    if result is None:
        return None, None
    return result.name, float(result.index)


def rain_points(window: Window, hourly: Mapping[DeviceKey, list[Sample]],
                settings: RainSettings) -> list[Point]:
    """``hourly``: per device, (hour start, {"rain_mm": sum, "reports": count}). For "1d",
    ``window`` is the BMKG rain day (:func:`indicators.windows.rain_day`)."""
    points = []
    for key, rows in sorted(hourly.items()):
        inside = [(t, v) for t, v in rows if window.start_ms <= t < window.end_ms
                  and v.get("reports")]
        if not inside:
            continue
        total = sum(float(v.get("rain_mm") or 0.0) for _, v in inside)
        reports = sum(float(v.get("reports") or 0.0) for _, v in inside)
        point = Point(RAIN_CATEGORY, {"window": window.name, "scope": "device",
                                        "city": key.city, "district": key.district,
                                        "device": key.device}, window.start_ms)
        point.put("rain_mm", total)
        point.put("reports", reports)
        if window.name == "1d":
            complete = len(inside) >= settings.min_hours_per_day
            point.put("hours_with_data", float(len(inside)))
            result = rain_index.bmkg_daily_category(total) if complete else None
        else:
            complete = True
            result = rain_index.bmkg_hourly_category(total)
        name, rank = _category(result)
        point.put("category", name)
        point.put("category_rank", rank)
        point.put("complete", complete)
        points.append(point)
    return points


async def _span_step(span: steps.Span) -> list[Point]:
    window = span.window
    if window.name == "1d":
        window = rain_day(window, span.zone, load_rain_tables().observation_day.start_hour)
    rain = q.rows_by_device(await span.query(q.hourly_aggregate_query(
        "rain", [("sum", "rain_mm", "rain_mm"), ("count", "rain_mm", "reports")],
        window.start_ms, window.end_ms, span.city)))
    return rain_points(window, rain, span.settings.rain)


steps.add("rain", ("1h", "1d"), 30, _span_step)
