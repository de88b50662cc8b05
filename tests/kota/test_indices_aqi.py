"""US EPA AQI (2024 PM2.5 table, PM10): every breakpoint, truncation, rounding, properties.

Reference table transcribed from 89 FR 16202 (6 March 2024) and 40 CFR 58 App. G by way of the
project's first reference notes (kept outside this repository; docs/standards.md, section "US
AQI", lists the numbers and sources in use). Truncation (PM2.5 to 0.1 µg/m³, PM10 to 1 µg/m³)
and rounding the index to the nearest whole number follow AirNow's "The AQI Equation (2024 -
Valid Beginning May 6th, 2024)",
forum.airnowtech.org/t/the-aqi-equation-2024-valid-beginning-may-6th-2024/453.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kota.indices.aqi import truncate_concentration, us_aqi

# (c_low, c_high, i_low, i_high) per 89 FR 16202 and 40 CFR 58 App. G; categories below
REFERENCE: dict[str, list[tuple[float, float, int, int]]] = {
    "pm25": [(0.0, 9.0, 0, 50), (9.1, 35.4, 51, 100), (35.5, 55.4, 101, 150),
             (55.5, 125.4, 151, 200), (125.5, 225.4, 201, 300), (225.5, 325.4, 301, 500)],
    "pm10": [(0, 54, 0, 50), (55, 154, 51, 100), (155, 254, 101, 150), (255, 354, 151, 200),
             (355, 424, 201, 300), (425, 604, 301, 500)],
}
CATEGORIES = ["Good", "Moderate", "Unhealthy for Sensitive Groups", "Unhealthy",
              "Very Unhealthy", "Hazardous"]

BREAKPOINTS = [(p, band, c, i) for p, bands in REFERENCE.items()
               for band, (c_low, c_high, i_low, i_high) in enumerate(bands)
               for c, i in ((c_low, i_low), (c_high, i_high))]


@pytest.mark.parametrize(("pollutant", "band", "concentration", "expected"), BREAKPOINTS)
def test_aqi_at_every_breakpoint(pollutant: str, band: int, concentration: float,
                                 expected: int) -> None:
    result = us_aqi(pollutant, concentration)
    assert result.aqi == expected
    assert result.category == CATEGORIES[band]


def _epa(pollutant: str, truncated: float) -> int:
    for c_low, c_high, i_low, i_high in REFERENCE[pollutant]:
        if c_low <= truncated <= c_high:
            return math.floor((i_high - i_low) / (c_high - c_low) * (truncated - c_low)
                              + i_low + 0.5)
    raise AssertionError(truncated)


@pytest.mark.parametrize(("pollutant", "concentration", "truncated"), [
    ("pm25", 9.05, 9.0),     # in the gap between 9.0 and 9.1: truncates into Good
    ("pm25", 35.49, 35.4),   # not rounded up into the next band
    ("pm25", 35.9, 35.9),
    ("pm25", 12.0, 12.0),
    ("pm25", 100.37, 100.3),
    ("pm10", 54.9, 54),
    ("pm10", 154.99, 154),
    ("pm10", 300.5, 300),
])
def test_truncation_then_formula(pollutant: str, concentration: float, truncated: float) -> None:
    result = us_aqi(pollutant, concentration)
    assert result.truncated_ugm3 == truncated
    assert result.aqi == _epa(pollutant, truncated)


def test_truncation_is_exact_in_decimal() -> None:
    # 0.3 * 10 is 2.9999999999999996 in binary floating point; truncation must still give 0.3.
    assert truncate_concentration(0.3, 1) == 0.3
    assert truncate_concentration(35.49, 1) == 35.4


def test_above_the_table_caps_at_500() -> None:
    result = us_aqi("pm25", 400)
    assert result.aqi == 500 and result.beyond_scale and result.category == "Hazardous"


@pytest.mark.parametrize(("pollutant", "value"), [("pm1", 5), ("pm25", -1), ("pm10", math.nan)])
def test_bad_input_is_refused(pollutant: str, value: float) -> None:
    with pytest.raises(ValueError):
        us_aqi(pollutant, value)


concentrations = st.floats(min_value=0, max_value=800, allow_nan=False)


@given(st.sampled_from(["pm25", "pm10"]), concentrations, concentrations)
def test_monotone_and_bounded(pollutant: str, a: float, b: float) -> None:
    low, high = sorted((a, b))
    aqi_low, aqi_high = us_aqi(pollutant, low).aqi, us_aqi(pollutant, high).aqi
    assert 0 <= aqi_low <= aqi_high <= 500


@given(st.sampled_from(["pm25", "pm10"]), st.floats(min_value=0, max_value=325, allow_nan=False))
def test_matches_the_epa_formula_everywhere(pollutant: str, concentration: float) -> None:
    result = us_aqi(pollutant, concentration)
    assert result.aqi == _epa(pollutant, result.truncated_ugm3)
