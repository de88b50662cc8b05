"""Noise: energy average, Ls/Lm/Lsm per Kepmen LH 48/1996, zone exceedance.

Lsm = 10 log10(1/24 (16·10^(0.1 Ls) + 8·10^(0.1 (Lm + 5)))), day 06–22 and night 22–06, as
quoted from the decree's Lampiran II (text-id.123dok.com, "Lsm Level Siang Malam"). Zone limits
from the decree's Lampiran I as transcribed at bushido02.wordpress.com (2011-03-01) — a secondary
source, hence ⚠️.
"""

from __future__ import annotations

import datetime as dt
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kota.indices.noise import (
    WIB,
    day_night_levels,
    energy_average_db,
    is_daytime,
    noise_exceedance,
)
from kota.standards import load_noise_standard

LIMITS_DBA = {"residential": 55, "commercial": 70, "office": 65, "green_space": 50,
              "industrial": 70, "government": 60, "recreation": 70, "seaport": 70,
              "heritage": 60, "hospital": 55, "school": 55, "place_of_worship": 55}


def test_energy_average_of_equal_levels_is_that_level() -> None:
    assert energy_average_db([63.0, 63.0, 63.0]) == pytest.approx(63.0)


def test_energy_average_of_two_levels_ten_db_apart() -> None:
    # 10^6 and 10^7 average to 5.5·10^6 → 67.40 dB (the louder level dominates).
    assert energy_average_db([60.0, 70.0]) == pytest.approx(10 * math.log10(5.5e6))


def test_energy_average_refuses_nothing() -> None:
    with pytest.raises(ValueError):
        energy_average_db([])


@given(st.lists(st.floats(min_value=0, max_value=200), min_size=1, max_size=50))
def test_energy_average_lies_between_min_and_max(levels: list[float]) -> None:
    average = energy_average_db(levels)
    assert min(levels) - 1e-9 <= average <= max(levels) + 1e-9


def _wib(hour: int, minute: int = 0) -> float:
    return dt.datetime(2026, 11, 27, hour, minute, tzinfo=WIB).timestamp()


@pytest.mark.parametrize(("hour", "minute", "day"), [
    (5, 59, False), (6, 0, True), (12, 0, True), (21, 59, True), (22, 0, False), (0, 0, False)])
def test_day_is_06_to_22_wib(hour: int, minute: int, day: bool) -> None:
    assert is_daytime(_wib(hour, minute)) is day


def test_day_night_levels_from_hourly_laeq() -> None:
    samples = [(_wib(hour), 60.0 if 6 <= hour < 22 else 50.0) for hour in range(24)]
    result = day_night_levels(samples)
    assert result.day_samples == 16 and result.night_samples == 8
    assert result.ld_db == pytest.approx(60.0) and result.ln_db == pytest.approx(50.0)
    expected = 10 * math.log10((16 * 10 ** 6.0 + 8 * 10 ** 5.5) / 24)
    assert result.lsm_db == pytest.approx(expected)


def test_wib_matches_the_standard() -> None:
    offset = dt.timedelta(hours=load_noise_standard().timezone_utc_offset_hours)
    assert WIB.utcoffset(None) == offset


def test_day_night_uses_local_time_not_utc() -> None:
    # 23:00 UTC is 06:00 WIB: day in Jakarta.
    utc_23 = dt.datetime(2026, 11, 27, 23, 0, tzinfo=dt.UTC).timestamp()
    assert day_night_levels([(utc_23, 70.0)]).day_samples == 1


def test_missing_period_gives_no_lsm() -> None:
    result = day_night_levels([(_wib(10), 60.0)])
    assert result.ln_db is None and result.lsm_db is None and result.ld_db == pytest.approx(60)


@given(st.floats(min_value=30, max_value=100))
def test_constant_level_lsm_includes_the_night_penalty(level: float) -> None:
    samples = [(_wib(hour), level) for hour in range(24)]
    lsm = day_night_levels(samples).lsm_db
    assert lsm is not None
    assert lsm == pytest.approx(level + 10 * math.log10((16 + 8 * 10 ** 0.5) / 24))


@pytest.mark.parametrize(("zone", "limit"), sorted(LIMITS_DBA.items()))
def test_exceedance_at_every_zone_limit(zone: str, limit: float) -> None:
    at = noise_exceedance(zone, limit)
    assert at.limit_dba == limit and at.exceeds is False
    over = noise_exceedance(zone, limit + 0.1)
    assert over.exceeds is True and over.exceeds_with_tolerance is False
    assert noise_exceedance(zone, limit + 3.1).exceeds_with_tolerance is True


def test_confidence_depends_on_the_period() -> None:
    assert noise_exceedance("residential", 60, "day_night").confidence.mark == "⚠️"
    assert noise_exceedance("residential", 60, "night").confidence.mark == "❌"


def test_zones_without_a_limit() -> None:
    result = noise_exceedance("airport", 80)
    assert result.limit_dba is None and result.exceeds is None and "Perhubungan" in result.note


def test_unknown_zone_or_period() -> None:
    with pytest.raises(ValueError, match="residential"):
        noise_exceedance("farm", 50)
    with pytest.raises(ValueError, match="period"):
        noise_exceedance("residential", 50, "evening")
