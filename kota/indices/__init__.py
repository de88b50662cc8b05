"""Indices as pure functions: ISPU, US AQI, BMKG rain, Siaga water level, noise.

No I/O: each function takes numbers and a typed reference table from :mod:`kota.standards`
(the shipped one when not given) and returns a typed result that says what it could not know.
The field-team calculator (``kota ispu``, ``kota siaga``) lives in ``cli.py``.
"""

from __future__ import annotations

from kota.indices.aqi import AqiResult, us_aqi
from kota.indices.ispu import (
    AverageResult,
    IspuCategoryResult,
    IspuResult,
    UnknownParameterError,
    average_for_ispu,
    ispu_sub_index,
    station_ispu,
)
from kota.indices.noise import (
    WIB,
    DayNight,
    Exceedance,
    day_night_levels,
    energy_average_db,
    noise_exceedance,
)
from kota.indices.rain import RainCategory, bmkg_daily_category, bmkg_hourly_category
from kota.indices.siaga import (
    GaugeThresholds,
    SiagaResult,
    UnknownGaugeError,
    find_gauge,
    hours_to_next_threshold,
    load_gauges,
    rate_of_rise_cm_per_h,
    siaga_status,
)

__all__ = [
    "WIB",
    "AqiResult",
    "AverageResult",
    "DayNight",
    "Exceedance",
    "GaugeThresholds",
    "IspuCategoryResult",
    "IspuResult",
    "RainCategory",
    "SiagaResult",
    "UnknownGaugeError",
    "UnknownParameterError",
    "average_for_ispu",
    "bmkg_daily_category",
    "bmkg_hourly_category",
    "day_night_levels",
    "energy_average_db",
    "find_gauge",
    "hours_to_next_threshold",
    "ispu_sub_index",
    "load_gauges",
    "noise_exceedance",
    "rate_of_rise_cm_per_h",
    "siaga_status",
    "station_ispu",
    "us_aqi",
]
