"""US EPA Air Quality Index for PM2.5 (2024 table), PM10, O3, CO, NO2 and SO2, and the NowCast.

Pure functions over :class:`kota.standards.AqiTables` (``kota/standards/aqi_us.yaml``).

- Gases arrive in µg/m³ and are converted to the table's ppm/ppb at the file's stated
  temperature and pressure (``ppb = µg/m³ × 24.45 / molecular weight`` at 25 °C, 1 atm), in
  decimal so a value on a breakpoint stays on it.
- The concentration is truncated (O3 to 0.001 ppm, CO 0.1 ppm, PM2.5 0.1 µg/m³, PM10, SO2 and
  NO2 to whole units) before its band is found, so the gaps between bands (9.0 → 9.1) cannot be
  hit; the index ``I = (Ihi − Ilo) / (Chi − Clo) × (C − Clo) + Ilo`` is rounded half up.
- Ozone: the 8-hour and the 1-hour tables each give an index where they are defined (8-hour up
  to 300, 1-hour from 101), the larger is reported. SO2: the 1-hour table up to 200, the 24-hour
  mean above. Above the top of the scale the shipped table caps at 500 (``beyond_scale``).
- The overall AQI is the highest sub-index; its pollutant is named (``responsible``).
- :func:`nowcast` is AirNow's hourly PM figure: a weighted mean of the last 12 hourly means.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from decimal import ROUND_DOWN, Decimal

from pydantic import BaseModel, ConfigDict

from kota.standards import AqiPollutant, AqiTables, Confidence, load_aqi_tables

__all__ = ["AqiCategoryResult", "AqiResult", "AverageResult", "NowcastResult", "UsAqiResult",
           "aqi_category", "average_for_aqi", "nowcast", "overall_aqi", "parameter_aqi",
           "table_aqi", "to_table_unit", "truncate_concentration", "us_aqi"]


class AqiCategoryResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    colour: str
    hex: str
    colour_confidence: Confidence
    hex_confidence: Confidence


class AqiResult(BaseModel):
    """The index one breakpoint table gives one concentration."""

    model_config = ConfigDict(frozen=True)

    pollutant: str  # the table: pm25, o3_8h, so2_24h, ...
    parameter: str  # the air field: pm25, o3, so2, ...
    unit: str  # the table's unit: ug/m3, ppm or ppb
    concentration_ugm3: float | None  # None when given in the table's unit
    concentration: float  # in the table's unit, before truncation
    truncated: float
    aqi: int
    category: str
    colour: str
    hex: str
    colour_confidence: Confidence
    beyond_scale: bool  # above the top of the whole scale (capped at 500)
    at_least: bool = False  # above this table's top and the table that continues it is missing


class UsAqiResult(BaseModel):
    """A station's US AQI: one sub-index per parameter, the highest and the pollutant it is."""

    model_config = ConfigDict(frozen=True)

    sub_indices: dict[str, AqiResult]
    aqi: int | None
    responsible: str | None  # the parameter with the highest sub-index
    category: AqiCategoryResult | None
    undefined: list[str]  # parameters given whose values define no index (1-h O3 < 0.125 ppm)


class NowcastResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    parameter: str
    concentration_ugm3: float | None  # None when the recent hours are insufficient
    weight: float | None
    hours_used: int
    insufficient: bool


class AverageResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    pollutant: str
    mean_ugm3: float | None
    valid_hours: int
    window_hours: int
    insufficient: bool


def _tables(tables: AqiTables | None) -> AqiTables:
    return tables if tables is not None else load_aqi_tables()


def _table_key(pollutant: str, tables: AqiTables) -> str:
    key = pollutant.strip().lower().replace(".", "").replace("-", "_")
    if key not in tables.pollutants:
        raise ValueError(f"unknown AQI pollutant {pollutant!r} "
                         f"(known: {', '.join(tables.pollutants)})")
    return key


def _check_concentration(name: str, value: float) -> None:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name}: concentration must be a finite number ≥ 0, got {value}")


def _decimal(value: float) -> Decimal:
    return Decimal(repr(float(value)))


def truncate_concentration(concentration: float, decimals: int) -> float:
    """Truncate (not round) to ``decimals`` places, exactly in decimal: 35.49 → 35.4."""
    quantum = Decimal(1).scaleb(-decimals)
    return float(_decimal(concentration).quantize(quantum, rounding=ROUND_DOWN))


def to_table_unit(pollutant: str, concentration_ugm3: float,
                  tables: AqiTables | None = None) -> float:
    """``concentration_ugm3`` in the unit of table ``pollutant`` (ppm or ppb for the gases), at
    the temperature and pressure of the file's ``conversion``."""
    tables = _tables(tables)
    key = _table_key(pollutant, tables)
    _check_concentration(key, concentration_ugm3)
    return float(_converted(tables.pollutants[key], _decimal(concentration_ugm3), tables))


def _converted(table: AqiPollutant, ugm3: Decimal, tables: AqiTables) -> Decimal:
    if table.unit == "ug/m3":
        return ugm3
    conversion = tables.conversion
    ppb = (ugm3 * _decimal(conversion.molar_volume_l_per_mol)
           / _decimal(conversion.molecular_weight_g_per_mol[table.parameter]))
    return ppb / 1000 if table.unit == "ppm" else ppb


def aqi_category(index: int, tables: AqiTables | None = None) -> AqiCategoryResult:
    """The category, colour word and EPA hex colour of a whole-number AQI."""
    categories = _tables(tables).categories
    band = next((c for c in categories.bands if index <= c.index_max), categories.bands[-1])
    return AqiCategoryResult(name=band.name, colour=band.colour, hex=band.hex,
                             colour_confidence=categories.colour_confidence,
                             hex_confidence=categories.hex_confidence)


def _index(table: AqiPollutant, truncated: Decimal) -> int:
    band = next(b for b in table.bands if truncated <= _decimal(b.c_high))
    exact = (Decimal(band.i_high - band.i_low) / (_decimal(band.c_high) - _decimal(band.c_low))
             * (truncated - _decimal(band.c_low)) + band.i_low)
    return int((exact + Decimal("0.5")).to_integral_value(rounding=ROUND_DOWN))


def _result(key: str, table: AqiPollutant, value: Decimal, truncated: Decimal, index: int,
            tables: AqiTables, ugm3: float | None, *, beyond: bool = False,
            at_least: bool = False) -> AqiResult:
    category = aqi_category(index, tables)
    return AqiResult(pollutant=key, parameter=table.parameter, unit=table.unit,
                     concentration_ugm3=ugm3, concentration=float(value),
                     truncated=float(truncated), aqi=index, category=category.name,
                     colour=category.colour, hex=category.hex,
                     colour_confidence=category.colour_confidence, beyond_scale=beyond,
                     at_least=at_least)


def _truncate(value: Decimal, decimals: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_DOWN)


def _evaluate(key: str, value: Decimal, tables: AqiTables, ugm3: float | None,
              continued: bool) -> AqiResult | str | None:
    """The table's index; None below its first band; ``"above"`` above its top when
    ``continued`` (another table of the parameter takes over there)."""
    table = tables.pollutants[key]
    truncated = _truncate(value, table.truncate_decimals)
    if truncated < _decimal(table.bands[0].c_low):
        return None
    top = table.bands[-1]
    if truncated > _decimal(top.c_high):
        if continued:
            return "above"
        if tables.above_top_of_scale == "cap":
            return _result(key, table, value, truncated, top.i_high, tables, ugm3, beyond=True)
        exact = (Decimal(top.i_high - top.i_low) / (_decimal(top.c_high) - _decimal(top.c_low))
                 * (truncated - _decimal(top.c_low)) + top.i_low)
        index = int((exact + Decimal("0.5")).to_integral_value(rounding=ROUND_DOWN))
        return _result(key, table, value, truncated, index, tables, ugm3, beyond=True)
    return _result(key, table, value, truncated, _index(table, truncated), tables, ugm3)


def table_aqi(pollutant: str, concentration: float, tables: AqiTables | None = None, *,
              unit: str = "table") -> AqiResult | None:
    """The index of one table (``pm25``, ``o3_8h``, ``so2_24h``, ...) on its own.

    ``concentration`` is in the table's unit (ppm, ppb, µg/m³), or in µg/m³ with
    ``unit="ug/m3"``. None when the table does not define it (1-hour ozone below 0.125 ppm,
    24-hour SO2 below 305 ppb). Above the table's top it caps (``beyond_scale``), even for a
    table another one continues: use :func:`parameter_aqi` for EPA's rule between the two.
    """
    tables = _tables(tables)
    key = _table_key(pollutant, tables)
    _check_concentration(key, concentration)
    if unit not in ("table", "ug/m3"):
        raise ValueError(f"unit must be 'table' or 'ug/m3', got {unit!r}")
    ugm3 = concentration if unit == "ug/m3" else None
    value = (_converted(tables.pollutants[key], _decimal(concentration), tables)
             if unit == "ug/m3" else _decimal(concentration))
    result = _evaluate(key, value, tables, ugm3, continued=False)
    assert not isinstance(result, str)
    return result


def us_aqi(pollutant: str, concentration_ugm3: float,
           tables: AqiTables | None = None) -> AqiResult:
    """The US AQI of one table from a concentration in µg/m³ (``pm25``, ``pm10``: 24-hour mean;
    ``co``, ``o3_8h``: 8-hour; ``no2``, ``o3_1h``, ``so2_1h``: 1-hour; ``so2_24h``).

    Raises ValueError when the table defines no index for it (1-hour ozone below 0.125 ppm).
    """
    result = table_aqi(pollutant, concentration_ugm3, tables, unit="ug/m3")
    if result is None:
        raise ValueError(f"{pollutant}: {concentration_ugm3:g} µg/m³ is below the table's first "
                         "breakpoint, which defines no index there")
    return result


def parameter_aqi(parameter: str, concentrations_ugm3: Mapping[str, float | None],
                  tables: AqiTables | None = None) -> AqiResult | None:
    """One parameter's sub-index from its tables' values in µg/m³ (keys: table names, e.g.
    ``{"o3_8h": 140.0, "o3_1h": 260.0}``), by the file's ``combine`` rule; None when no table
    gives one."""
    tables = _tables(tables)
    keys = tables.tables_of(parameter)
    if not keys:
        raise ValueError(f"unknown AQI parameter {parameter!r} "
                         f"(known: {', '.join(tables.parameters())})")
    values: dict[str, Decimal] = {}
    for key in keys:
        raw = concentrations_ugm3.get(key)
        if raw is not None:
            _check_concentration(key, raw)
            values[key] = _converted(tables.pollutants[key], _decimal(raw), tables)

    def evaluate(key: str, continued: bool) -> AqiResult | str | None:
        raw = concentrations_ugm3.get(key)
        return _evaluate(key, values[key], tables, raw, continued)

    def at_top(key: str, *, at_least: bool) -> AqiResult:
        table = tables.pollutants[key]
        value = values[key]
        truncated = _truncate(value, table.truncate_decimals)
        return _result(key, table, value, truncated, table.bands[-1].i_high, tables,
                       concentrations_ugm3.get(key), at_least=at_least)

    if len(keys) == 1:
        result = evaluate(keys[0], False) if keys[0] in values else None
        return None if isinstance(result, str) else result
    first, second = keys
    rule = tables.combine[parameter].rule
    if rule == "larger":
        candidates: list[AqiResult] = []
        if first in values:
            result = evaluate(first, True)
            if result == "above":
                if second not in values:
                    candidates.append(at_top(first, at_least=True))
            elif isinstance(result, AqiResult):
                candidates.append(result)
        if second in values:
            result = evaluate(second, False)
            if isinstance(result, AqiResult):
                candidates.append(result)
        return max(candidates, key=lambda r: r.aqi, default=None)
    # next_above_top: the first table up to its top, the second above it.
    if first in values:
        result = evaluate(first, True)
        if result != "above":
            return result if isinstance(result, AqiResult) else None
        if second not in values:
            return at_top(first, at_least=True)
        above = evaluate(second, False)
        return above if isinstance(above, AqiResult) else at_top(first, at_least=False)
    if second in values:
        result = evaluate(second, False)
        return result if isinstance(result, AqiResult) else None
    return None


def overall_aqi(concentrations_ugm3: Mapping[str, float | None],
                tables: AqiTables | None = None) -> UsAqiResult:
    """The station's US AQI from concentrations in µg/m³ keyed by table (``pm25``, ``pm10``,
    ``o3_8h``, ``o3_1h``, ``co``, ``no2``, ``so2_1h``, ``so2_24h``; None or absent = not
    measured): each parameter's sub-index, the highest, and which parameter it is."""
    tables = _tables(tables)
    given = {_table_key(key, tables): value for key, value in concentrations_ugm3.items()
             if value is not None}
    sub_indices: dict[str, AqiResult] = {}
    undefined: list[str] = []
    for parameter in tables.parameters():
        if not any(key in given for key in tables.tables_of(parameter)):
            continue
        result = parameter_aqi(parameter, given, tables)
        if result is None:
            undefined.append(parameter)
        else:
            sub_indices[parameter] = result
    if not sub_indices:
        return UsAqiResult(sub_indices={}, aqi=None, responsible=None, category=None,
                           undefined=undefined)
    # Ties go to the first parameter in the file's order (PM2.5 first).
    responsible = max(sub_indices, key=lambda p: sub_indices[p].aqi)
    index = sub_indices[responsible].aqi
    return UsAqiResult(sub_indices=sub_indices, aqi=index, responsible=responsible,
                       category=aqi_category(index, tables), undefined=undefined)


def _clean(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    if value < 0:
        raise ValueError(f"hourly concentration must be ≥ 0, got {value}")
    return float(value)


def average_for_aqi(hourly_oldest_first: Sequence[float | None], pollutant: str,
                    tables: AqiTables | None = None) -> AverageResult:
    """The mean of the last ``window_hours`` hourly means (µg/m³, oldest first, None or NaN
    for a missing hour) for table ``pollutant``; insufficient with fewer than
    ``min_valid_hours`` valid."""
    tables = _tables(tables)
    key = _table_key(pollutant, tables)
    rule = tables.pollutants[key].averaging
    window = [_clean(v) for v in list(hourly_oldest_first)[-rule.window_hours:]]
    valid = [v for v in window if v is not None]
    if len(valid) < rule.min_valid_hours:
        return AverageResult(pollutant=key, mean_ugm3=None, valid_hours=len(valid),
                             window_hours=rule.window_hours, insufficient=True)
    return AverageResult(pollutant=key, mean_ugm3=math.fsum(valid) / len(valid),
                         valid_hours=len(valid), window_hours=rule.window_hours,
                         insufficient=False)


def nowcast(hourly_oldest_first: Sequence[float | None], parameter: str = "pm25",
            tables: AqiTables | None = None) -> NowcastResult:
    """EPA's NowCast of the hourly means (µg/m³, oldest first, the newest hour last; None or NaN
    for a missing hour).

    Of the last ``hours`` (12): weight ``w = 1 − (max − min) / max``, at least ``min_weight``
    (0.5); NowCast ``= Σ w^(i) c_i / Σ w^(i)`` with ``i`` hours ago (0 for the newest), over the
    hours that have a value. Insufficient unless ``min_recent_valid`` of the ``recent_hours``
    newest hours (2 of 3) have one. The result is not truncated: :func:`us_aqi` truncates it.
    """
    tables = _tables(tables)
    spec = tables.nowcast
    key = parameter.strip().lower().replace(".", "")
    if key not in spec.parameters:
        raise ValueError(f"NowCast is for {', '.join(spec.parameters)}, not {parameter!r}")
    window = [_clean(v) for v in list(hourly_oldest_first)[-spec.hours:]]
    newest_first = window[::-1]
    recent = [v for v in newest_first[:spec.recent_hours] if v is not None]
    present = [(ago, v) for ago, v in enumerate(newest_first) if v is not None]
    if len(recent) < spec.min_recent_valid:
        return NowcastResult(parameter=key, concentration_ugm3=None, weight=None,
                             hours_used=len(present), insufficient=True)
    values = [v for _ago, v in present]
    highest, lowest = max(values), min(values)
    # All zero: no spread, every hour weighs the same.
    weight = 1.0 if highest == 0 else max(1 - (highest - lowest) / highest, spec.min_weight)
    numerator = math.fsum(weight ** ago * v for ago, v in present)
    denominator = math.fsum(weight ** ago for ago, _v in present)
    return NowcastResult(parameter=key, concentration_ugm3=numerator / denominator,
                         weight=weight, hours_used=len(present), insufficient=False)
