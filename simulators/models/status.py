"""Device heartbeats: battery that drains (and charges from a solar panel by day), RSSI around
a per-device mean, uptime with occasional reboots, CPU temperature that follows the air."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from simulators.models.common import SECONDS_PER_DAY, SECONDS_PER_HOUR, clamp, local_hour, uniform
from simulators.models.hydrology import RainField
from simulators.profile import StatusProfile

__all__ = ["Heartbeat", "StatusModel"]

_LOWEST_BATTERY_PCT = 2.0  # a device browns out below this; we keep it just alive
_RSSI_RANGE_DBM = (-125.0, -35.0)


@dataclass(slots=True)
class Heartbeat:
    lat: float
    lon: float
    solar: bool
    battery_pct: float
    drain_pct_per_h: float
    rssi_mean_dbm: float
    cpu_over_air_degc: float
    firmware: str
    boot_s: float
    last_s: float
    unsynced_until_s: float = 0.0


class StatusModel:
    def __init__(self, profile: StatusProfile, utc_offset_h: float, rain: RainField,
                 air_temperature: Callable[[float, float, float], float]) -> None:
        self.profile = profile
        self.utc_offset_h = utc_offset_h
        self.rain = rain
        self.air_temperature = air_temperature  # (time_s, lat, lon) -> degC

    def device(self, rng: random.Random, parent_kind: str, lat: float, lon: float,
               start_s: float) -> Heartbeat:
        p = self.profile
        return Heartbeat(lat, lon, parent_kind in p.solar_powered_kinds,
                         uniform(rng, p.battery_start_pct), uniform(rng, p.drain_pct_per_h),
                         uniform(rng, p.rssi_mean_dbm), uniform(rng, p.cpu_temp_over_air_degc),
                         rng.choice(p.firmware), start_s - rng.uniform(0, 30 * SECONDS_PER_DAY),
                         start_s)

    def reading(self, beat: Heartbeat, time_s: float, rng: random.Random) -> dict[str, object]:
        p = self.profile
        hours = max(0.0, time_s - beat.last_s) / SECONDS_PER_HOUR
        beat.last_s = time_s
        charge = 0.0
        if beat.solar:
            sun = max(0.0, math.sin(math.pi * (local_hour(time_s, self.utc_offset_h) - 6) / 12))
            overcast = min(1.0, self.rain.rate_mm_h(beat.lat, beat.lon, time_s)
                           / p.overcast_rain_mm_h)
            charge = p.solar_charge_pct_per_h * sun * (1.0 - p.overcast_charge_loss * overcast)
        beat.battery_pct = clamp(beat.battery_pct + (charge - beat.drain_pct_per_h) * hours,
                                 _LOWEST_BATTERY_PCT, 100.0)
        if rng.random() < p.reboot_per_day * hours / 24.0:
            beat.boot_s = time_s - rng.uniform(5, 60)
            beat.unsynced_until_s = time_s + rng.uniform(60, 900)
        temperature = self.air_temperature(time_s, beat.lat, beat.lon)
        return {
            "battery_pct": round(beat.battery_pct, 1),
            "rssi_dbm": round(clamp(rng.gauss(beat.rssi_mean_dbm, p.rssi_sigma_dbm),
                                    *_RSSI_RANGE_DBM), 0),
            "uptime_s": float(round(time_s - beat.boot_s)),
            "cpu_temp_c": round(temperature + beat.cpu_over_air_degc
                                + rng.gauss(0, 0.5), 1),
            "queue_depth": 0.0,
            "clock_synced": time_s >= beat.unsynced_until_s,
            "firmware": beat.firmware,
            "online": True,
        }
