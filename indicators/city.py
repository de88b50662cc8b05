"""City indicators per district and for the city, per local day. Pure functions; the step at the
end (registered in indicators.steps) queries for them.

Built from the same day's family results (hourly means, Siaga, noise, safety, uptime) and the
hourly ISPU points read back from InfluxDB, plus the district table (area, population).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

from indicators import steps
from indicators.context import DistrictTable
from indicators.outputs import output
from indicators.points import Point
from indicators.safety import EXCLUDED_EVENTS
from indicators.windows import Window

__all__ = ["CityInputs", "city_points"]

CITY_INDICATORS = output("city_indicators").measurement



@dataclass
class CityInputs:
    """Per (city, district) facts of one day, gathered from the families' results."""

    # hourly ISPU category rank (1 Baik .. 5) of complete district / city points, by hour
    ispu_ranks: dict[tuple[str, str], dict[int, float]] = field(default_factory=dict)
    # (city, district) -> device -> hour -> PM2.5 hourly mean
    pm25: dict[tuple[str, str], dict[str, dict[int, float]]] = field(default_factory=dict)
    gauge_hours: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    # the same, for gauges with Siaga thresholds in configuration: their levels become Siaga
    # statuses, which is what flood alerts act on (a gauge without thresholds only measures)
    alerting_gauge_hours: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    siaga2_hours: dict[tuple[str, str], float] = field(default_factory=dict)
    incidents: dict[tuple[str, str], float] = field(default_factory=dict)
    noise_night_exceedances: dict[tuple[str, str], float] = field(default_factory=dict)
    uptime: dict[tuple[str, str], float] = field(default_factory=dict)
    # (city, district) where a safety device's heartbeat was heard that day
    safety_heard: set[tuple[str, str]] = field(default_factory=set)


@dataclass(frozen=True)
class Limits:
    pm25_national: float
    pm25_who: float
    min_hours: int
    live_min_hours: int


def _ispu_shares(point: Point, ranks: Mapping[int, float]) -> None:
    valid = len(ranks)
    point.put("ispu_hours_valid", float(valid))
    if not valid:
        return
    point.put("ispu_share_baik", sum(1 for r in ranks.values() if r == 1) / valid)
    point.put("ispu_share_sedang", sum(1 for r in ranks.values() if r == 2) / valid)
    point.put("ispu_share_worse", sum(1 for r in ranks.values() if r >= 3) / valid)


def _pm25(point: Point, stations: Mapping[str, Mapping[int, float]], limits: Limits) -> bool:
    values = [v for hours in stations.values() for v in hours.values()]
    hours = {h for hours_of in stations.values() for h in hours_of}
    point.put("pm25_hours", float(len(hours)))
    point.put("pm25_national_limit", limits.pm25_national)
    point.put("pm25_who_guideline", limits.pm25_who)
    if len(hours) < limits.min_hours or not values:
        return False
    mean = math.fsum(values) / len(values)
    point.put("pm25_daily_mean", mean)
    point.put("pm25_exceeds_national", mean > limits.pm25_national)
    point.put("pm25_exceeds_who", mean > limits.pm25_who)
    return True


def city_points(window: Window, inputs: CityInputs, districts: DistrictTable,
                limits: Limits) -> list[Point]:
    keys = (set(inputs.ispu_ranks) | set(inputs.pm25) | set(inputs.gauge_hours)
            | set(inputs.incidents) | set(inputs.uptime) | set(inputs.noise_night_exceedances))
    district_keys = sorted(k for k in keys if k[1])
    points = []
    city_acc: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    city_pm25: dict[str, dict[str, dict[int, float]]] = defaultdict(dict)
    for city, district in district_keys:
        key = (city, district)
        known = districts.get(city, district)
        point = Point(CITY_INDICATORS, {"window": "1d", "scope": "district", "city": city,
                                          "district": district}, window.start_ms)
        _ispu_shares(point, inputs.ispu_ranks.get(key, {}))
        stations = inputs.pm25.get(key, {})
        complete = _pm25(point, stations, limits)
        live_air = sum(1 for hours in stations.values() if len(hours) >= limits.live_min_hours)
        live_gauge = any(h >= limits.live_min_hours for h in inputs.gauge_hours.get(key, []))
        alerting = any(h >= limits.live_min_hours
                       for h in inputs.alerting_gauge_hours.get(key, []))
        incidents = inputs.incidents.get(key, 0.0)
        point.put("air_stations_live", float(live_air))
        point.put("flood_gauge_live", live_gauge)
        point.put("flood_gauge_alerting", alerting)
        point.put("incidents", incidents)
        point.put("noise_night_exceedances", inputs.noise_night_exceedances.get(key, 0.0))
        point.put("siaga2_hours", inputs.siaga2_hours.get(key))
        point.put("uptime_share", inputs.uptime.get(key))
        point.put("complete", complete)
        acc = city_acc[city]
        acc["air_stations_live"] += live_air
        acc["incidents"] += incidents
        acc["noise_night_exceedances"] += inputs.noise_night_exceedances.get(key, 0.0)
        acc["siaga2_hours"] += inputs.siaga2_hours.get(key, 0.0)
        for device, hours in stations.items():
            city_pm25[city][device] = dict(hours)
        if known is not None:
            point.put("area_km2", known.area_km2)
            point.put("population", known.population)
            point.put("population_year", known.population_year)
            if known.area_km2:
                point.put("air_stations_per_km2", live_air / known.area_km2)
                acc["air_stations_known_area"] += live_air
            if known.population:
                point.put("incidents_per_100k", incidents / known.population * 100_000)
                point.put("population_share_flood_gauge", 1.0 if alerting else 0.0)
                acc["population_gauge"] += known.population if alerting else 0.0
                acc["incidents_known_population"] += incidents
        points.append(point)
    for city in sorted({c for c, _ in keys}):
        acc = city_acc[city]
        table = districts.of_city(city)
        population = sum(d.population for d in table if d.population)
        area = sum(d.area_km2 for d in table if d.area_km2)
        point = Point(CITY_INDICATORS, {"window": "1d", "scope": "city", "city": city},
                      window.start_ms)
        _ispu_shares(point, inputs.ispu_ranks.get((city, ""), {}))
        complete = _pm25(point, city_pm25.get(city, {}), limits)
        for name in ("air_stations_live", "incidents", "noise_night_exceedances",
                     "siaga2_hours"):
            point.put(name, acc[name])
        uptimes = [v for (c, _), v in inputs.uptime.items() if c == city]
        point.put("uptime_share", sum(uptimes) / len(uptimes) if uptimes else None)
        if area:
            point.put("area_km2", area)
            point.put("air_stations_per_km2", acc["air_stations_known_area"] / area)
        if table:
            monitored = sum(1 for d in table if (city, d.name) in inputs.safety_heard)
            point.put("districts_safety_monitored", float(monitored))
            point.put("districts_safety_monitored_share", monitored / len(table))
        if population:
            point.put("population", population)
            point.put("population_share_flood_gauge", acc["population_gauge"] / population)
            point.put("incidents_per_100k",
                      acc["incidents_known_population"] / population * 100_000)
        point.put("complete", complete)
        points.append(point)
    return points


async def _day_step(span: steps.Span) -> list[Point]:
    """The day's city indicators, from what the other steps left on the span."""
    window = span.window
    start, end = window.start_ms, window.end_ms
    inputs = CityInputs()
    inputs.ispu_ranks = await span.ispu_ranks(window)
    for key, hours in span.hourly.items():
        inside = {t: v["pm25"] for t, v in hours.items() if start <= t < end and "pm25" in v}
        if inside:
            inputs.pm25.setdefault((key.city, key.district), {})[key.device] = inside
    for point in span.siaga:
        group = (point.tags["city"], point.tags["district"])
        hours_with = point.fields.get("hours_with_data")
        hours_live = float(hours_with) if isinstance(hours_with, float) else 0.0
        inputs.gauge_hours.setdefault(group, []).append(hours_live)
        if point.tags.get("gauge") in span.gauges:
            inputs.alerting_gauge_hours.setdefault(group, []).append(hours_live)
        bad = point.fields.get("hours_siaga2_or_worse")
        if isinstance(bad, float):
            inputs.siaga2_hours[group] = inputs.siaga2_hours.get(group, 0.0) + bad
    incidents: dict[tuple[str, str], float] = defaultdict(float)
    for (c, d, event), (events, _) in span.safety_counts.items():
        if event not in EXCLUDED_EVENTS:
            incidents[(c, d)] += events
    inputs.incidents = dict(incidents)
    for point in span.noise:
        if point.fields.get("exceeds_night") is True:
            group = (point.tags["city"], point.tags["district"])
            inputs.noise_night_exceedances[group] = (
                inputs.noise_night_exceedances.get(group, 0.0) + 1.0)
    if span.uptime is not None:
        inputs.uptime = dict(span.uptime.district_share)
        inputs.safety_heard = {(c, d) for c, d, kind in span.uptime.heard if kind == "safety"}
    return city_points(window, inputs, span.context.districts, span.limits)


steps.add("city", ("1d",), 90, _day_step)
