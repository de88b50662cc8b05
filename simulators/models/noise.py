"""Environmental noise: LAeq by zone with day/night levels, rush-hour peaks and rain."""

from __future__ import annotations

import random

from simulators.models.common import gauss_bump, local_hour, local_weekday, uniform
from simulators.models.hydrology import RainField
from simulators.profile import NoiseProfile

__all__ = ["NoiseModel", "activity"]

_MAX_RAIN_EXTRA_DBA = 6.0


def activity(hour: float, day_start: float, day_end: float, ramp_h: float) -> float:
    """0 at night, 1 by day, with linear ramps of ``ramp_h`` after day_start and before day_end."""
    if day_start <= hour < day_start + ramp_h:
        return (hour - day_start) / ramp_h
    if day_end - ramp_h <= hour < day_end:
        return (day_end - hour) / ramp_h
    return 1.0 if day_start <= hour < day_end else 0.0


class NoiseModel:
    def __init__(self, profile: NoiseProfile, utc_offset_h: float, rain: RainField,
                 rush_hours_local: tuple[float, float]) -> None:
        self.profile = profile
        self.utc_offset_h = utc_offset_h
        self.rain = rain
        self.rush_hours_local = rush_hours_local

    def laeq_dba(self, zone: str, time_s: float) -> float:
        """The expected LAeq of a zone at a time, before random variation."""
        p = self.profile
        day = p.day_laeq_dba.get(zone, p.day_laeq_dba.get("other", 60.0))
        night = p.night_laeq_dba.get(zone, p.night_laeq_dba.get("other", 50.0))
        hour = local_hour(time_s, self.utc_offset_h)
        level = night + (day - night) * activity(hour, p.day_start_hour_local,
                                                 p.day_end_hour_local, p.ramp_h)
        level += p.rush_extra_dba * max(gauss_bump(hour, centre, 1.2)
                                        for centre in self.rush_hours_local)
        if local_weekday(time_s, self.utc_offset_h) >= 5:
            level += p.weekend_offset_dba
        return level

    def reading(self, zone: str, lat: float, lon: float, time_s: float,
                rng: random.Random) -> dict[str, object]:
        p = self.profile
        rain = self.rain.rate_mm_h(lat, lon, time_s)
        laeq = (self.laeq_dba(zone, time_s) + min(_MAX_RAIN_EXTRA_DBA,
                                                  rain * p.rain_extra_dba_per_mm_h)
                + rng.gauss(0.0, p.sigma_dba))
        lamax = laeq + uniform(rng, p.lamax_over_laeq_dba)
        # the generator clamps to the kind's range (kind.yaml)
        return {"laeq_db": round(laeq, 1), "lamax_db": round(lamax, 1)}
