"""US EPA Air Quality Index for PM2.5 (2024 table) and PM10, for comparison with ISPU.

Pure functions over :class:`kota.standards.AqiTables` (``kota/standards/aqi_us.yaml``). The
concentration is truncated (PM2.5 to 0.1 µg/m³, PM10 to 1 µg/m³) before the band is found, so
the gaps between bands (9.0 → 9.1) cannot be hit; the index is
``I = (Ihi − Ilo) / (Chi − Clo) × (C − Clo) + Ilo`` rounded half up to an integer. Above the top
band the shipped table caps at 500 (flagged ``beyond_scale``).
"""

from __future__ import annotations

import math
from decimal import ROUND_DOWN, Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict

from kota.standards import AqiTables, Confidence, load_aqi_tables

__all__ = ["AqiResult", "truncate_concentration", "us_aqi"]

AqiPollutantName = Literal["pm25", "pm10"]


class AqiResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    pollutant: str
    concentration_ugm3: float
    truncated_ugm3: float
    aqi: int
    category: str
    colour: str
    colour_confidence: Confidence
    beyond_scale: bool


def truncate_concentration(concentration_ugm3: float, decimals: int) -> float:
    """Truncate (not round) to ``decimals`` places, exactly in decimal: 35.49 → 35.4."""
    quantum = Decimal(1).scaleb(-decimals)
    return float(Decimal(repr(concentration_ugm3)).quantize(quantum, rounding=ROUND_DOWN))


def us_aqi(pollutant: AqiPollutantName | str, concentration_ugm3: float,
           tables: AqiTables | None = None) -> AqiResult:
    """The US AQI of a 24-hour mean concentration in µg/m³ of ``pm25`` or ``pm10``."""
    tables = tables if tables is not None else load_aqi_tables()
    key = pollutant.strip().lower().replace(".", "")
    if key not in tables.pollutants:
        raise ValueError(f"unknown AQI pollutant {pollutant!r} "
                         f"(known: {', '.join(tables.pollutants)})")
    if not math.isfinite(concentration_ugm3) or concentration_ugm3 < 0:
        raise ValueError(f"{key}: concentration must be a finite number ≥ 0, "
                         f"got {concentration_ugm3}")
    spec = tables.pollutants[key]
    truncated = truncate_concentration(concentration_ugm3, spec.truncate_decimals)
    top = spec.bands[-1]
    beyond = truncated > top.c_high
    band = next((b for b in spec.bands if truncated <= b.c_high), top)
    if beyond and tables.above_top_of_scale == "cap":
        index = top.i_high
    else:
        exact = ((band.i_high - band.i_low) / (band.c_high - band.c_low)
                 * (truncated - band.c_low) + band.i_low)
        index = math.floor(exact + 0.5)
    category = next((c for c in tables.categories.bands if index <= c.index_max),
                    tables.categories.bands[-1])
    return AqiResult(pollutant=key, concentration_ugm3=concentration_ugm3,
                     truncated_ugm3=truncated, aqi=index, category=category.name,
                     colour=category.colour,
                     colour_confidence=tables.categories.colour_confidence, beyond_scale=beyond)
