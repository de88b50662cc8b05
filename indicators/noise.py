"""Noise per device: hourly LAeq, daily Ls / Lm / Lsm, exceedance of the zone's limit. Pure
functions; the step at the end (registered in indicators.steps) queries for them.

The energy averages, the day/night split and the limits are kota.indices.noise's (Kepmen LH
48/1996 via kota/standards/noise.yaml); the zone comes from the registry's ``params.zone``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from indicators import queries as q
from indicators import steps
from indicators.context import Context
from indicators.outputs import output
from indicators.points import Point
from indicators.queries import DeviceKey, Sample
from indicators.windows import HOUR_MS, Window
from kota.indices import noise as noise_index

__all__ = ["noise_points"]

NOISE_LEVEL = output("noise_level").measurement



def _exceeds(zone: str | None, level: float | None, period: str) -> bool | None:
    if zone is None or level is None:
        return None
    try:
        return noise_index.noise_exceedance(zone, level, period).exceeds
    except ValueError:  # a zone the decree has no limit for
        return None


def _limit(zone: str | None) -> float | None:
    if zone is None:
        return None
    try:
        return noise_index.noise_exceedance(zone, 0.0, "hour").limit_dba
    except ValueError:
        return None


def noise_points(window: Window, samples: Mapping[DeviceKey, list[Sample]], context: Context,
                 zone_info: dt.tzinfo, min_hours_per_day: int) -> list[Point]:
    points = []
    for key, rows in sorted(samples.items()):
        inside = [(t, values) for t, values in rows if window.start_ms <= t < window.end_ms]
        levels = [(t, float(v["laeq_db"])) for t, v in inside if v.get("laeq_db") is not None]
        if not levels:
            continue
        maxima = [float(v["lamax_db"]) for _, v in inside if v.get("lamax_db") is not None]
        zone = context.param(key.device, "zone")
        tags = {"window": window.name, "scope": "device", "city": key.city,
                "district": key.district, "device": key.device}
        if zone:
            tags["zone"] = zone
        point = Point(NOISE_LEVEL, tags, window.start_ms)
        laeq = noise_index.energy_average_db(level for _, level in levels)
        point.put("laeq_db", laeq)
        point.put("lamax_db", max(maxima) if maxima else None)
        point.put("readings", float(len(levels)))
        point.put("limit_db", _limit(zone))
        if window.name == "1h":
            daytime = noise_index.is_daytime(window.start_ms / 1000, zone_info)
            point.put("exceeds", _exceeds(zone, laeq, "day" if daytime else "night"))
            point.put("complete", True)
        else:
            levels_s = [(t / 1000, level) for t, level in levels]
            periods = noise_index.day_night_levels(levels_s, zone_info)
            point.put("ls_db", periods.ld_db)
            point.put("lm_db", periods.ln_db)
            point.put("lsm_db", periods.lsm_db)
            point.put("exceeds_day", _exceeds(zone, periods.ld_db, "day"))
            point.put("exceeds_night", _exceeds(zone, periods.ln_db, "night"))
            point.put("exceeds", _exceeds(zone, periods.lsm_db, "day_night"))
            hours = {t - (t - window.start_ms) % HOUR_MS for t, _ in levels}
            point.put("hours_with_data", float(len(hours)))
            point.put("complete", len(hours) >= min_hours_per_day
                      and periods.ld_db is not None and periods.ln_db is not None)
        points.append(point)
    return points


async def _span_step(span: steps.Span) -> list[Point]:
    window = span.window
    rows = q.rows_by_device(await span.query(
        q.raw_query("noise", ["laeq_db", "lamax_db"], window.start_ms, window.end_ms, span.city)))
    span.noise = noise_points(window, rows, span.context, span.zone,
                              span.settings.noise.min_hours_per_day)
    return span.noise


steps.add("noise", ("1h", "1d"), 40, _span_step)
