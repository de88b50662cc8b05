"""Air-quality stations: traffic rush hours, night-time accumulation, haze episodes, rain
washout; weather with the tropical diurnal cycle and the semidiurnal pressure tide."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from simulators.models.common import (
    SECONDS_PER_DAY,
    SECONDS_PER_HOUR,
    clamp,
    gauss_bump,
    local_hour,
    local_weekday,
    uniform,
)
from simulators.models.hydrology import RainField
from simulators.profile import AirProfile
from simulators.scenario import HazeEvent, Scenario

__all__ = ["AirModel", "AirStation", "HazeTimeline", "diurnal_heat"]

_MAX_RAIN_COOLING_DEGC = 5.0
_MAX_WASHOUT_SHARE = 0.5


@dataclass(frozen=True, slots=True)
class _Episode:
    start_s: float
    end_s: float
    factor: float
    ramp_s: float

    def weight(self, time_s: float) -> float:
        if not self.start_s <= time_s < self.end_s:
            return 0.0
        if self.ramp_s <= 0:
            return 1.0
        rise = (time_s - self.start_s) / self.ramp_s
        fall = (self.end_s - time_s) / self.ramp_s
        return clamp(min(rise, fall), 0.0, 1.0)


class HazeTimeline:
    """City-wide PM multiplier: random episodes from the profile plus the scenario's haze."""

    def __init__(self, profile: AirProfile, rng: random.Random, from_s: float, to_s: float,
                 scenario: Scenario | None, scenario_start_s: float) -> None:
        self.episodes: list[_Episode] = []
        rate_per_s = profile.haze_episodes_per_day / SECONDS_PER_DAY
        time_s = from_s - max(profile.haze_duration_h) * SECONDS_PER_HOUR
        for _ in range(100_000):  # bounded: ends when time passes to_s
            if rate_per_s <= 0:
                break
            time_s += rng.expovariate(rate_per_s)
            if time_s >= to_s:
                break
            duration_s = uniform(rng, profile.haze_duration_h) * SECONDS_PER_HOUR
            self.episodes.append(_Episode(time_s, time_s + duration_s,
                                          uniform(rng, profile.haze_factor), duration_s / 4))
        for event in scenario.of_type(HazeEvent) if scenario else []:
            assert isinstance(event, HazeEvent)
            start = scenario_start_s + event.at_h * SECONDS_PER_HOUR
            self.episodes.append(_Episode(start, start + event.duration_h * SECONDS_PER_HOUR,
                                          event.pm_factor, event.ramp_h * SECONDS_PER_HOUR))

    def factor(self, time_s: float) -> float:
        factor = 1.0
        for episode in self.episodes:
            weight = episode.weight(time_s)
            if weight:
                factor *= 1.0 + (episode.factor - 1.0) * weight
        return factor


def diurnal_heat(hour: float, min_hour: float, max_hour: float) -> float:
    """0 at the coolest hour, 1 at the hottest: a half sine up, a slower cosine fall overnight."""
    rise_h = (max_hour - min_hour) % 24
    since_min = (hour - min_hour) % 24
    if since_min <= rise_h:
        return math.sin(0.5 * math.pi * since_min / rise_h)
    fall_fraction = (since_min - rise_h) / (24 - rise_h)
    return 0.5 * (1 + math.cos(math.pi * fall_fraction))


@dataclass(slots=True)
class AirStation:
    """Per-station state: its own noise, PM10/PM2.5 ratio and microclimate offset."""

    zone: str
    reference: bool
    lat: float
    lon: float
    pm10_ratio: float
    temperature_offset_degc: float
    noise: float = 0.0


class AirModel:
    def __init__(self, profile: AirProfile, utc_offset_h: float, rain: RainField,
                 haze: HazeTimeline) -> None:
        self.profile = profile
        self.utc_offset_h = utc_offset_h
        self.rain = rain
        self.haze = haze

    def station(self, rng: random.Random, zone: str, reference: bool, lat: float,
                lon: float) -> AirStation:
        return AirStation(zone, reference, lat, lon, uniform(rng, self.profile.pm10_per_pm25),
                          rng.gauss(0.0, 0.4))

    def traffic_factor(self, time_s: float) -> float:
        """PM multiplier from traffic and mixing height, ~1 on average over a weekday."""
        p = self.profile
        hour = local_hour(time_s, self.utc_offset_h)
        factor = p.traffic_base_factor
        for centre, width, amplitude in zip(p.rush_hours_local, p.rush_width_h, p.rush_amplitude,
                                            strict=True):
            factor += amplitude * gauss_bump(hour, centre, width)
        factor += p.night_accumulation * gauss_bump(hour, p.night_peak_hour_local,
                                                    p.night_width_h)
        factor -= p.midday_dip * gauss_bump(hour, p.midday_dip_hour_local, p.midday_dip_width_h)
        if local_weekday(time_s, self.utc_offset_h) >= 5:
            factor *= p.weekend_factor
        return factor

    def temperature_degc(self, time_s: float, lat: float, lon: float, offset: float = 0.0) -> float:
        p = self.profile
        heat = diurnal_heat(local_hour(time_s, self.utc_offset_h), p.temperature_min_hour_local,
                            p.temperature_max_hour_local)
        rain = self.rain.rate_mm_h(lat, lon, time_s)
        cooling = min(_MAX_RAIN_COOLING_DEGC, rain * p.rain_cooling_degc_per_mm_h)
        return (p.temperature_min_degc + (p.temperature_max_degc - p.temperature_min_degc) * heat
                - cooling + offset)

    def reading(self, station: AirStation, time_s: float, rng: random.Random) -> dict[str, object]:
        p = self.profile
        hour = local_hour(time_s, self.utc_offset_h)
        station.noise = (p.pm25_noise_memory * station.noise
                         + rng.gauss(0.0, p.pm25_noise_sigma)
                         * math.sqrt(1 - p.pm25_noise_memory ** 2))
        zone_factor = p.zone_factor.get(station.zone, p.zone_factor.get("other", 1.0))
        rain_mm_h = self.rain.rate_mm_h(station.lat, station.lon, time_s)
        washout = 1.0 - min(_MAX_WASHOUT_SHARE, rain_mm_h * p.rain_washout_per_mm_h)
        traffic = self.traffic_factor(time_s)
        haze = self.haze.factor(time_s)
        pm25 = (p.pm25_background_ugm3 * zone_factor * traffic * haze * washout
                * math.exp(station.noise))
        heat = diurnal_heat(hour, p.temperature_min_hour_local, p.temperature_max_hour_local)
        temperature = self.temperature_degc(time_s, station.lat, station.lon,
                                            station.temperature_offset_degc)
        humidity = (p.humidity_max_pct - (p.humidity_max_pct - p.humidity_min_pct) * heat
                    + min(p.humidity_rain_extra_max_pct, rain_mm_h)
                    + rng.gauss(0.0, p.humidity_sigma_pct))
        pressure = (p.pressure_mean_hpa + p.pressure_semidiurnal_hpa
                    * math.cos(2 * math.pi * (hour - p.pressure_peak_hour_local) / 12.0)
                    + rng.gauss(0.0, 0.15))
        fields: dict[str, object] = {
            "pm25": round(pm25, 1),
            "pm10": round(pm25 * station.pm10_ratio * (1 + rng.gauss(0, 0.03)), 1),
            "temperature": round(temperature + rng.gauss(0, 0.15), 2),
            "humidity": round(clamp(humidity, 0.0, 100.0), 1),
            "pressure": round(pressure, 1),
        }
        if station.reference:
            sunlight = max(0.0, math.sin(math.pi * (hour - 6.0) / 12.0))
            industry = zone_factor ** 2 if station.zone == "industrial" else 1.0
            fields.update({
                "pm1": round(pm25 * p.pm1_per_pm25, 1),
                "no2": round(p.no2_traffic_ugm3 * zone_factor * traffic * washout
                             * math.exp(rng.gauss(0, 0.1)), 1),
                "co": round(p.co_traffic_ugm3 * zone_factor * traffic * math.exp(rng.gauss(0, 0.1)),
                            0),
                "so2": round(p.so2_background_ugm3 * industry * math.exp(rng.gauss(0, 0.15)), 1),
                "o3": round((p.o3_base_ugm3 + p.o3_photochemical_ugm3 * sunlight ** 1.5
                             * (1.0 - min(0.8, rain_mm_h / 10)) * haze ** 0.3)
                            * math.exp(rng.gauss(0, 0.08)), 1),
                "hc": round(p.hc_background_ugm3 * traffic * haze ** 0.5
                            * math.exp(rng.gauss(0, 0.1)), 1),
            })
        return fields
