"""ISPU and US AQI per station, district and city, from hourly means. Pure functions; the step
at the end (registered in indicators.steps) queries for them.

Input: hourly means per device ``{DeviceKey: {hour_start_ms: {parameter: µg/m³}}}``, covering the
averaging periods before the window end. The index arithmetic and the completeness rule are
kota.indices' (``average_for_ispu``, ``station_ispu``, ``average_for_aqi``, ``nowcast``,
``overall_aqi``); this module only picks the hours each parameter averages over and turns
results into points.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from indicators import steps
from indicators.outputs import output
from indicators.points import Point
from indicators.queries import AIR_PARAMETERS, DeviceKey, hourly_aggregate_query, rows_by_device
from indicators.settings import AirSettings
from indicators.windows import HOUR_MS, Window
from kota.indices import aqi as aqi_index
from kota.indices import ispu as ispu_index
from kota.standards import AqiTables, load_aqi_tables

__all__ = ["Hourly", "StationIspu", "aqi_fields", "aqi_points", "compute_stations",
           "hourly_air_query", "hourly_means", "ispu_points"]

ISPU = output("ispu").measurement
AQI_US = output("aqi_us").measurement

Hourly = dict[DeviceKey, dict[int, dict[str, float]]]
CATEGORY_RANK = {"baik": 1, "sedang": 2, "tidak sehat": 3, "sangat tidak sehat": 4,
                 "berbahaya": 5}


@dataclass
class StationIspu:
    key: DeviceKey
    result: Any  # kota.indices.ispu.IspuResult
    concentrations: dict[str, float | None]
    hours_with_data: int

    @property
    def complete(self) -> bool:
        return not list(self.result.insufficient) and bool(self.result.sub_indices)


def hourly_air_query(start_ms: int, end_ms: int, city: str | None,
                     conditions: Sequence[str] = ()) -> str:
    """Hourly means of every ISPU parameter per device: what ISPU and AQI are computed from."""
    return hourly_aggregate_query("air", [("mean", p, p) for p in AIR_PARAMETERS], start_ms,
                                  end_ms, city, conditions=conditions)


def hourly_means(series: list[dict[str, Any]]) -> Hourly:
    """The answer to ``hourly_air_query`` as ``{DeviceKey: {hour ms: {parameter: µg/m³}}}``."""
    hourly: Hourly = {}
    for key, rows in rows_by_device(series).items():
        hours = hourly.setdefault(key, {})
        for time_ms, values in rows:
            # Ingest refuses negative concentrations, another writer might not: one would make
            # kota.indices raise and stop every later window at this one.
            clean = {p: float(v) for p, v in values.items() if v is not None and v >= 0}
            if clean:
                hours[time_ms] = clean
    return hourly


def averaging_hours(parameter: str) -> int:
    return ispu_index.ispu_parameter(parameter).averaging.window_hours


def _hour_values(hourly: Mapping[int, Mapping[str, float]], parameter: str, end_ms: int,
                 hours: int) -> list[float | None]:
    """The ``hours`` hourly means before ``end_ms``, oldest first, None where missing."""
    return [hourly.get(end_ms - (hours - index) * HOUR_MS, {}).get(parameter)
            for index in range(hours)]


def _average(hourly: Mapping[int, Mapping[str, float]], parameter: str, end_ms: int,
             hours: int) -> float | None:
    values = _hour_values(hourly, parameter, end_ms, hours)
    result = ispu_index.average_for_ispu(values, parameter)
    return None if result.insufficient or result.mean_ugm3 is None else float(result.mean_ugm3)


def _day_value(hourly: Mapping[int, Mapping[str, float]], parameter: str, window: Window,
               hours: int, settings: AirSettings) -> float | None:
    if hours >= 24:
        return _average(hourly, parameter, window.end_ms, 24)
    # Shorter averaging periods: the day's highest valid rolling mean (as daily max 8-h CO),
    # valid when enough of the day's rolling means are.
    rolling = [_average(hourly, parameter, end, hours)
               for end in range(window.start_ms + HOUR_MS, window.end_ms + 1, HOUR_MS)]
    valid = [value for value in rolling if value is not None]
    if len(valid) < settings.min_hours_per_day:
        return None
    return max(valid)


def station_concentrations(hourly: Mapping[int, Mapping[str, float]], window: Window,
                           settings: AirSettings) -> dict[str, float | None]:
    """Averaged concentration per parameter the station measures (None: insufficient)."""
    measured = [p for p in AIR_PARAMETERS if any(p in hour for hour in hourly.values())]
    out: dict[str, float | None] = {}
    for parameter in measured:
        hours = averaging_hours(parameter)
        if window.name == "1d":
            out[parameter] = _day_value(hourly, parameter, window, hours, settings)
        else:
            out[parameter] = _average(hourly, parameter, window.end_ms, hours)
    return out


def _hours_with(hourly: Mapping[int, Mapping[str, float]], parameter: str, start_ms: int,
                end_ms: int) -> int:
    return sum(1 for hour, values in hourly.items()
               if start_ms <= hour < end_ms and parameter in values)


def _tags(window: Window, scope: str, key: DeviceKey) -> dict[str, str]:
    tags = {"window": window.name, "scope": scope, "city": key.city}
    if scope != "city":
        tags["district"] = key.district
    if scope == "device":
        tags["device"] = key.device
    return tags


def _ispu_fields(point: Point, station: StationIspu) -> None:
    result = station.result
    for parameter, value in sorted(result.sub_indices.items()):
        point.put(f"ispu_{parameter}", value)
    for parameter, value in sorted(station.concentrations.items()):
        point.put(f"conc_{parameter}", value)
    if result.sub_indices:
        category = result.category
        point.put("ispu", result.ispu)
        point.put("critical_parameter", str(result.critical_parameter))
        point.put("category", str(category.name))
        point.put("category_rank", CATEGORY_RANK.get(str(category.name).lower()))
        point.put("colour", str(category.colour))
        point.put("hex", str(category.hex))
    point.put("complete", station.complete)
    point.put("insufficient", ",".join(str(p) for p in result.insufficient))
    point.put("hours_with_data", station.hours_with_data)


def compute_stations(window: Window, hourly: Hourly, settings: AirSettings) -> list[StationIspu]:
    stations = []
    span_start = window.end_ms - 24 * HOUR_MS if window.name != "1d" else window.start_ms
    for key, hours in sorted(hourly.items()):
        concentrations = station_concentrations(hours, window, settings)
        if not concentrations:
            continue
        result = ispu_index.station_ispu(concentrations)
        stations.append(StationIspu(key, result, concentrations,
                                    _hours_with(hours, "pm25", span_start, window.end_ms)))
    return stations


def _worst(stations: list[StationIspu], scope: str) -> list[tuple[StationIspu, int]]:
    """The complete station with the highest ISPU per district or city, and how many counted."""
    worst: dict[tuple[str, ...], StationIspu] = {}
    counts: dict[tuple[str, ...], int] = {}
    for station in stations:
        if not station.complete:
            continue
        group = ((station.key.city, station.key.district) if scope == "district"
                 else (station.key.city,))
        counts[group] = counts.get(group, 0) + 1
        current = worst.get(group)
        if current is None or station.result.ispu > current.result.ispu:
            worst[group] = station
    return [(worst[group], counts[group]) for group in sorted(worst)]


def ispu_points(window: Window, stations: list[StationIspu]) -> list[Point]:
    """Per device, plus the worst complete station per district and for each city."""
    points = []
    for station in stations:
        point = Point(ISPU, _tags(window, "device", station.key), window.start_ms)
        _ispu_fields(point, station)
        points.append(point)
    for scope in ("district", "city"):
        for station, count in _worst(stations, scope):
            point = Point(ISPU, _tags(window, scope, station.key), window.start_ms)
            _ispu_fields(point, station)
            point.put("stations", count)
            point.put("worst_device", station.key.device)
            points.append(point)
    return points


def _aqi_value(hourly: Mapping[int, Mapping[str, float]], table: str, end_ms: int,
               tables: AqiTables) -> float | None:
    """The table's concentration for the hour ending at ``end_ms`` (µg/m³): PM as EPA's NowCast,
    the others the mean of their averaging window (None: insufficient)."""
    spec = tables.pollutants[table]
    parameter = spec.parameter
    if parameter in tables.nowcast.parameters and spec.averaging.window_hours == 24:
        values = _hour_values(hourly, parameter, end_ms, tables.nowcast.hours)
        return aqi_index.nowcast(values, parameter, tables).concentration_ugm3
    window = spec.averaging.window_hours
    result = aqi_index.average_for_aqi(_hour_values(hourly, parameter, end_ms, window), table,
                                       tables)
    return result.mean_ugm3


def _aqi_day_value(hourly: Mapping[int, Mapping[str, float]], table: str, window: Window,
                   settings: AirSettings, tables: AqiTables) -> float | None:
    """A day's concentration (µg/m³): the 24-hour mean for 24-hour tables, else the day's
    highest valid rolling mean (daily max 8-hour ozone and CO, highest hour of NO2 and SO2),
    valid when ``air.min_hours_per_day`` of the day's rolling means are."""
    spec = tables.pollutants[table]
    hours = spec.averaging.window_hours
    if hours >= 24:
        values = _hour_values(hourly, spec.parameter, window.end_ms, 24)
        return aqi_index.average_for_aqi(values, table, tables).mean_ugm3
    rolling = [aqi_index.average_for_aqi(_hour_values(hourly, spec.parameter, end, hours),
                                         table, tables).mean_ugm3
               for end in range(window.start_ms + HOUR_MS, window.end_ms + 1, HOUR_MS)]
    valid = [value for value in rolling if value is not None]
    return max(valid) if len(valid) >= settings.min_hours_per_day else None


def _basis(table: str, window: Window, tables: AqiTables) -> str:
    spec = tables.pollutants[table]
    if (window.name != "1d" and spec.parameter in tables.nowcast.parameters
            and spec.averaging.window_hours == 24):
        return "nowcast"
    return f"{spec.averaging.window_hours}h"


def aqi_fields(point: Point, window: Window, hourly: Mapping[int, Mapping[str, float]],
               settings: AirSettings, tables: AqiTables) -> bool:
    """Put the station's US AQI fields on ``point``; True when it is complete."""
    measured = {p for hour in hourly.values() for p in hour}
    concentrations: dict[str, float | None] = {}
    for table, spec in tables.pollutants.items():
        if spec.parameter not in measured:
            continue
        concentrations[table] = (_aqi_day_value(hourly, table, window, settings, tables)
                                 if window.name == "1d"
                                 else _aqi_value(hourly, table, window.end_ms, tables))
    if not concentrations:
        return False
    insufficient = [table for table, value in concentrations.items() if value is None]
    result = aqi_index.overall_aqi(concentrations, tables)
    for parameter, sub in result.sub_indices.items():
        point.put(f"aqi_{parameter}", sub.aqi)
        point.put(f"conc_{parameter}", sub.concentration_ugm3)
        point.put(f"basis_{parameter}", _basis(sub.pollutant, window, tables))
    if result.aqi is not None and result.category is not None:
        point.put("aqi", result.aqi)
        point.put("responsible_pollutant", str(result.responsible))
        point.put("category", result.category.name)
        point.put("hex", result.category.hex)
        assert result.responsible is not None
        point.put("aqi_at_least", result.sub_indices[result.responsible].at_least)
    complete = not insufficient and result.aqi is not None
    point.put("complete", complete)
    point.put("insufficient", ",".join(insufficient))
    return complete


def aqi_points(window: Window, hourly: Hourly, settings: AirSettings,
               tables: AqiTables | None = None) -> list[Point]:
    """US AQI per device from every pollutant it measures (the hour: PM NowCast and each
    table's averaging window; the day: 24-hour PM and SO2 means, daily maxima of the shorter
    windows), plus the worst complete station per district and for each city (as for ISPU)."""
    tables = tables if tables is not None else load_aqi_tables()
    points = []
    complete_points: list[tuple[DeviceKey, Point]] = []
    for key, hours in sorted(hourly.items()):
        if not any(hours.values()):
            continue
        point = Point(AQI_US, _tags(window, "device", key), window.start_ms)
        complete = aqi_fields(point, window, hours, settings, tables)
        if not point.fields:
            continue
        points.append(point)
        if complete:
            complete_points.append((key, point))
    for scope in ("district", "city"):
        worst: dict[tuple[str, ...], tuple[DeviceKey, Point]] = {}
        counts: dict[tuple[str, ...], int] = {}
        for key, point in complete_points:
            group: tuple[str, ...] = ((key.city, key.district) if scope == "district"
                                      else (key.city,))
            counts[group] = counts.get(group, 0) + 1
            current = worst.get(group)
            if current is None or float(point.fields["aqi"]) > float(current[1].fields["aqi"]):
                worst[group] = (key, point)
        for group in sorted(worst):
            key, station = worst[group]
            summary = Point(AQI_US, _tags(window, scope, key), window.start_ms,
                            dict(station.fields))
            summary.put("stations", counts[group])
            summary.put("worst_device", key.device)
            points.append(summary)
    return points


async def _span_step(span: steps.Span) -> list[Point]:
    """ISPU and US AQI: hourly means of the 24 h before the window end (a day: its own day)."""
    window = span.window
    air_from = (window.start_ms if window.name == "1d" else window.end_ms) - 24 * HOUR_MS
    span.hourly = await span.air_hourly(air_from, window.end_ms)
    stations = compute_stations(window, span.hourly, span.settings.air)
    return ispu_points(window, stations) + aqi_points(window, span.hourly, span.settings.air)


steps.add("air", ("1h", "1d"), 10, _span_step)
