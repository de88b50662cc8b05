"""Siaga water-level status at every threshold of every Jakarta gauge, rate of rise, time to next.

REFERENCE_CM is transcribed by hand from the sources named in kota/standards/gauges.yaml
(BPBD DKI bands as reported 2012–2025, the 2014 Dinas PU DKI criteria); the edge tests read the
shipped table, so a gauge added to it is tested at each of its thresholds. None = unknown (❌).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kota.indices.siaga import (
    UnknownGaugeError,
    find_gauge,
    hours_to_next_threshold,
    load_gauges,
    rate_of_rise_cm_per_h,
    siaga_status,
)
from kota.standards import load_gauges_table

REFERENCE_CM = {  # gauge id: (siaga3, siaga2, siaga1)
    "katulampa": (80, 150, 200),
    "depok": (200, 270, 350),
    "manggarai": (750, 850, 950),
    "karet": (450, 550, 600),
    "pulo_gadung": (550, 700, None),
    "pasar_ikan": (170, 200, 250),
    "angke_hulu": (150, 250, 300),
    "pesanggrahan": (150, None, None),
    "krukut_hulu": (150, 250, None),
    "cipinang_hulu": (150, 200, None),
    "sunter_hulu": (140, 200, None),
    "waduk_pluit": (-50, -40, -10),
    "marina": (None, None, None),
}
NAMES = {4: "Normal", 3: "Waspada", 2: "Siaga", 1: "Awas"}
# Where the sources put the threshold itself in the milder band (Katulampa's keeper, 2019:
# "Siaga 3 81–150"); everywhere else a reading on the threshold has the status (≥).
STRICT = {("katulampa", 3), ("katulampa", 2), ("katulampa", 1)}

TABLE = load_gauges_table()
EDGES = [(gauge_id, status, threshold.value_cm, threshold.at_equal)
         for gauge_id, gauge in TABLE.gauges.items()
         for status, threshold in gauge.thresholds() if threshold.value_cm is not None]


def test_shipped_gauges_match_the_reference() -> None:
    gauges = load_gauges()
    assert set(gauges) == set(REFERENCE_CM)
    for gauge_id, values in REFERENCE_CM.items():
        gauge = gauges[gauge_id]
        assert (gauge.siaga3.value_cm, gauge.siaga2.value_cm, gauge.siaga1.value_cm) == values
        assert gauge.id == gauge_id
        for status, threshold in gauge.thresholds():
            assert threshold.at_equal is ((gauge_id, status) not in STRICT), (gauge_id, status)


def test_reached_at_equal_is_the_tables_default_with_its_source() -> None:
    assert TABLE.reached_at_equal.default is True and "BPBD" in TABLE.reached_at_equal.source
    # the reported readings behind the default: exactly on the threshold, the higher status
    assert siaga_status(find_gauge("manggarai"), 750).status == 3
    assert siaga_status(find_gauge("depok"), 350).status == 1
    assert siaga_status(find_gauge("angke_hulu"), 300).status == 1
    assert siaga_status(find_gauge("pasar_ikan"), 200).status == 2
    assert siaga_status(find_gauge("karet"), 599).status == 2   # "Siaga II 550–599"
    assert siaga_status(find_gauge("katulampa"), 80).status == 4  # "Siaga 4 below 81"


@pytest.mark.parametrize(("gauge_id", "status", "value_cm", "at_equal"), EDGES,
                         ids=[f"{g}-siaga{s}" for g, s, *_ in EDGES])
def test_status_below_at_and_above_every_threshold(gauge_id: str, status: int,
                                                   value_cm: float, at_equal: bool) -> None:
    gauge = load_gauges()[gauge_id]
    below = siaga_status(gauge, value_cm - 1)
    above = siaga_status(gauge, value_cm + 1)
    at = siaga_status(gauge, value_cm)
    assert below.status == status + 1
    assert above.status == status and above.status_name == NAMES[status]
    assert at.status == (status if at_equal else status + 1)
    # on a threshold already reached there is nothing left to wait for at that threshold
    hours = hours_to_next_threshold(gauge, value_cm, 10)
    assert hours != 0 if at_equal else hours == 0


def test_every_gauge_is_tested_at_its_thresholds() -> None:
    known = sum(v is not None for values in REFERENCE_CM.values() for v in values)
    assert len(EDGES) == known


def test_normal_below_the_first_threshold() -> None:
    result = siaga_status(find_gauge("manggarai"), 500)
    assert result.status == 4 and result.status_name == "Normal" and not result.is_lower_bound
    assert [t.reached for t in result.thresholds] == [False, False, False]


def test_unknown_thresholds_are_reported_not_guessed() -> None:
    result = siaga_status(find_gauge("pulo_gadung"), 900)
    assert result.status == 2 and result.is_lower_bound and result.unknown == ["siaga1"]
    assert result.thresholds[-1].value_cm is None and result.thresholds[-1].reached is None
    pesanggrahan = siaga_status(find_gauge("pesanggrahan"), 100)
    assert pesanggrahan.status == 4 and not pesanggrahan.is_lower_bound
    assert pesanggrahan.unknown == ["siaga2", "siaga1"]
    marina = siaga_status(find_gauge("marina"), 200)
    assert marina.status == 4 and marina.is_lower_bound


def test_awas_name_is_marked_partial_and_sources_travel_with_thresholds() -> None:
    result = siaga_status(find_gauge("depok"), 400)
    assert result.status == 1 and result.status_name_confidence.mark == "⚠️"
    assert "Bahaya" in TABLE.status_names.names[1].note  # BPBD DKI's wording from 2024
    assert all(t.source for t in result.thresholds)
    katulampa = siaga_status(find_gauge("katulampa"), 10)
    assert katulampa.thresholds[2].confidence.mark == "⚠️"


@pytest.mark.parametrize("name", ["manggarai", "Pintu Air Manggarai", "PINTU-AIR manggarai"])
def test_find_gauge_by_id_or_name(name: str) -> None:
    assert find_gauge(name).id == "manggarai"


def test_unknown_gauge_lists_the_known_ones() -> None:
    with pytest.raises(UnknownGaugeError, match="katulampa, depok"):
        find_gauge("bogor")


# -- rate of rise and time to the next threshold --------------------------------------------
def test_rate_of_rise_is_the_least_squares_slope() -> None:
    t0 = 1_780_000_000.0  # epoch seconds: centring keeps precision
    samples = [(t0, 700.0), (t0 + 600, 706.0), (t0 + 1200, 709.0), (t0 + 1800, 718.0)]
    times = [t - t0 for t, _ in samples]
    levels = [lv for _, lv in samples]
    mt, ml = sum(times) / 4, sum(levels) / 4
    slope_per_s = (sum((t - mt) * (lv - ml) for t, lv in zip(times, levels, strict=True))
                   / sum((t - mt) ** 2 for t in times))
    assert rate_of_rise_cm_per_h(samples) == pytest.approx(slope_per_s * 3600)


def test_rate_of_rise_needs_two_distinct_times() -> None:
    assert rate_of_rise_cm_per_h([]) is None
    assert rate_of_rise_cm_per_h([(0.0, 10.0)]) is None
    assert rate_of_rise_cm_per_h([(5.0, 10.0), (5.0, 12.0)]) is None


@pytest.mark.slow
@given(st.floats(min_value=-200, max_value=200), st.floats(min_value=-100, max_value=1000),
       st.integers(min_value=2, max_value=30))
def test_rate_of_rise_recovers_a_straight_line(rate_cm_per_h: float, start_cm: float,
                                               count: int) -> None:
    t0 = 1_780_000_000.0
    samples = [(t0 + 300 * k, start_cm + rate_cm_per_h * 300 * k / 3600) for k in range(count)]
    assert rate_of_rise_cm_per_h(samples) == pytest.approx(rate_cm_per_h, abs=1e-6)


def test_hours_to_next_threshold() -> None:
    manggarai = find_gauge("manggarai")
    assert hours_to_next_threshold(manggarai, 800, 25) == pytest.approx((850 - 800) / 25)
    assert hours_to_next_threshold(manggarai, 700, 10) == pytest.approx((750 - 700) / 10)
    assert hours_to_next_threshold(manggarai, 960, 10) is None  # already Siaga 1
    assert hours_to_next_threshold(manggarai, 800, 0) is None
    assert hours_to_next_threshold(manggarai, 800, -5) is None
    assert hours_to_next_threshold(manggarai, 800, None) is None
    # on Siaga 2 (reached at equal): the next one is Siaga 1
    assert hours_to_next_threshold(manggarai, 850, 10) == pytest.approx(10.0)
    # Katulampa's thresholds are entered above them: on one, nothing is left to wait for
    assert hours_to_next_threshold(find_gauge("katulampa"), 150, 10) == 0


def test_hours_to_an_unknown_threshold_is_none() -> None:
    assert hours_to_next_threshold(find_gauge("pulo_gadung"), 800, 30) is None
    assert hours_to_next_threshold(find_gauge("karet"), 500, 25) == pytest.approx(2.0)


@given(st.sampled_from(sorted(REFERENCE_CM)), st.floats(min_value=-500, max_value=3000),
       st.floats(min_value=-500, max_value=3000))
def test_status_never_eases_as_the_water_rises(gauge_id: str, a: float, b: float) -> None:
    gauge = load_gauges()[gauge_id]
    low, high = sorted((a, b))
    assert siaga_status(gauge, high).status <= siaga_status(gauge, low).status


def test_a_missing_middle_threshold_does_not_hide_a_known_severe_one() -> None:
    gauge = find_gauge("depok").model_copy(update={
        "siaga2": find_gauge("pulo_gadung").siaga1})  # an unknown threshold in the middle
    severe = siaga_status(gauge, 400)
    assert severe.status == 1 and not severe.is_lower_bound
    assert [t.reached for t in severe.thresholds] == [True, True, True]
    middle = siaga_status(gauge, 300)
    assert middle.status == 3 and middle.is_lower_bound
    assert [t.reached for t in middle.thresholds] == [True, None, False]


# -- travel times ---------------------------------------------------------------------------
def test_travel_times_name_known_gauges_with_a_source() -> None:
    pairs = {(t.upstream, t.downstream): t.hours for t in TABLE.travel_times}
    assert pairs[("katulampa", "manggarai")] == (6, 9)   # BPBD DKI's warning wording
    assert pairs[("sunter_hulu", "pulo_gadung")] == (4, 4)
    assert pairs[("cipinang_hulu", "pulo_gadung")] == (4.5, 4.5)
    assert all(t.source for t in TABLE.travel_times)
    assert TABLE.travel_time("manggarai", "katulampa") is None
