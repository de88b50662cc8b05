"""Noise: energy averages, day/night levels per Kepmen LH 48/1996, exceedance per zone.

Pure functions over :class:`kota.standards.NoiseStandard` (``kota/standards/noise.yaml``).
Levels are A-weighted LAeq in dB. Day is 06:00–22:00 and night 22:00–06:00 local time (WIB,
UTC+7); Lsm = 10·log10((16·10^(Ls/10) + 8·10^((Lm+5)/10)) / 24), with a 5 dB night penalty.
Samples are weighted equally: give LAeq values over equal intervals (e.g. hourly LAeq).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict

from kota.standards import Confidence, NoiseStandard, load_noise_standard

__all__ = [
    "WIB",
    "DayNight",
    "Exceedance",
    "NoisePeriod",
    "day_night_level",
    "day_night_levels",
    "energy_average_db",
    "is_daytime",
    "noise_exceedance",
]

WIB = dt.timezone(dt.timedelta(hours=7), "WIB")

NoisePeriod = Literal["day", "night", "day_night", "hour"]


class DayNight(BaseModel):
    """Ls (day), Lm (night) and Lsm (day-night) in dB; None for a period without samples."""

    model_config = ConfigDict(frozen=True)

    ld_db: float | None
    ln_db: float | None
    lsm_db: float | None
    day_samples: int
    night_samples: int


class Exceedance(BaseModel):
    model_config = ConfigDict(frozen=True)

    zone: str
    period: str
    laeq_db: float
    limit_dba: float | None
    exceeds: bool | None
    exceeds_with_tolerance: bool | None
    excess_db: float | None
    confidence: Confidence
    note: str


def energy_average_db(levels_db: Iterable[float]) -> float:
    """10·log10(mean(10^(L/10))): the level of the average sound energy. ValueError if empty."""
    levels = list(levels_db)
    if not levels:
        raise ValueError("energy_average_db needs at least one level")
    if not all(math.isfinite(level) for level in levels):
        raise ValueError("levels must be finite numbers of dB")
    # Factor out the loudest level so 10^(L/10) cannot overflow for any dB value.
    top = max(levels)
    mean = math.fsum(10 ** ((level - top) / 10) for level in levels) / len(levels)
    return top + 10 * math.log10(mean)


def is_daytime(epoch_s: float, tz: dt.tzinfo = WIB, standard: NoiseStandard | None = None) -> bool:
    """True between day_start_hour and night_start_hour local time (06–22 by default)."""
    standard = standard or load_noise_standard()
    hour = dt.datetime.fromtimestamp(epoch_s, tz).hour
    return standard.day_start_hour <= hour < standard.night_start_hour


def day_night_level(ld_db: float, ln_db: float, standard: NoiseStandard | None = None) -> float:
    """Lsm from Ls and Lm, with the night penalty and the day/night hours of the standard."""
    standard = standard or load_noise_standard()
    day_hours = standard.night_start_hour - standard.day_start_hour
    night_hours = 24 - day_hours
    top = max(ld_db, ln_db + standard.night_penalty_db)
    energy = (day_hours * 10 ** ((ld_db - top) / 10)
              + night_hours * 10 ** ((ln_db + standard.night_penalty_db - top) / 10))
    return top + 10 * math.log10(energy / 24)


def day_night_levels(samples: Sequence[tuple[float, float]], tz: dt.tzinfo = WIB,
                     standard: NoiseStandard | None = None) -> DayNight:
    """Ls, Lm and Lsm from ``(epoch_s, laeq_db)`` samples of one day (equal intervals)."""
    standard = standard or load_noise_standard()
    day = [level for t, level in samples if is_daytime(t, tz, standard)]
    night = [level for t, level in samples if not is_daytime(t, tz, standard)]
    ld = energy_average_db(day) if day else None
    ln = energy_average_db(night) if night else None
    lsm = day_night_level(ld, ln, standard) if ld is not None and ln is not None else None
    return DayNight(ld_db=ld, ln_db=ln, lsm_db=lsm, day_samples=len(day),
                    night_samples=len(night))


def noise_exceedance(zone: str, laeq_db: float, period: NoisePeriod | str = "day_night",
                     standard: NoiseStandard | None = None) -> Exceedance:
    """Whether ``laeq_db`` over ``period`` exceeds the zone's limit (and limit + tolerance).

    The decree compares Lsm (``day_night``) with the limit; comparing a day, night or hourly
    level with the same number is a platform convention and is marked so. A zone whose limit
    the decree leaves to another ministry (airport, railway station) gives ``exceeds`` None.
    """
    standard = standard or load_noise_standard()
    if zone not in standard.zones:
        raise ValueError(f"unknown noise zone {zone!r} (known: {', '.join(standard.zones)})")
    if period not in ("day", "night", "day_night", "hour"):
        raise ValueError(f"unknown period {period!r} (known: day, night, day_night, hour)")
    if not math.isfinite(laeq_db):
        raise ValueError(f"laeq_db must be a finite number, got {laeq_db}")
    spec = standard.zones[zone]
    if period == "day_night":
        confidence = standard.confidence
        note = "Lsm compared with the zone limit, as the decree does"
    else:
        confidence = standard.per_period_convention_confidence
        note = (f"{period} level compared with the zone's single limit: a platform convention, "
                "the decree compares Lsm")
    if spec.limit_dba is None:
        return Exceedance(zone=zone, period=period, laeq_db=laeq_db, limit_dba=None,
                          exceeds=None, exceeds_with_tolerance=None, excess_db=None,
                          confidence=confidence, note=spec.note or "no limit in the decree")
    return Exceedance(zone=zone, period=period, laeq_db=laeq_db, limit_dba=spec.limit_dba,
                      exceeds=laeq_db > spec.limit_dba,
                      exceeds_with_tolerance=laeq_db > spec.limit_dba + standard.tolerance_db,
                      excess_db=laeq_db - spec.limit_dba, confidence=confidence, note=note)
