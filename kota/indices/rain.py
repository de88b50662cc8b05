"""BMKG rainfall intensity categories, hourly (mm/h) and daily (mm/day).

Pure functions over :class:`kota.standards.RainTables` (``kota/standards/bmkg_rain.yaml``).
A category covers (previous edge, its max_mm]; 0 mm is "Tidak hujan".
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict

from kota.standards import Confidence, RainScale, RainTables, load_rain_tables

__all__ = ["RainCategory", "bmkg_daily_category", "bmkg_hourly_category", "rain_category"]


class RainCategory(BaseModel):
    """A rainfall category: its name, its rank (0 = no rain) and its range in ``unit``."""

    model_config = ConfigDict(frozen=True)

    name: str
    index: int
    min_mm: float
    max_mm: float | None
    min_inclusive: bool
    max_inclusive: bool
    unit: str
    confidence: Confidence


def rain_category(rain_mm: float, scale: RainScale) -> RainCategory:
    """The category of ``scale`` that holds ``rain_mm`` (a depth ≥ 0 in the scale's unit)."""
    if not math.isfinite(rain_mm) or rain_mm < 0:
        raise ValueError(f"rain must be a finite number ≥ 0 {scale.unit}, got {rain_mm}")
    previous = 0.0
    previous_exclusive = False
    for index, category in enumerate(scale.categories):
        edge = category.max_mm
        inside = edge is None or (rain_mm < edge if category.exclusive_max else rain_mm <= edge)
        if inside:
            return RainCategory(
                name=category.name, index=index, min_mm=previous,
                min_inclusive=index == 0 or previous_exclusive, max_mm=edge,
                max_inclusive=edge is not None and not category.exclusive_max, unit=scale.unit,
                confidence=category.confidence or scale.confidence)
        assert edge is not None
        previous, previous_exclusive = edge, category.exclusive_max
    raise AssertionError("the last category is open-ended")  # guaranteed by RainScale


def bmkg_hourly_category(rain_mm_per_h: float, tables: RainTables | None = None) -> RainCategory:
    """BMKG category of an hour's rain in mm/h (⚠️: from a river-basin portal, not BMKG)."""
    return rain_category(rain_mm_per_h, (tables or load_rain_tables()).hourly)


def bmkg_daily_category(rain_mm_per_day: float, tables: RainTables | None = None) -> RainCategory:
    """BMKG category of a day's rain in mm/day."""
    return rain_category(rain_mm_per_day, (tables or load_rain_tables()).daily)
