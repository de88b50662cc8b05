"""ISPU (Permen LHK P.14/2020): every breakpoint, band interiors, averaging, properties.

The reference table below is transcribed from the project's first reference notes (kept outside
this repository; docs/standards.md, section "ISPU breakpoints", lists the numbers and sources in
use), independently of kota/standards/ispu.yaml, so a drift in either shows here. No published
worked example of a P.14/2020 sub-index was found (searches of KLHK pages and public
implementations gave tables but no computed examples), so band interiors are checked against the
regulation's formula I = (Ia − Ib) / (Xa − Xb) × (Xx − Xb) + Ib applied to this transcription.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kota.indices.ispu import (
    UnknownParameterError,
    average_for_ispu,
    ispu_category,
    ispu_published,
    ispu_sub_index,
    station_ispu,
)
from kota.standards import load_ispu_table

# P.14/2020: upper limit of each band in µg/m³, bands 0–50, 51–100, 101–200, 201–300, 301–500.
REFERENCE_UPPER_LIMITS: dict[str, list[float]] = {
    "pm10": [50, 150, 350, 420, 500],
    "pm25": [15.5, 55.4, 150.4, 250.4, 500],
    "so2": [52, 180, 400, 800, 1200],
    "co": [4000, 8000, 15000, 30000, 45000],
    "o3": [120, 235, 400, 800, 1000],
    "no2": [80, 200, 1130, 2260, 3000],
    "hc": [45, 100, 215, 432, 648],
}
REFERENCE_INDEX = [50, 100, 200, 300, 500]
REFERENCE_CATEGORIES = ["Baik", "Sedang", "Tidak Sehat", "Sangat Tidak Sehat", "Berbahaya"]

EDGES = [(p, band, limit) for p, limits in REFERENCE_UPPER_LIMITS.items()
         for band, limit in enumerate(limits)]


def test_shipped_table_matches_the_reference() -> None:
    table = load_ispu_table()
    assert set(table.parameters) == set(REFERENCE_UPPER_LIMITS)
    for name, limits in REFERENCE_UPPER_LIMITS.items():
        assert table.parameters[name].edges_ugm3 == [0, *limits]
    assert table.index_scale.edges == [0, *REFERENCE_INDEX]
    assert [c.name for c in table.categories.bands] == REFERENCE_CATEGORIES


@pytest.mark.parametrize(("parameter", "band", "limit_ugm3"), EDGES)
def test_sub_index_at_every_breakpoint(parameter: str, band: int, limit_ugm3: float) -> None:
    assert ispu_sub_index(parameter, limit_ugm3) == pytest.approx(REFERENCE_INDEX[band])


def _concentration_for(parameter: str, ispu: float) -> float:
    """The concentration whose sub-index is ``ispu`` (inverse of the formula, reference table)."""
    edges_x = [0, *REFERENCE_UPPER_LIMITS[parameter]]
    edges_i = [0, *REFERENCE_INDEX]
    band = next(b for b in range(1, len(edges_i)) if ispu <= edges_i[b])
    return edges_x[band - 1] + (ispu - edges_i[band - 1]) * (
        (edges_x[band] - edges_x[band - 1]) / (edges_i[band] - edges_i[band - 1]))


@pytest.mark.parametrize(("parameter", "band", "limit_ugm3"), EDGES)
def test_category_follows_the_published_whole_number_at_every_breakpoint(
        parameter: str, band: int, limit_ugm3: float) -> None:
    at_edge = station_ispu({parameter: limit_ugm3})
    assert at_edge.ispu == REFERENCE_INDEX[band]
    assert at_edge.category is not None and at_edge.category.name == REFERENCE_CATEGORIES[band]
    if band < len(REFERENCE_INDEX) - 1:
        # just above the edge, still rounding down to it: the same category
        barely = station_ispu({parameter: _concentration_for(parameter,
                                                             REFERENCE_INDEX[band] + 0.4)})
        assert barely.ispu == REFERENCE_INDEX[band]
        assert barely.category is not None
        assert barely.category.name == REFERENCE_CATEGORIES[band]
        # half a point above rounds up to the first whole number of the next category
        above = station_ispu({parameter: _concentration_for(parameter,
                                                            REFERENCE_INDEX[band] + 0.5)})
        assert above.ispu == REFERENCE_INDEX[band] + 1
        assert above.category is not None
        assert above.category.name == REFERENCE_CATEGORIES[band + 1]


@pytest.mark.parametrize(("value", "published"), [
    (0.0, 0), (0.49, 0), (0.5, 1), (50.0, 50), (50.005, 50), (50.49, 50), (50.5, 51),
    (100.4999999999999, 101), (100.49, 100), (199.5, 200), (200.5, 201), (300.5, 301),
    (499.6, 500)])
def test_published_ispu_rounds_half_up(value: float, published: int) -> None:
    assert ispu_published(value) == published


def test_the_issue_examples() -> None:
    """PM10 at 50.01 µg/m³ was shown as "ISPU 50.0: Sedang": it is ISPU 50, Baik."""
    result = station_ispu({"pm10": 50.01})
    assert result.ispu == 50 and result.category is not None
    assert result.category.name == "Baik" and result.category.hex == ispu_category(50).hex
    assert ispu_category(50.5).name == "Sedang"  # the 50.5 a dashboard drew green


# Hue ranges (degrees) for the colour words of P.14/2020; black is dark and unsaturated.
COLOUR_HUES = {"hijau": (90, 150), "biru": (200, 250), "kuning": (50, 65), "merah": (345, 375)}


def _hue_saturation_value(hex_colour: str) -> tuple[float, float, float]:
    r, g, b = (int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5))
    high, low = max(r, g, b), min(r, g, b)
    if high == low:
        return 0.0, 0.0, high
    span = high - low
    hue = (60 * ((g - b) / span % 6) if high == r else
           60 * ((b - r) / span + 2) if high == g else 60 * ((r - g) / span + 4))
    return hue, span / high, high


@pytest.mark.parametrize("band", load_ispu_table().categories.bands, ids=lambda b: b.name)
def test_every_category_hex_matches_its_colour_word(band: object) -> None:
    hue, saturation, value = _hue_saturation_value(band.hex)  # type: ignore[attr-defined]
    word = band.colour  # type: ignore[attr-defined]
    if word == "hitam":
        assert value < 0.15
        return
    low, high = COLOUR_HUES[word]
    assert low <= hue <= high or low <= hue + 360 <= high, (word, band.hex, hue)  # type: ignore[attr-defined]
    assert saturation > 0.6 and value > 0.5


@pytest.mark.parametrize("ispu", [0, 1, 50, 51, 100, 101, 200, 201, 300, 301, 500])
def test_colour_and_category_at_every_category_edge(ispu: int) -> None:
    table = load_ispu_table()
    expected = next(b for b in table.categories.bands if ispu <= b.index_max)
    band = ispu_category(ispu)
    assert band.name == expected.name and band.hex == expected.hex
    assert band.health.advice_id and band.health.advice_en and band.health.meaning_id
    assert ispu_category(ispu - 0.5 if ispu else 0).name == (
        ispu_category(ispu).name)  # x.5 below a whole number rounds up to it


@pytest.mark.parametrize(("parameter", "band", "limit_ugm3"), EDGES)
@pytest.mark.parametrize("fraction", [0.25, 0.5, 0.9])
def test_band_interior_follows_the_regulation_formula(parameter: str, band: int,
                                                      limit_ugm3: float, fraction: float) -> None:
    x_low = 0 if band == 0 else REFERENCE_UPPER_LIMITS[parameter][band - 1]
    i_low = 0 if band == 0 else REFERENCE_INDEX[band - 1]
    x = x_low + fraction * (limit_ugm3 - x_low)
    expected = (REFERENCE_INDEX[band] - i_low) / (limit_ugm3 - x_low) * (x - x_low) + i_low
    assert ispu_sub_index(parameter, x) == pytest.approx(expected)


def test_zero_concentration_is_zero() -> None:
    assert all(ispu_sub_index(p, 0.0) == 0 for p in REFERENCE_UPPER_LIMITS)


def test_above_the_top_caps_at_500_and_is_flagged() -> None:
    assert ispu_sub_index("pm25", 900) == 500
    result = station_ispu({"pm25": 900, "pm10": 20})
    assert result.ispu == 500 and result.beyond_scale == ["pm25"]
    assert result.category is not None and result.category.name == "Berbahaya"


def test_extrapolate_option_continues_the_top_band() -> None:
    table = load_ispu_table().model_copy(update={"above_top_of_scale": "extrapolate"})
    # Top PM2.5 band 250.4–500 → 300–500; 100 µg/m³ more is 100 × 200 / 249.6 more ISPU.
    assert ispu_sub_index("pm25", 600, table) == pytest.approx(500 + 100 * 200 / 249.6)


def test_parameter_names_are_forgiving_but_unknown_ones_are_refused() -> None:
    assert ispu_sub_index("PM2.5", 55.4) == pytest.approx(100)
    with pytest.raises(UnknownParameterError, match="pm10, pm25"):
        ispu_sub_index("pm1", 10)


@pytest.mark.parametrize("bad", [-0.1, math.nan, math.inf])
def test_bad_concentrations_are_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="pm25"):
        ispu_sub_index("pm25", bad)


def test_station_ispu_critical_parameter_and_insufficient() -> None:
    result = station_ispu({"pm25": 80, "pm10": 120, "so2": None})
    assert result.critical_parameter == "pm25"
    assert result.ispu_exact == max(result.sub_indices.values())
    assert result.ispu == ispu_published(result.ispu_exact)
    assert result.insufficient == ["so2"]
    assert result.category is not None and result.category.name == "Tidak Sehat"
    assert result.category.colour == "kuning" and result.category.hex == "#ffff00"
    assert "merugikan" in result.category.meaning_id


def test_station_without_any_data_has_no_ispu() -> None:
    result = station_ispu({"pm25": None, "o3": None})
    assert result.ispu is None and result.category is None and result.critical_parameter is None
    assert result.insufficient == ["pm25", "o3"]


def test_station_refuses_a_parameter_given_twice() -> None:
    with pytest.raises(ValueError, match="twice"):
        station_ispu({"pm25": 10, "PM2.5": 12})


def test_uncertain_breakpoints_are_noted() -> None:
    notes = station_ispu({"so2": 1000}).uncertain
    assert any("1200" in note and "⚠️" in note for note in notes)
    assert station_ispu({"co": 5000}).uncertain == []


# -- averaging -------------------------------------------------------------------------------
def test_24_hour_mean_needs_18_valid_hours() -> None:
    enough = [10.0] * 18 + [None] * 6
    result = average_for_ispu(enough, "pm25")
    assert not result.insufficient and result.mean_ugm3 == pytest.approx(10.0)
    assert result.valid_hours == 18 and result.window_hours == 24
    too_few = [10.0] * 17 + [None] * 7
    short = average_for_ispu(too_few, "pm25")
    assert short.insufficient and short.mean_ugm3 is None


def test_window_takes_the_latest_hours_and_counts_absent_ones_missing() -> None:
    hours = [1000.0] * 10 + [float(h) for h in range(24)]
    assert average_for_ispu(hours, "pm10").mean_ugm3 == pytest.approx(sum(range(24)) / 24)
    assert average_for_ispu([5.0] * 17, "pm10").insufficient
    nan_hours = [5.0] * 17 + [math.nan] * 7
    assert average_for_ispu(nan_hours, "pm10").insufficient


def test_one_hour_parameters_use_the_latest_hour() -> None:
    result = average_for_ispu([300.0, 100.0], "o3")
    assert result.window_hours == 1 and result.mean_ugm3 == 100.0
    assert average_for_ispu([300.0, None], "o3").insufficient


def test_averaging_rule_is_marked_unverified() -> None:
    assert average_for_ispu([1.0], "no2").confidence.mark == "❌"


# -- properties ------------------------------------------------------------------------------
parameters = st.sampled_from(sorted(REFERENCE_UPPER_LIMITS))
concentrations = st.floats(min_value=0, max_value=60000, allow_nan=False)


@given(parameters, concentrations, concentrations)
def test_monotone_non_decreasing(parameter: str, a: float, b: float) -> None:
    low, high = sorted((a, b))
    assert ispu_sub_index(parameter, low) <= ispu_sub_index(parameter, high)


@given(parameters, concentrations)
def test_bounded_0_to_500(parameter: str, concentration: float) -> None:
    assert 0 <= ispu_sub_index(parameter, concentration) <= 500


@settings(max_examples=300)
@given(st.sampled_from([e for e in EDGES if e[1] < len(REFERENCE_INDEX) - 1]),
       st.floats(min_value=1e-6, max_value=1e-2))
def test_continuous_across_band_edges(edge: tuple[str, int, float], delta: float) -> None:
    parameter, band, limit = edge
    edges_x = [0, *REFERENCE_UPPER_LIMITS[parameter]]
    edges_i = [0, *REFERENCE_INDEX]
    steepest = max((edges_i[b + 1] - edges_i[b]) / (edges_x[b + 1] - edges_x[b])
                   for b in (band, band + 1))
    jump = ispu_sub_index(parameter, limit + delta) - ispu_sub_index(parameter, limit - delta)
    assert 0 <= jump <= 2 * delta * steepest * (1 + 1e-6) + 1e-9


@given(st.dictionaries(parameters, st.one_of(st.none(), concentrations), min_size=1))
def test_station_ispu_is_the_max_of_its_sub_indices(values: dict[str, float | None]) -> None:
    result = station_ispu(values)
    measured = {k: v for k, v in values.items() if v is not None}
    assert result.sub_indices == {k: ispu_sub_index(k, v) for k, v in measured.items()}
    if measured:
        assert result.ispu_exact == max(result.sub_indices.values())
        assert result.ispu == ispu_published(result.ispu_exact)
        assert isinstance(result.ispu, int)
        assert result.critical_parameter is not None
        assert result.sub_indices[result.critical_parameter] == result.ispu_exact
    else:
        assert result.ispu is None
    assert sorted(result.insufficient) == sorted(k for k, v in values.items() if v is None)
