"""ISPU (Permen LHK P.14/2020): sub-index per parameter, station ISPU, averaging with completeness.

Pure functions over :class:`kota.standards.IspuTable` (``kota/standards/ispu.yaml``); no I/O
beyond reading the shipped table once when ``table`` is not given.

Interpolation uses shared band edges, as the regulation lists only each band's upper limit:
``I = (Ia − Ib) / (Xa − Xb) × (Xx − Xb) + Ib`` with Xb, Xa the band's lower and upper
concentration and Ib, Ia its ISPU edges. A concentration on an edge belongs to the lower band
(50 µg/m³ PM10 is ISPU 50, Baik). Above the top edge the table's ``above_top_of_scale`` decides:
``cap`` (shipped default) gives 500 and flags the parameter ``beyond_scale``; ``extrapolate``
continues the top band's slope.

The station's ISPU is published as KLHK does, a whole number (the table's ``rounding``: half
up), and its category follows that number: PM10 at 50.01 µg/m³ is ISPU 50, Baik; at 50.5 it is
ISPU 51, Sedang. Sub-indices stay unrounded (``ispu_exact`` is the unrounded station figure).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict

from kota.standards import Confidence, IspuCategory, IspuParameter, IspuTable, load_ispu_table

__all__ = [
    "AverageResult",
    "IspuCategoryResult",
    "IspuResult",
    "UnknownParameterError",
    "average_for_ispu",
    "ispu_category",
    "ispu_parameter",
    "ispu_parameters",
    "ispu_published",
    "ispu_sub_index",
    "parameter_key",
    "station_ispu",
]


def ispu_parameters(table: IspuTable | None = None) -> tuple[str, ...]:
    """The pollutants of the ISPU table (their air field names), in the table's order."""
    return tuple((table or load_ispu_table()).parameters)


class UnknownParameterError(ValueError):
    """A parameter name that the table does not have. ``known`` lists the names it has."""

    def __init__(self, parameter: str, known: Sequence[str]) -> None:
        super().__init__(f"unknown ISPU parameter {parameter!r} (known: {', '.join(known)})")
        self.parameter = parameter
        self.known = list(known)


class IspuCategoryResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    colour: str
    colour_en: str
    hex: str
    hex_confidence: Confidence
    meaning_id: str
    meaning_en: str
    advice_id: str
    advice_en: str
    advice_confidence: Confidence


class IspuResult(BaseModel):
    """A station's ISPU: the highest sub-index as a whole number, its parameter and category."""

    model_config = ConfigDict(frozen=True)

    sub_indices: dict[str, float]
    ispu: int | None
    ispu_exact: float | None
    critical_parameter: str | None
    category: IspuCategoryResult | None
    insufficient: list[str]
    beyond_scale: list[str]
    uncertain: list[str]


class AverageResult(BaseModel):
    """The mean over a parameter's averaging window, or ``insufficient`` when too few hours."""

    model_config = ConfigDict(frozen=True)

    parameter: str
    window_hours: int
    min_valid_hours: int
    valid_hours: int
    mean_ugm3: float | None
    insufficient: bool
    confidence: Confidence


def _table(table: IspuTable | None) -> IspuTable:
    return table if table is not None else load_ispu_table()


def parameter_key(parameter: str, table: IspuTable | None = None) -> str:
    """The table's key for ``parameter``, ignoring case, dots and underscores (PM2.5 → pm25)."""
    table = _table(table)
    key = parameter.strip().lower().replace(".", "").replace("_", "")
    if key not in table.parameters:
        raise UnknownParameterError(parameter, list(table.parameters))
    return key


def ispu_parameter(parameter: str, table: IspuTable | None = None) -> IspuParameter:
    """The breakpoints and averaging rule of ``parameter``."""
    table = _table(table)
    return table.parameters[parameter_key(parameter, table)]


def _band(edges: Sequence[float], value: float) -> int:
    """Index b ≥ 1 of the band (edges[b-1], edges[b]] holding ``value``; the top band above."""
    for band in range(1, len(edges)):
        if value <= edges[band]:
            return band
    return len(edges) - 1


def _check_concentration(parameter: str, concentration_ugm3: float) -> None:
    if not math.isfinite(concentration_ugm3):
        raise ValueError(f"{parameter}: concentration must be a finite number, "
                         f"got {concentration_ugm3}")
    if concentration_ugm3 < 0:
        raise ValueError(f"{parameter}: concentration cannot be negative, got {concentration_ugm3}")


def ispu_sub_index(parameter: str, concentration_ugm3: float,
                   table: IspuTable | None = None) -> float:
    """The ISPU sub-index of one parameter's averaged concentration in µg/m³ (not rounded).

    Raises :class:`UnknownParameterError` for a parameter the table lacks and ``ValueError``
    for a negative or non-finite concentration.
    """
    table = _table(table)
    spec = ispu_parameter(parameter, table)
    _check_concentration(parameter, concentration_ugm3)
    edges_x = spec.edges_ugm3
    edges_i = table.index_scale.edges
    if concentration_ugm3 <= edges_x[0]:
        return edges_i[0]
    if concentration_ugm3 > edges_x[-1] and table.above_top_of_scale == "cap":
        return edges_i[-1]
    band = _band(edges_x, concentration_ugm3)
    x_low, x_high = edges_x[band - 1], edges_x[band]
    i_low, i_high = edges_i[band - 1], edges_i[band]
    return (i_high - i_low) / (x_high - x_low) * (concentration_ugm3 - x_low) + i_low


def ispu_published(ispu: float, table: IspuTable | None = None) -> int:
    """The whole number KLHK publishes for a computed ISPU (the table's ``rounding``).

    ``half_up``: 50.49 → 50, 50.5 → 51. The value is first rounded to 9 decimals so that an
    interpolation landing a hair under .5 (100.49999999999) is not pushed down by float noise.
    """
    if not math.isfinite(ispu) or ispu < 0:
        raise ValueError(f"ISPU must be a finite number ≥ 0, got {ispu}")
    _table(table)  # the one rule the table can name today is half_up
    return math.floor(round(ispu, 9) + 0.5)


def ispu_category(ispu: float, table: IspuTable | None = None) -> IspuCategory:
    """The category of ``ispu`` after rounding it as published: 50.4 is Baik, 50.5 Sedang."""
    table = _table(table)
    published = ispu_published(ispu, table)
    for band in table.categories.bands:
        if published <= band.index_max:
            return band
    return table.categories.bands[-1]


def _category_result(ispu: float, table: IspuTable) -> IspuCategoryResult:
    band = ispu_category(ispu, table)
    return IspuCategoryResult(name=band.name, colour=band.colour, colour_en=band.colour_en,
                              hex=band.hex, hex_confidence=table.categories.hex_confidence,
                              meaning_id=band.health.meaning_id,
                              meaning_en=band.health.meaning_en,
                              advice_id=band.health.advice_id, advice_en=band.health.advice_en,
                              advice_confidence=band.health.confidence)


def _uncertainty_notes(parameter: str, concentration_ugm3: float, table: IspuTable) -> list[str]:
    """Notes for a sub-index computed in a band whose edge is not fully verified."""
    spec = ispu_parameter(parameter, table)
    notes = []
    edges = spec.edges_ugm3
    band = _band(edges, concentration_ugm3)
    for edge in (edges[band - 1], edges[band]):
        confidence = spec.edge_confidence(edge)
        if confidence is not Confidence.VERIFIED:
            note = next(e.note for e in spec.uncertain_edges if e.edge_ugm3 == edge)
            notes.append(f"{spec.label}: band edge {edge:g} µg/m³ is {confidence.described}: "
                         f"{note}")
    if band == len(edges) - 1 and table.index_scale.top_edge_confidence is not Confidence.VERIFIED:
        notes.append(f"{spec.label}: the top ISPU band ({table.index_scale.edges[-2]:g}–"
                     f"{table.index_scale.edges[-1]:g}) is "
                     f"{table.index_scale.top_edge_confidence.described}: "
                     f"{table.index_scale.top_edge_note}")
    return notes


def station_ispu(concentrations: Mapping[str, float | None],
                 table: IspuTable | None = None) -> IspuResult:
    """A station's ISPU from each parameter's averaged concentration in µg/m³.

    ``None`` marks a parameter without enough data: it is listed in ``insufficient`` and left
    out. The ISPU is the highest sub-index, published as a whole number, and its parameter the
    critical one (ties go to the parameter listed first in the table). With no usable
    parameter, ``ispu`` is None.
    """
    table = _table(table)
    sub_indices: dict[str, float] = {}
    insufficient: list[str] = []
    beyond_scale: list[str] = []
    uncertain: list[str] = []
    for given_name, concentration in concentrations.items():
        name = parameter_key(given_name, table)
        if name in sub_indices or name in insufficient:
            raise ValueError(f"{name} given twice (as {given_name!r} and before)")
        if concentration is None:
            insufficient.append(name)
            continue
        sub_indices[name] = ispu_sub_index(name, concentration, table)
        if concentration > table.parameters[name].edges_ugm3[-1]:
            beyond_scale.append(name)
        uncertain.extend(_uncertainty_notes(name, concentration, table))
    if not sub_indices:
        return IspuResult(sub_indices={}, ispu=None, ispu_exact=None, critical_parameter=None,
                          category=None, insufficient=insufficient, beyond_scale=[],
                          uncertain=[])
    order = list(table.parameters)
    critical = max(sub_indices, key=lambda name: (sub_indices[name], -order.index(name)))
    exact = sub_indices[critical]
    return IspuResult(sub_indices=sub_indices, ispu=ispu_published(exact, table),
                      ispu_exact=exact, critical_parameter=critical,
                      category=_category_result(exact, table), insufficient=insufficient,
                      beyond_scale=beyond_scale, uncertain=uncertain)


def average_for_ispu(hourly_values: Sequence[float | None], parameter: str,
                     table: IspuTable | None = None) -> AverageResult:
    """The mean of the last ``window_hours`` hourly means (µg/m³) for ``parameter``.

    ``hourly_values`` runs oldest first and ends with the latest hour; ``None`` or NaN marks a
    missing hour, and a sequence shorter than the window counts the absent hours as missing.
    With fewer than ``min_valid_hours`` valid hours the result is ``insufficient`` and its mean
    is None (never a guess from the hours that are there).
    """
    table = _table(table)
    name = parameter_key(parameter, table)
    rule = table.parameters[name].averaging
    window = list(hourly_values)[-rule.window_hours:]
    valid = [value for value in window if value is not None and math.isfinite(value)]
    for value in valid:
        _check_concentration(parameter, value)
    enough = len(valid) >= rule.min_valid_hours
    return AverageResult(parameter=name, window_hours=rule.window_hours,
                         min_valid_hours=rule.min_valid_hours, valid_hours=len(valid),
                         mean_ugm3=math.fsum(valid) / len(valid) if enough else None,
                         insufficient=not enough, confidence=rule.confidence)
