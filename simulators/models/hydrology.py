"""Rain cells drifting over Jabodetabek, and the river gauges they raise.

The rain field is a sum of Gaussian storm cells (random ones from the city's profile plus the
scenario's), so every rain gauge and every river catchment sees the same storms. River levels are
the catchments' rain convolved with a unit hydrograph, shifted by each gauge's travel time
(rivers.yaml): Katulampa first, Depok 3-5 h later, Manggarai 6-9 h after Katulampa (the
travel_times of kota/standards/gauges.yaml).
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass

from simulators.models.common import (
    KM_PER_DEG_LAT,
    SECONDS_PER_DAY,
    SECONDS_PER_HOUR,
    gauss_bump,
    local_hour,
    uniform,
)
from simulators.profile import GaugeModel, RainProfile, RiverModel
from simulators.scenario import RainCellEvent, RainRateEvent, Scenario

__all__ = ["RainCell", "RainField", "RiverLevels", "random_rain_cells", "scenario_rain_cells"]

_HYDROGRAPH_SHAPE = 3.0      # gamma-like unit hydrograph exponent: rises fast, recedes slowly
_HYDROGRAPH_TAIL_PEAKS = 6.0  # kernel length in multiples of its time to peak
_RAIN_SAMPLE_S = 120.0       # integration step for rain depth over a report interval


@dataclass(frozen=True, slots=True)
class RainCell:
    start_s: float
    end_s: float
    lat: float
    lon: float
    radius_km: float
    peak_mm_h: float
    north_kmh: float
    east_kmh: float

    def rate_mm_h(self, lat: float, lon: float, time_s: float) -> float:
        if not self.start_s <= time_s < self.end_s:
            return 0.0
        elapsed_h = (time_s - self.start_s) / SECONDS_PER_HOUR
        fraction = (time_s - self.start_s) / (self.end_s - self.start_s)
        envelope = math.sin(math.pi * fraction) ** 0.5  # quick growth, plateau, quick decay
        km_per_deg_lon = KM_PER_DEG_LAT * math.cos(math.radians(self.lat))
        centre_lat = self.lat + self.north_kmh * elapsed_h / KM_PER_DEG_LAT
        centre_lon = self.lon + self.east_kmh * elapsed_h / km_per_deg_lon
        north_km = (lat - centre_lat) * KM_PER_DEG_LAT
        east_km = (lon - centre_lon) * km_per_deg_lon
        distance2 = north_km * north_km + east_km * east_km
        return self.peak_mm_h * envelope * math.exp(-0.5 * distance2 / self.radius_km ** 2)


def _cell(start_s: float, duration_s: float, lat: float, lon: float, radius_km: float,
          peak_mm_h: float, heading_deg: float, speed_kmh: float) -> RainCell:
    heading = math.radians(heading_deg)
    return RainCell(start_s, start_s + duration_s, lat, lon, radius_km, peak_mm_h,
                    speed_kmh * math.cos(heading), speed_kmh * math.sin(heading))


def scenario_rain_cells(scenario: Scenario | None, start_s: float) -> list[RainCell]:
    cells = []
    for event in scenario.of_type(RainCellEvent) if scenario else []:
        assert isinstance(event, RainCellEvent)
        cells.append(_cell(start_s + event.at_h * SECONDS_PER_HOUR,
                           event.duration_h * SECONDS_PER_HOUR, event.lat, event.lon,
                           event.radius_km, event.peak_mm_h, event.heading_deg, event.speed_kmh))
    return cells


def _rate_factor(scenario: Scenario | None, start_s: float, time_s: float) -> float:
    factor = 1.0
    hours = (time_s - start_s) / SECONDS_PER_HOUR
    for event in scenario.of_type(RainRateEvent) if scenario else []:
        assert isinstance(event, RainRateEvent)
        if event.active(hours):
            factor *= event.factor
    return factor


def random_rain_cells(profile: RainProfile, rng: random.Random, from_s: float, to_s: float,
                      utc_offset_h: float, scenario: Scenario | None,
                      scenario_start_s: float) -> list[RainCell]:
    """Storm cells born between ``from_s`` and ``to_s``: a Poisson process thinned by month,
    hour of day (afternoon convection) and the scenario's ``rain_rate`` factors."""
    max_factor = max([1.0] + [e.factor for e in (scenario.of_type(RainRateEvent) if scenario
                                                 else []) if isinstance(e, RainRateEvent)])
    hour_peak = 0.25 + 2.2  # the hour-of-day shape below at its peak
    rate_max_per_s = (profile.cells_per_day / SECONDS_PER_DAY * max(profile.month_factor)
                      * hour_peak * max_factor)
    cells: list[RainCell] = []
    if rate_max_per_s <= 0:
        return cells
    time_s = from_s
    for _ in range(1_000_000):  # bounded: ends when time passes to_s
        time_s += rng.expovariate(rate_max_per_s)
        if time_s >= to_s:
            break
        month = _month_index(time_s, utc_offset_h)
        hour = local_hour(time_s, utc_offset_h)
        rate = (profile.cells_per_day / SECONDS_PER_DAY * profile.month_factor[month]
                * (0.25 + 2.2 * gauss_bump(hour, profile.peak_hour_local, profile.hour_spread_h))
                * _rate_factor(scenario, scenario_start_s, time_s))
        if rng.random() * rate_max_per_s >= rate:
            continue
        lat_low, lat_high = profile.domain_lat
        if rng.random() < profile.south_bias:  # over the hills south of Bogor
            lat_high = lat_low + (lat_high - lat_low) * 0.3
        lat = rng.uniform(lat_low, lat_high)
        lon = uniform(rng, profile.domain_lon)
        heading_from, heading_to = profile.heading_deg
        span = (heading_to - heading_from) % 360
        heading = (heading_from + rng.uniform(0, span)) % 360
        peak = math.exp(rng.uniform(math.log(profile.peak_mm_h[0]), math.log(profile.peak_mm_h[1])))
        cells.append(_cell(time_s, uniform(rng, profile.lifetime_h) * SECONDS_PER_HOUR, lat, lon,
                           uniform(rng, profile.radius_km), peak, heading,
                           uniform(rng, profile.speed_kmh)))
    return cells


def _month_index(time_s: float, utc_offset_h: float) -> int:
    import datetime as _dt

    moment = _dt.datetime.fromtimestamp(time_s + utc_offset_h * SECONDS_PER_HOUR, _dt.UTC)
    return moment.month - 1


class RainField:
    """Rain rate anywhere, any time: the sum of the active cells."""

    def __init__(self, cells: list[RainCell]) -> None:
        self.cells = sorted(cells, key=lambda c: (c.start_s, c.lat, c.lon))
        self._starts = [cell.start_s for cell in self.cells]
        self._longest_s = max((c.end_s - c.start_s for c in self.cells), default=0.0)

    def rate_mm_h(self, lat: float, lon: float, time_s: float) -> float:
        first = bisect.bisect_left(self._starts, time_s - self._longest_s)
        last = bisect.bisect_right(self._starts, time_s)
        return sum(cell.rate_mm_h(lat, lon, time_s) for cell in self.cells[first:last])

    def depth_mm(self, lat: float, lon: float, from_s: float, to_s: float) -> float:
        """Rain depth between two times (midpoint rule, steps of at most two minutes)."""
        if to_s <= from_s:
            return 0.0
        steps = max(1, math.ceil((to_s - from_s) / _RAIN_SAMPLE_S))
        step_s = (to_s - from_s) / steps
        total = sum(self.rate_mm_h(lat, lon, from_s + (i + 0.5) * step_s) for i in range(steps))
        return total * step_s / SECONDS_PER_HOUR


class RiverLevels:
    """Water level (cm, gauge datum) of each gauge of rivers.yaml over a time window."""

    def __init__(self, model: RiverModel, rain: RainField, from_s: float, to_s: float) -> None:
        self.model = model
        self.step_s = model.step_min * 60.0
        self.origin_s = from_s - model.spin_up_h * SECONDS_PER_HOUR
        count = math.ceil((to_s - self.origin_s) / self.step_s) + 2
        catchment_rain = {
            name: [sum(rain.rate_mm_h(lat, lon, self.origin_s + (i + 0.5) * self.step_s)
                       for lat, lon in points) / len(points) for i in range(count)]
            for name, points in model.catchments.items()
        }
        self._series: dict[str, list[float]] = {}
        for gauge_id, gauge in model.gauges.items():
            series = [0.0] * count
            for part in gauge.contributions:
                kernel = self._kernel(part.lag_h, part.peak_h)
                for i, rate in enumerate(catchment_rain[part.catchment]):
                    if rate <= 1e-6:
                        continue
                    amount = rate * part.gain_cm_per_mm_h
                    for j, weight in enumerate(kernel[: count - i]):
                        series[i + j] += amount * weight
            self._series[gauge_id] = series

    def _kernel(self, lag_h: float, peak_h: float) -> list[float]:
        length = math.ceil((lag_h + _HYDROGRAPH_TAIL_PEAKS * peak_h) * SECONDS_PER_HOUR
                           / self.step_s) + 1
        weights = []
        for j in range(length):
            x = (j * self.step_s / SECONDS_PER_HOUR - lag_h) / peak_h
            weights.append(x ** _HYDROGRAPH_SHAPE * math.exp(-_HYDROGRAPH_SHAPE * (x - 1))
                           if x > 0 else 0.0)
        total = sum(weights) or 1.0
        return [w / total for w in weights]

    def gauge(self, gauge_id: str) -> GaugeModel | None:
        return self.model.gauges.get(gauge_id)

    def level_cm(self, gauge_id: str, time_s: float) -> float:
        gauge = self.model.gauges[gauge_id]
        series = self._series[gauge_id]
        position = (time_s - self.origin_s) / self.step_s
        index = max(0, min(len(series) - 2, math.floor(position)))
        fraction = max(0.0, min(1.0, position - index))
        response = series[index] * (1 - fraction) + series[index + 1] * fraction
        tide = 0.0
        if gauge.tide_amplitude_cm:
            tide = gauge.tide_amplitude_cm * math.sin(
                2 * math.pi * time_s / (gauge.tide_period_h * SECONDS_PER_HOUR))
        return gauge.base_level_cm + tide + response
