"""BMKG rainfall categories, hourly and daily, at every edge (docs/standards.md).

Edges are upper-inclusive: the sources give shared edges (Ringan 0.5–20, Sedang 20–50, …,
Ekstrem > 150), and "> 150" / "> 20" put the shared edge in the lower category.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kota.indices.rain import bmkg_daily_category, bmkg_hourly_category

# BMKG categories, mm/day ✅ and mm/hour ⚠️: (upper edge, category at the edge, category above)
DAILY_EDGES = [(20, "Ringan", "Sedang"), (50, "Sedang", "Lebat"), (100, "Lebat", "Sangat lebat"),
               (150, "Sangat lebat", "Ekstrem")]
HOURLY_EDGES = [(1, "Sangat ringan", "Ringan"), (5, "Ringan", "Sedang"), (10, "Sedang", "Lebat"),
                (20, "Lebat", "Sangat lebat")]


@pytest.mark.parametrize(("edge", "at", "above"), DAILY_EDGES)
def test_daily_edges(edge: float, at: str, above: str) -> None:
    assert bmkg_daily_category(edge).name == at
    assert bmkg_daily_category(edge + 0.01).name == above
    assert bmkg_daily_category(edge).unit == "mm/day"


@pytest.mark.parametrize(("edge", "at", "above"), HOURLY_EDGES)
def test_hourly_edges(edge: float, at: str, above: str) -> None:
    assert bmkg_hourly_category(edge).name == at
    assert bmkg_hourly_category(edge + 0.01).name == above
    assert bmkg_hourly_category(edge).confidence.mark == "⚠️"


def test_no_rain() -> None:
    assert bmkg_hourly_category(0).name == "Tidak hujan"
    assert bmkg_hourly_category(0).index == 0
    assert bmkg_hourly_category(0.2).name == "Sangat ringan"  # one 0.2 mm tip
    assert bmkg_daily_category(0).name == "Tidak hujan"


def test_daily_below_half_a_millimetre_is_no_rain_and_marked_as_our_convention() -> None:
    below = bmkg_daily_category(0.49)
    assert below.name == "Tidak hujan" and below.confidence.mark == "❌"
    assert bmkg_daily_category(0.5).name == "Ringan"


def test_ranges_are_reported() -> None:
    sedang = bmkg_daily_category(30)
    assert (sedang.min_mm, sedang.max_mm, sedang.min_inclusive, sedang.max_inclusive) == (
        20, 50, False, True)
    ekstrem = bmkg_daily_category(400)
    assert ekstrem.max_mm is None and ekstrem.index == 5


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_bad_input(bad: float) -> None:
    with pytest.raises(ValueError, match="rain"):
        bmkg_hourly_category(bad)


@given(st.floats(min_value=0, max_value=1000, allow_nan=False),
       st.floats(min_value=0, max_value=1000, allow_nan=False))
def test_category_index_monotone(a: float, b: float) -> None:
    low, high = sorted((a, b))
    assert bmkg_daily_category(low).index <= bmkg_daily_category(high).index
    assert bmkg_hourly_category(low).index <= bmkg_hourly_category(high).index


@given(st.floats(min_value=0, max_value=1000, allow_nan=False))
def test_value_lies_in_its_category_range(rain: float) -> None:
    category = bmkg_daily_category(rain)
    assert rain >= category.min_mm if category.min_inclusive else rain > category.min_mm
    if category.max_mm is not None:
        assert rain <= category.max_mm if category.max_inclusive else rain < category.max_mm
