"""City indicators per district and for the city, per local day. Pure functions; the step at the
end (registered in indicators.steps) queries for them.

Built from the same day's family results (hourly means, Siaga, noise, safety, uptime), the
hourly ISPU points and the earlier days' own daily means read back from InfluxDB (for the
annual means), the district table (area, population) and, when a database is configured, the
confirmed alert subscriptions (indicators/coverage.py). Which field is an ISO 37120 / 37122
quantity and which is the project's own is declared in outputs/city_indicators.yaml.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from indicators import queries as q
from indicators import steps
from indicators.context import DistrictTable
from indicators.coverage import HAZARD_KINDS, Coverage
from indicators.outputs import output
from indicators.points import Point
from indicators.safety import ALL, EXCLUDED_EVENTS, Responses, response_stats
from indicators.windows import DAY_MS, Window, floor_start

__all__ = ["AIR_DAILY", "RENAMED_FIELDS", "CityInputs", "Limits", "city_points",
           "copy_renamed_fields_query"]

CITY_INDICATORS = output("city_indicators").measurement
# Pollutants with a daily and an annual mean (µg/m³, the air kind's fields): PM2.5 and PM10 are
# ISO 37120 core indicators, NO2, SO2 and O3 supporting ones (outputs/city_indicators.yaml).
AIR_DAILY = ("pm25", "pm10", "no2", "so2", "o3")

Key = tuple[str, str]  # (city, district); district "" for the city
# Fields earlier versions wrote under another name (issue 13: they count sensor events, not
# ISO 37120 incidents): old -> new. ``copy_renamed_fields_query`` copies old points over.
RENAMED_FIELDS = {"incidents": "safety_sensor_events",
                  "incidents_per_100k": "safety_sensor_events_per_100k"}


def copy_renamed_fields_query() -> str:
    """InfluxQL that writes every old point's renamed fields again under their new names, into
    the same series and timestamps (InfluxDB merges the fields into the existing points), so
    dashboards reading the new names show the days before the rename too. Run it once."""
    columns = ", ".join(f"{q.quote_ident(old)} AS {q.quote_ident(new)}"
                        for old, new in RENAMED_FIELDS.items())
    measurement = q.quote_ident(CITY_INDICATORS)
    return (f"SELECT {columns} INTO {measurement} FROM {measurement} "
            f"WHERE {q.eq('window', '1d')} GROUP BY *")


@dataclass
class CityInputs:
    """Per (city, district) facts of one day, gathered from the families' results."""

    # hourly ISPU category rank (1 Baik .. 5) of complete district / city points, by hour
    ispu_ranks: dict[Key, dict[int, float]] = field(default_factory=dict)
    # (city, district) -> device -> hour -> {pollutant: hourly mean µg/m³}
    air: dict[Key, dict[str, dict[int, dict[str, float]]]] = field(default_factory=dict)
    # (city, district or "") -> pollutant -> the valid daily means of the days before this one
    # within the annual span (read back from earlier city_indicators points)
    earlier_daily: dict[Key, dict[str, list[float]]] = field(default_factory=dict)
    gauge_hours: dict[Key, list[float]] = field(default_factory=dict)
    # the same, for gauges with Siaga thresholds in configuration: their levels become Siaga
    # statuses, which is what flood alerts act on (a gauge without thresholds only measures)
    alerting_gauge_hours: dict[Key, list[float]] = field(default_factory=dict)
    siaga2_hours: dict[Key, float] = field(default_factory=dict)
    sensor_events: dict[Key, float] = field(default_factory=dict)
    noise_night_exceedances: dict[Key, float] = field(default_factory=dict)
    # (city, district) -> per noise device with a complete day: (Lsm dBA, Lsm above the limit)
    noise_days: dict[Key, list[tuple[float, bool]]] = field(default_factory=dict)
    uptime: dict[Key, float] = field(default_factory=dict)
    # (city, district) where a safety device's heartbeat was heard that day
    safety_heard: set[Key] = field(default_factory=set)
    # minutes from first event to resolution of the incidents resolved that day
    responses: Responses = field(default_factory=dict)
    # confirmed subscriptions reaching each district, per hazard; None: no database configured
    coverage: Coverage | None = None


@dataclass(frozen=True)
class Limits:
    pm25_national: float
    pm25_who: float
    min_hours: int
    live_min_hours: int
    annual_days: int = 365
    annual_min_valid_share: float = 0.75
    response_target_min: float = 15.0

    @property
    def annual_min_days(self) -> int:
        return math.ceil(self.annual_min_valid_share * self.annual_days)


def _ispu_shares(point: Point, ranks: Mapping[int, float]) -> None:
    valid = len(ranks)
    point.put("ispu_hours_valid", float(valid))
    if not valid:
        return
    point.put("ispu_share_baik", sum(1 for r in ranks.values() if r == 1) / valid)
    point.put("ispu_share_sedang", sum(1 for r in ranks.values() if r == 2) / valid)
    point.put("ispu_share_worse", sum(1 for r in ranks.values() if r >= 3) / valid)


def _daily_means(point: Point, stations: Mapping[str, Mapping[int, Mapping[str, float]]],
                 limits: Limits) -> dict[str, float]:
    """The day's mean of every pollutant's hourly means over the stations, where at least
    ``min_hours`` hours had one; PM2.5 also against its 24-h standards."""
    means: dict[str, float] = {}
    for parameter in AIR_DAILY:
        values = [hour[parameter] for hours in stations.values() for hour in hours.values()
                  if parameter in hour]
        hours = {h for hours_of in stations.values() for h, hour in hours_of.items()
                 if parameter in hour}
        if parameter == "pm25" or hours:
            point.put(f"{parameter}_hours", float(len(hours)))
        if len(hours) >= limits.min_hours and values:
            means[parameter] = math.fsum(values) / len(values)
            point.put(f"{parameter}_daily_mean", means[parameter])
    point.put("pm25_national_limit", limits.pm25_national)
    point.put("pm25_who_guideline", limits.pm25_who)
    if "pm25" in means:
        point.put("pm25_exceeds_national", means["pm25"] > limits.pm25_national)
        point.put("pm25_exceeds_who", means["pm25"] > limits.pm25_who)
    return means


def _annual_means(point: Point, today: Mapping[str, float],
                  earlier: Mapping[str, Sequence[float]], limits: Limits) -> None:
    """Mean of the valid daily means of the last ``annual_days`` days (this one included), with
    the count of valid days and whether they reach ``annual_min_valid_share``."""
    for parameter in AIR_DAILY:
        days = list(earlier.get(parameter, ()))
        if parameter in today:
            days.append(today[parameter])
        if not days:
            continue
        point.put(f"{parameter}_annual_mean", math.fsum(days) / len(days))
        point.put(f"{parameter}_annual_valid_days", float(len(days)))
        point.put(f"{parameter}_annual_complete", len(days) >= limits.annual_min_days)


def _responses(point: Point, minutes: Sequence[float], limits: Limits) -> None:
    stats = response_stats(minutes, limits.response_target_min)
    point.put("resolved_incidents", float(stats.resolved))
    point.put("response_target_min", limits.response_target_min)
    point.put("response_median_min", stats.median_min)
    point.put("response_p90_min", stats.p90_min)
    point.put("response_within_target_share", stats.within_target_share)


def _noise(point: Point, days: Sequence[tuple[float, bool]]) -> bool:
    point.put("noise_devices_complete", float(len(days)))
    if days:
        point.put("noise_lsm_db_max", max(lsm for lsm, _ in days))
    exceeding = sum(1 for _, exceeds in days if exceeds)
    point.put("noise_devices_exceeding", float(exceeding))
    return exceeding > 0


def city_points(window: Window, inputs: CityInputs, districts: DistrictTable,
                limits: Limits) -> list[Point]:
    keys = (set(inputs.ispu_ranks) | set(inputs.air) | set(inputs.gauge_hours)
            | set(inputs.sensor_events) | set(inputs.uptime)
            | set(inputs.noise_night_exceedances) | set(inputs.noise_days)
            | {(c, d) for c, d, _ in inputs.responses})
    district_keys = sorted(k for k in keys if k[1])
    points = []
    city_acc: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    city_air: dict[str, dict[str, dict[int, dict[str, float]]]] = defaultdict(dict)
    hazards = sorted(HAZARD_KINDS)
    for city, district in district_keys:
        key = (city, district)
        known = districts.get(city, district)
        point = Point(CITY_INDICATORS, {"window": "1d", "scope": "district", "city": city,
                                          "district": district}, window.start_ms)
        _ispu_shares(point, inputs.ispu_ranks.get(key, {}))
        stations = inputs.air.get(key, {})
        today = _daily_means(point, stations, limits)
        _annual_means(point, today, inputs.earlier_daily.get(key, {}), limits)
        live_air = sum(1 for hours in stations.values()
                       if sum(1 for hour in hours.values() if "pm25" in hour)
                       >= limits.live_min_hours)
        live_gauge = any(h >= limits.live_min_hours for h in inputs.gauge_hours.get(key, []))
        alerting = any(h >= limits.live_min_hours
                       for h in inputs.alerting_gauge_hours.get(key, []))
        events = inputs.sensor_events.get(key, 0.0)
        point.put("air_stations_live", float(live_air))
        point.put("flood_gauge_live", live_gauge)
        point.put("flood_gauge_alerting", alerting)
        point.put("safety_sensor_events", events)
        point.put("noise_night_exceedances", inputs.noise_night_exceedances.get(key, 0.0))
        noisy = _noise(point, inputs.noise_days.get(key, []))
        point.put("siaga2_hours", inputs.siaga2_hours.get(key))
        point.put("uptime_share", inputs.uptime.get(key))
        _responses(point, inputs.responses.get((city, district, ALL), []), limits)
        point.put("complete", "pm25" in today)
        # a hazard is alerted on live where its sensor is live (air) or can alert (flood)
        sensed = {"air": live_air > 0, "flood": alerting}
        reached: dict[str, bool] = {}
        if inputs.coverage is not None:
            for hazard in hazards:
                subscriptions = inputs.coverage.get(hazard, {}).get(key, 0)
                point.put(f"alert_subscriptions_{hazard}", float(subscriptions))
                reached[hazard] = sensed[hazard] and subscriptions > 0
        acc = city_acc[city]
        acc["air_stations_live"] += live_air
        acc["safety_sensor_events"] += events
        acc["noise_night_exceedances"] += inputs.noise_night_exceedances.get(key, 0.0)
        acc["siaga2_hours"] += inputs.siaga2_hours.get(key, 0.0)
        for device, hours in stations.items():
            city_air[city][device] = dict(hours)
        if known is not None:
            point.put("area_km2", known.area_km2)
            point.put("population", known.population)
            point.put("population_year", known.population_year)
            if known.area_km2:
                point.put("air_stations_per_km2", live_air / known.area_km2)
                acc["air_stations_known_area"] += live_air
            if known.population:
                point.put("safety_sensor_events_per_100k", events / known.population * 100_000)
                point.put("population_share_flood_gauge", 1.0 if alerting else 0.0)
                acc["population_gauge"] += known.population if alerting else 0.0
                acc["events_known_population"] += events
                if inputs.noise_days.get(key):
                    point.put("noise_population_share_exceeding", 1.0 if noisy else 0.0)
                    acc["population_noise_measured"] += known.population
                    acc["population_noise_exceeding"] += known.population if noisy else 0.0
                for hazard, covered in reached.items():
                    point.put(f"population_share_alerts_{hazard}", 1.0 if covered else 0.0)
                    acc[f"population_alerts_{hazard}"] += known.population if covered else 0.0
        points.append(point)
    for city in sorted({c for c, _ in keys}):
        acc = city_acc[city]
        table = districts.of_city(city)
        population = sum(d.population for d in table if d.population)
        area = sum(d.area_km2 for d in table if d.area_km2)
        point = Point(CITY_INDICATORS, {"window": "1d", "scope": "city", "city": city},
                      window.start_ms)
        _ispu_shares(point, inputs.ispu_ranks.get((city, ""), {}))
        today = _daily_means(point, city_air.get(city, {}), limits)
        _annual_means(point, today, inputs.earlier_daily.get((city, ""), {}), limits)
        for name in ("air_stations_live", "safety_sensor_events", "noise_night_exceedances",
                     "siaga2_hours"):
            point.put(name, acc[name])
        _noise(point, [day for (c, _), days in inputs.noise_days.items() if c == city
                       for day in days])
        _responses(point, [minutes for (c, _, event), values in inputs.responses.items()
                           if c == city and event == ALL for minutes in values], limits)
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
            point.put("safety_sensor_events_per_100k",
                      acc["events_known_population"] / population * 100_000)
            if acc["population_noise_measured"]:
                point.put("noise_population_share_exceeding",
                          acc["population_noise_exceeding"] / acc["population_noise_measured"])
            if inputs.coverage is not None:
                for hazard in hazards:
                    point.put(f"population_share_alerts_{hazard}",
                              acc[f"population_alerts_{hazard}"] / population)
        point.put("complete", "pm25" in today)
        points.append(point)
    return points


async def _day_step(span: steps.Span) -> list[Point]:
    """The day's city indicators, from what the other steps left on the span."""
    window = span.window
    start, end = window.start_ms, window.end_ms
    inputs = CityInputs()
    inputs.ispu_ranks = await span.ispu_ranks(window)
    for key, hours in span.hourly.items():
        inside = {t: {p: v[p] for p in AIR_DAILY if p in v}
                  for t, v in hours.items() if start <= t < end}
        inside = {t: v for t, v in inside.items() if v}
        if inside:
            inputs.air.setdefault((key.city, key.district), {})[key.device] = inside
    inputs.earlier_daily = await _earlier_daily_means(span)
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
    events: dict[Key, float] = defaultdict(float)
    for (c, d, event), (count, _) in span.safety_counts.items():
        if event not in EXCLUDED_EVENTS:
            events[(c, d)] += count
    inputs.sensor_events = dict(events)
    for point in span.noise:
        group = (point.tags["city"], point.tags["district"])
        if point.fields.get("exceeds_night") is True:
            inputs.noise_night_exceedances[group] = (
                inputs.noise_night_exceedances.get(group, 0.0) + 1.0)
        lsm = point.fields.get("lsm_db")
        if point.fields.get("complete") is True and isinstance(lsm, float):
            inputs.noise_days.setdefault(group, []).append(
                (lsm, point.fields.get("exceeds") is True))
    if span.uptime is not None:
        inputs.uptime = dict(span.uptime.district_share)
        inputs.safety_heard = {(c, d) for c, d, kind in span.uptime.heard if kind == "safety"}
    inputs.responses = span.responses
    if span.coverage is not None:
        inputs.coverage = await span.coverage(end)
    return city_points(window, inputs, span.context.districts, span.limits)


async def _earlier_daily_means(span: steps.Span) -> dict[Key, dict[str, list[float]]]:
    """The daily means this step wrote for the days before this one within the annual span."""
    window = span.window
    # the local midnight annual_days - 1 days back (half a day of slack for a DST change)
    since = floor_start("1d", window.start_ms - (span.limits.annual_days - 1) * DAY_MS
                        + DAY_MS // 2, span.zone)
    series = await span.query(q.raw_query(
        CITY_INDICATORS, [f"{p}_daily_mean" for p in AIR_DAILY], since, window.start_ms,
        span.city, ["scope", "city", "district"], equals=[("window", "1d")]))
    earlier: dict[Key, dict[str, list[float]]] = {}
    for tags, rows in q.rows_by_tags(series):
        key = (tags.get("city", ""), tags.get("district", ""))
        for _, values in rows:
            for parameter in AIR_DAILY:
                value = values.get(f"{parameter}_daily_mean")
                if isinstance(value, int | float):
                    earlier.setdefault(key, {}).setdefault(parameter, []).append(float(value))
    return earlier


steps.add("city", ("1d",), 90, _day_step)
