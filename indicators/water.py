"""Siaga status per gauge: latest level, status, rate of rise, time to the next threshold, and
hours at Siaga 2 or worse. Pure functions over raw ``level_cm`` samples; the steps at the end
(registered in indicators.steps) query for them.

The thresholds and the arithmetic are kota.indices.siaga's; a device maps to its gauge through
the registry's ``params.gauge_id``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from indicators import queries as q
from indicators import steps
from indicators.context import Context
from indicators.outputs import output
from indicators.points import Point
from indicators.queries import DeviceKey, Sample
from indicators.settings import SiagaSettings
from indicators.windows import HOUR_MS, Window
from kota.indices import siaga as siaga_index

__all__ = ["siaga_points"]

SIAGA = output("siaga").measurement



def _levels(samples: list[Sample]) -> list[tuple[int, float]]:
    return [(time_ms, float(values["level_cm"])) for time_ms, values in samples
            if values.get("level_cm") is not None]


def _status(gauge: Any, level_cm: float) -> Any:
    return siaga_index.siaga_status(gauge, level_cm) if gauge is not None else None


def _tags(window: Window, key: DeviceKey, gauge_id: str | None) -> dict[str, str]:
    tags = {"window": window.name, "scope": "device", "city": key.city,
            "district": key.district, "device": key.device}
    if gauge_id:
        tags["gauge"] = gauge_id
    return tags


def _put_status(point: Point, result: Any) -> None:
    if result is not None:
        point.put("status", float(result.status))
        point.put("status_name", str(result.status_name))


def siaga_points(window: Window, samples: Mapping[DeviceKey, list[Sample]], context: Context,
                 gauges: Mapping[str, Any], settings: SiagaSettings,
                 city: str | None = None) -> list[Point]:
    """Per gauge device with readings, and per registered water device without any (flagged
    ``complete=false``: a silent gauge is news, not a gap to hide)."""
    points = []
    everyone = dict(samples)
    for device in context.registered("water", city):
        everyone.setdefault(DeviceKey(device.city, device.district, device.device_id), [])
    for key, rows in sorted(everyone.items()):
        gauge_id = context.param(key.device, "gauge_id")
        gauge = gauges.get(gauge_id) if gauge_id else None
        levels = _levels(rows)
        point = Point(SIAGA, _tags(window, key, gauge_id), window.start_ms)
        if window.name == "1m":
            _minute(point, window, levels, gauge, settings)
        else:
            _span(point, window, levels, gauge)
        if point.fields:
            points.append(point)
    return points


def _minute(point: Point, window: Window, levels: list[tuple[int, float]], gauge: Any,
            settings: SiagaSettings) -> None:
    fresh = [(t, v) for t, v in levels
             if window.end_ms - settings.max_age_s * 1000 <= t < window.end_ms]
    if not fresh:
        point.put("complete", False)
        return
    time_ms, level = fresh[-1]
    point.put("level_cm", level)
    point.put("age_s", (window.end_ms - time_ms) / 1000)
    point.put("complete", True)
    status = _status(gauge, level)
    _put_status(point, status)
    recent = [(t / 1000, v) for t, v in levels
              if window.end_ms - settings.rise_window_s * 1000 <= t < window.end_ms]
    rise = siaga_index.rate_of_rise_cm_per_h(recent) if len(recent) >= 2 else None
    if rise is None:
        return
    point.put("rise_cm_per_h", float(rise))
    if gauge is not None and status is not None:
        hours = siaga_index.hours_to_next_threshold(gauge, level, rise)
        point.put("hours_to_next", None if hours is None else float(hours))


def _span(point: Point, window: Window, levels: list[tuple[int, float]], gauge: Any) -> None:
    inside = [(t, v) for t, v in levels if window.start_ms <= t < window.end_ms]
    if not inside:
        point.put("complete", False)
        if window.name == "1d":
            point.put("hours_with_data", 0.0)
        return
    point.put("level_cm", inside[-1][1])
    point.put("max_level_cm", max(v for _, v in inside))
    worst = _status(gauge, max(v for _, v in inside))
    _put_status(point, worst)
    if window.name == "1h":
        point.put("complete", True)
        return
    hours: dict[int, float] = {}
    for t, v in inside:
        hour = t - (t - window.start_ms) % HOUR_MS
        hours[hour] = max(v, hours.get(hour, v))
    expected = (window.end_ms - window.start_ms) // HOUR_MS
    point.put("hours_with_data", float(len(hours)))
    point.put("complete", len(hours) >= expected)
    if gauge is not None:
        bad = sum(1 for v in hours.values() if float(_status(gauge, v).status) <= 2)
        point.put("hours_siaga2_or_worse", float(bad))


async def _minute_step(span: steps.Span) -> list[Point]:
    """Siaga per gauge from the latest level (and the rise over the readings before it)."""
    siaga = span.settings.siaga
    end = span.window.end_ms
    back_ms = int(max(siaga.rise_window_s, siaga.max_age_s) * 1000)
    water = q.rows_by_device(await span.query(q.raw_query(
        "water", ["level_cm"], end - back_ms, end, span.city)))
    return siaga_points(span.window, water, span.context, span.gauges, siaga, span.city)


async def _span_step(span: steps.Span) -> list[Point]:
    window = span.window
    water = q.rows_by_device(await span.query(
        q.raw_query("water", ["level_cm"], window.start_ms, window.end_ms, span.city)))
    span.siaga = siaga_points(window, water, span.context, span.gauges, span.settings.siaga,
                              span.city)
    return span.siaga


steps.add("siaga-minute", ("1m",), 10, _minute_step)
steps.add("siaga", ("1h", "1d"), 20, _span_step)
