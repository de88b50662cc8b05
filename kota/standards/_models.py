"""Typed models of the reference tables in this folder's YAML files.

Every number carries its source and a confidence (✅ verified, ⚠️ partial, ❌ unverified) so the
CLI and the docs can show how sure it is. The models only check shape and order; the numbers
themselves live in the YAML files.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "AirQualityStandard",
    "AirQualityStandards",
    "AqiBand",
    "AqiCategory",
    "AqiCategoryTable",
    "AqiCombine",
    "AqiConversion",
    "AqiNowcast",
    "AqiPollutant",
    "AqiTables",
    "AveragingRule",
    "Confidence",
    "GaugeTable",
    "GaugeThresholds",
    "IndexScale",
    "IspuCategory",
    "IspuCategoryTable",
    "IspuHealth",
    "IspuParameter",
    "IspuRounding",
    "IspuTable",
    "NoiseStandard",
    "NoiseZone",
    "ObservationDay",
    "RainCategorySpec",
    "RainScale",
    "RainTables",
    "ReachedAtEqual",
    "SiagaThreshold",
    "StatusName",
    "StatusNames",
    "TravelTime",
    "UncertainEdge",
]

AboveTop = Literal["cap", "extrapolate"]


class Confidence(StrEnum):
    """How well a number is verified; :attr:`meaning` says it in words (docs/standards.md)."""

    VERIFIED = "verified"
    PARTIAL = "partial"
    UNVERIFIED = "unverified"

    @property
    def mark(self) -> str:
        return {"verified": "✅", "partial": "⚠️", "unverified": "❌"}[self.value]

    @staticmethod
    def least_sure(confidences: Iterable[Confidence]) -> Confidence:
        """The weakest of ``confidences`` (verified when there are none)."""
        order = [Confidence.VERIFIED, Confidence.PARTIAL, Confidence.UNVERIFIED]
        return max(confidences, key=order.index, default=Confidence.VERIFIED)

    @property
    def meaning(self) -> str:
        """What the mark means, in words a user can act on."""
        return {
            "verified": "shown by at least one cited source",
            "partial": "sources disagree or only partly show it",
            "unverified": "no source found shows it: a configurable default",
        }[self.value]

    @property
    def described(self) -> str:
        """Mark, word and meaning: ``⚠️ partial (sources disagree or only partly show it)``."""
        return f"{self.mark} {self.value} ({self.meaning})"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _strictly_increasing(values: list[float], what: str) -> None:
    for lower, upper in itertools.pairwise(values):
        if not upper > lower:
            raise ValueError(f"{what} must increase strictly, got {lower} then {upper}")


# -- ISPU ------------------------------------------------------------------------------------
class IndexScale(_Strict):
    """The ISPU value at each band edge (0, 50, 100, 200, 300, 500)."""

    edges: list[float] = Field(min_length=2)
    source: str = Field(min_length=1)
    confidence: Confidence
    top_edge_confidence: Confidence
    top_edge_note: str = ""

    @model_validator(mode="after")
    def _check(self) -> IndexScale:
        _strictly_increasing(self.edges, "index_scale.edges")
        return self


class IspuHealth(_Strict):
    """What a category means for health and what to do, in Bahasa Indonesia and English."""

    meaning_id: str = Field(min_length=1)
    meaning_en: str = Field(min_length=1)
    advice_id: str = Field(min_length=1)
    advice_en: str = Field(min_length=1)
    source: str = Field(min_length=1)
    confidence: Confidence


class IspuCategory(_Strict):
    name: str
    index_max: float = Field(description="Highest (whole-number) ISPU of the category, inclusive")
    colour: str = Field(description="Official colour word (Indonesian)")
    colour_en: str
    hex: str = Field(pattern=r"^#[0-9a-fA-F]{6}$")
    health: IspuHealth


class IspuCategoryTable(_Strict):
    source: str = Field(min_length=1)
    confidence: Confidence
    hex_source: str = Field(min_length=1)
    hex_confidence: Confidence
    meaning_source: str = Field(min_length=1)
    meaning_confidence: Confidence
    bands: list[IspuCategory] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> IspuCategoryTable:
        _strictly_increasing([band.index_max for band in self.bands], "categories.bands.index_max")
        return self


class UncertainEdge(_Strict):
    edge_ugm3: float
    confidence: Confidence
    note: str = Field(min_length=1)


class AveragingRule(_Strict):
    """The averaging window of a parameter and how many hourly values make a valid mean."""

    window_hours: int = Field(ge=1)
    min_valid_hours: int = Field(ge=1)
    source: str = Field(min_length=1)
    confidence: Confidence
    note: str = ""

    @model_validator(mode="after")
    def _check(self) -> AveragingRule:
        if self.min_valid_hours > self.window_hours:
            raise ValueError(f"min_valid_hours ({self.min_valid_hours}) exceeds window_hours "
                             f"({self.window_hours})")
        return self


class IspuParameter(_Strict):
    label: str
    edges_ugm3: list[float] = Field(min_length=2, description="Concentration at each band edge")
    source: str = Field(min_length=1)
    confidence: Confidence
    uncertain_edges: list[UncertainEdge] = Field(default_factory=list)
    averaging: AveragingRule

    @model_validator(mode="after")
    def _check(self) -> IspuParameter:
        _strictly_increasing(self.edges_ugm3, "edges_ugm3")
        if self.edges_ugm3[0] < 0:
            raise ValueError("edges_ugm3 must start at 0 or above")
        unknown = [e.edge_ugm3 for e in self.uncertain_edges if e.edge_ugm3 not in self.edges_ugm3]
        if unknown:
            raise ValueError(f"uncertain_edges names edges not in edges_ugm3: {unknown}")
        return self

    def edge_confidence(self, edge_ugm3: float) -> Confidence:
        for uncertain in self.uncertain_edges:
            if uncertain.edge_ugm3 == edge_ugm3:
                return uncertain.confidence
        return self.confidence


class IspuRounding(_Strict):
    """How the published ISPU, a whole number, is made from the computed sub-index."""

    rule: Literal["half_up"] = Field(description="half_up: 50.5 → 51, 50.49 → 50")
    source: str = Field(min_length=1)
    confidence: Confidence


class IspuTable(_Strict):
    """ISPU per Permen LHK P.14/2020: index scale, categories and per-parameter breakpoints."""

    regulation: str = Field(min_length=1)
    formula: str
    rounding: IspuRounding
    basis: str = Field(default="", description="What kind of document the numbers come from, "
                                               "in words (an official text, news reports, ...)")
    above_top_of_scale: AboveTop
    index_scale: IndexScale
    categories: IspuCategoryTable
    parameters: dict[str, IspuParameter] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> IspuTable:
        edges = len(self.index_scale.edges)
        for name, parameter in self.parameters.items():
            if len(parameter.edges_ugm3) != edges:
                raise ValueError(f"parameters.{name}.edges_ugm3 has {len(parameter.edges_ugm3)} "
                                 f"edges, index_scale.edges has {edges}")
        if self.categories.bands[-1].index_max != self.index_scale.edges[-1]:
            raise ValueError("the last category must end at the top of index_scale.edges")
        return self


# -- US EPA AQI ------------------------------------------------------------------------------
AqiUnit = Literal["ug/m3", "ppm", "ppb"]


class AqiBand(_Strict):
    c_low: float = Field(ge=0)
    c_high: float
    i_low: int = Field(ge=0)
    i_high: int

    @model_validator(mode="after")
    def _check(self) -> AqiBand:
        if not (self.c_high > self.c_low and self.i_high > self.i_low):
            raise ValueError("a band needs c_high > c_low and i_high > i_low")
        return self


class AqiPollutant(_Strict):
    """One breakpoint table: a parameter at one averaging period, in the unit EPA gives it."""

    label: str
    parameter: str = Field(description="The air field it is computed from (pm25, o3, so2, ...)")
    unit: AqiUnit = Field(description="Unit of the breakpoints; gases are converted from µg/m³")
    truncate_decimals: int = Field(ge=0, le=3)
    averaging: AveragingRule
    source: str = Field(min_length=1)
    confidence: Confidence
    bands: list[AqiBand] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> AqiPollutant:
        for lower, upper in itertools.pairwise(self.bands):
            if not (upper.c_low > lower.c_high and upper.i_low == lower.i_high + 1):
                raise ValueError(f"bands must follow each other: {lower} then {upper}")
        return self


class AqiCategory(_Strict):
    name: str
    index_max: int
    colour: str
    hex: str = Field(pattern=r"^#[0-9a-fA-F]{6}$")


class AqiCategoryTable(_Strict):
    source: str = Field(min_length=1)
    confidence: Confidence
    colour_confidence: Confidence
    hex_source: str = Field(min_length=1)
    hex_confidence: Confidence
    bands: list[AqiCategory] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> AqiCategoryTable:
        _strictly_increasing([band.index_max for band in self.bands], "categories.bands.index_max")
        return self


class AqiConversion(_Strict):
    """µg/m³ → ppb at stated conditions: ppb = µg/m³ × molar volume / molecular weight."""

    temperature_c: float
    pressure_kpa: float = Field(gt=0)
    molar_volume_l_per_mol: float = Field(gt=0)
    molecular_weight_g_per_mol: dict[str, float] = Field(min_length=1)
    source: str = Field(min_length=1)
    confidence: Confidence

    @model_validator(mode="after")
    def _check(self) -> AqiConversion:
        # The molar volume must be the ideal gas's at the stated conditions (to 0.5 %), so the
        # three numbers cannot drift apart.
        ideal = 8.314462618 * (self.temperature_c + 273.15) / self.pressure_kpa
        if abs(self.molar_volume_l_per_mol - ideal) > 0.005 * ideal:
            raise ValueError(f"molar_volume_l_per_mol {self.molar_volume_l_per_mol:g} is not the "
                             f"ideal gas's {ideal:.3f} L/mol at {self.temperature_c:g} °C and "
                             f"{self.pressure_kpa:g} kPa")
        return self


class AqiNowcast(_Strict):
    """EPA's NowCast for hourly PM: a weighted mean of the last ``hours`` hourly means."""

    parameters: list[str] = Field(min_length=1)
    hours: int = Field(ge=2)
    min_weight: float = Field(gt=0, le=1)
    recent_hours: int = Field(ge=1)
    min_recent_valid: int = Field(ge=1)
    source: str = Field(min_length=1)
    confidence: Confidence

    @model_validator(mode="after")
    def _check(self) -> AqiNowcast:
        if not self.min_recent_valid <= self.recent_hours <= self.hours:
            raise ValueError("need min_recent_valid <= recent_hours <= hours")
        return self


class AqiCombine(_Strict):
    """How two tables of one parameter give its index (ozone 8-h/1-h, SO2 1-h/24-h).

    ``larger``: each table gives an index where it is defined; the larger is reported.
    ``next_above_top``: the first table gives it up to its top, the second above that.
    """

    tables: list[str] = Field(min_length=2, max_length=2)
    rule: Literal["larger", "next_above_top"]
    source: str = Field(min_length=1)
    confidence: Confidence
    note: str = ""


class AqiTables(_Strict):
    source: str = Field(min_length=1)
    basis: str = Field(default="", description="What kind of document the numbers come from, "
                                               "in words (an official text, news reports, ...)")
    confidence: Confidence
    above_top_of_scale: AboveTop
    categories: AqiCategoryTable
    conversion: AqiConversion
    nowcast: AqiNowcast
    pollutants: dict[str, AqiPollutant] = Field(min_length=1)
    combine: dict[str, AqiCombine] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> AqiTables:
        for key, table in self.pollutants.items():
            if table.unit != "ug/m3" and (table.parameter
                                          not in self.conversion.molecular_weight_g_per_mol):
                raise ValueError(f"pollutants.{key}: no molecular weight for {table.parameter} "
                                 "in conversion.molecular_weight_g_per_mol")
        for parameter, group in self.combine.items():
            for key in group.tables:
                if key not in self.pollutants:
                    raise ValueError(f"combine.{parameter}: unknown table {key!r}")
                if self.pollutants[key].parameter != parameter:
                    raise ValueError(f"combine.{parameter}: {key} is a table of "
                                     f"{self.pollutants[key].parameter}")
        parameters = {table.parameter for table in self.pollutants.values()}
        for parameter in parameters - set(self.combine):
            keys = [k for k, t in self.pollutants.items() if t.parameter == parameter]
            if len(keys) > 1:
                raise ValueError(f"tables {keys} share parameter {parameter}: say in combine "
                                 "how they give one index")
        unknown = [p for p in self.nowcast.parameters if p not in parameters]
        if unknown:
            raise ValueError(f"nowcast.parameters names unknown parameters: {unknown}")
        return self

    def tables_of(self, parameter: str) -> list[str]:
        """The table keys of ``parameter``, in the order its combine rule takes them."""
        if parameter in self.combine:
            return list(self.combine[parameter].tables)
        return [k for k, t in self.pollutants.items() if t.parameter == parameter]

    def parameters(self) -> list[str]:
        """Every parameter with a table, in the file's order."""
        return list(dict.fromkeys(t.parameter for t in self.pollutants.values()))


# -- BMKG rain -------------------------------------------------------------------------------
class RainCategorySpec(_Strict):
    name: str
    max_mm: float | None = Field(description="Upper edge (inclusive unless exclusive_max); "
                                             "null = open-ended")
    exclusive_max: bool = False
    confidence: Confidence | None = Field(default=None, description="Overrides the scale's")


class RainScale(_Strict):
    unit: str
    source: str = Field(min_length=1)
    confidence: Confidence
    categories: list[RainCategorySpec] = Field(min_length=2)

    @model_validator(mode="after")
    def _check(self) -> RainScale:
        bounded = [c.max_mm for c in self.categories[:-1]]
        if any(edge is None for edge in bounded) or self.categories[-1].max_mm is not None:
            raise ValueError("only the last category may (and must) have max_mm: null")
        _strictly_increasing([edge for edge in bounded if edge is not None], "max_mm")
        return self


class ObservationDay(_Strict):
    """BMKG's rain day: from ``start_hour`` local time to the same hour the next day."""

    start_hour: int = Field(ge=0, le=23, description="Local hour the rain day starts and ends")
    label: Literal["start_date"] = Field(description="The date a rain day is reported under")
    source: str = Field(min_length=1)
    confidence: Confidence


class RainTables(_Strict):
    basis: str = Field(default="", description="What kind of document the numbers come from, "
                                               "in words (an official text, news reports, ...)")
    observation_day: ObservationDay
    edge_convention_confidence: Confidence
    hourly: RainScale
    daily: RainScale


# -- Siaga gauges ----------------------------------------------------------------------------
class SiagaThreshold(_Strict):
    """The level at which a gauge enters one Siaga status; value_cm null when unknown."""

    value_cm: float | None
    reached_at_equal: bool | None = Field(
        default=None, description="Whether a level equal to the threshold already has the status "
                                  "(≥) or not (>); null = the table's reached_at_equal.default")
    source: str = Field(min_length=1)
    confidence: Confidence

    @property
    def at_equal(self) -> bool:
        """≥ (True) or > (False); a threshold built outside a table defaults to ≥."""
        return self.reached_at_equal is not False


class GaugeThresholds(_Strict):
    """One gauge with its Siaga 3, 2 and 1 thresholds, against the gauge's own datum."""

    id: str = ""
    name: str
    river: str
    river_confidence: Confidence = Confidence.VERIFIED
    datum: str
    valid_from: dt.date | None
    siaga3: SiagaThreshold
    siaga2: SiagaThreshold
    siaga1: SiagaThreshold

    @model_validator(mode="after")
    def _check(self) -> GaugeThresholds:
        known = [t.value_cm for t in (self.siaga3, self.siaga2, self.siaga1)
                 if t.value_cm is not None]
        _strictly_increasing(known, "siaga3 < siaga2 < siaga1 (value_cm)")
        return self

    def thresholds(self) -> list[tuple[int, SiagaThreshold]]:
        """(status, threshold) from the mildest alert (Siaga 3) to the most severe (Siaga 1)."""
        return [(3, self.siaga3), (2, self.siaga2), (1, self.siaga1)]


class StatusName(_Strict):
    name: str
    confidence: Confidence
    note: str = Field(default="", description="Other names in use and where they were found")


class ReachedAtEqual(_Strict):
    """Whether a reading exactly on a threshold has the higher status, for the whole table."""

    default: bool
    source: str = Field(min_length=1)
    confidence: Confidence
    note: str = ""


class TravelTime(_Strict):
    """How long a flood wave takes from one gauge to another, as reported."""

    upstream: str
    downstream: str
    hours: tuple[float, float] = Field(description="[fastest, slowest] reported, in hours")
    reaches: str = Field(default="", description="What the source says the water reaches, when "
                                                 "it is not the downstream gauge itself")
    source: str = Field(min_length=1)
    confidence: Confidence

    @model_validator(mode="after")
    def _check(self) -> TravelTime:
        low, high = self.hours
        if not 0 < low <= high:
            raise ValueError(f"hours must be [min, max] with 0 < min <= max, "
                             f"got {list(self.hours)}")
        return self


class StatusNames(_Strict):
    source: str = Field(min_length=1)
    names: dict[int, StatusName]

    @model_validator(mode="after")
    def _check(self) -> StatusNames:
        if sorted(self.names) != [1, 2, 3, 4]:
            raise ValueError("status_names.names needs exactly the statuses 1, 2, 3 and 4")
        return self


class GaugeTable(_Strict):
    basis: str = Field(default="", description="What kind of document the numbers come from, "
                                               "in words (an official text, news reports, ...)")
    reached_at_equal: ReachedAtEqual
    status_names: StatusNames
    gauges: dict[str, GaugeThresholds] = Field(min_length=1)
    travel_times: list[TravelTime] = Field(default_factory=list)

    @model_validator(mode="after")
    def _ids(self) -> GaugeTable:
        # The mapping key is the gauge's id; copy it in so a gauge travels with its id, and
        # give each threshold without its own reached_at_equal the table's default.
        for key, gauge in list(self.gauges.items()):
            if gauge.id and gauge.id != key:
                raise ValueError(f"gauges.{key}.id is {gauge.id!r}; omit it or make it {key!r}")
            update: dict[str, object] = {"id": key}
            for name in ("siaga3", "siaga2", "siaga1"):
                threshold: SiagaThreshold = getattr(gauge, name)
                if threshold.reached_at_equal is None:
                    update[name] = threshold.model_copy(
                        update={"reached_at_equal": self.reached_at_equal.default})
            self.gauges[key] = gauge.model_copy(update=update)
        seen: set[tuple[str, str]] = set()
        for index, route in enumerate(self.travel_times):
            for end in (route.upstream, route.downstream):
                if end not in self.gauges:
                    raise ValueError(f"travel_times.{index}: unknown gauge {end!r} "
                                     f"(known: {', '.join(self.gauges)})")
            pair = (route.upstream, route.downstream)
            if pair in seen:
                raise ValueError(f"travel_times.{index}: {pair[0]} → {pair[1]} given twice")
            seen.add(pair)
        return self

    def travel_time(self, upstream: str, downstream: str) -> TravelTime | None:
        """The reported travel time from ``upstream`` to ``downstream`` (gauge ids), if any."""
        return next((t for t in self.travel_times
                     if (t.upstream, t.downstream) == (upstream, downstream)), None)


# -- Noise -----------------------------------------------------------------------------------
class NoiseZone(_Strict):
    name: str
    limit_dba: float | None
    note: str = ""


class NoiseStandard(_Strict):
    regulation: str = Field(min_length=1)
    basis: str = Field(default="", description="What kind of document the numbers come from, "
                                               "in words (an official text, news reports, ...)")
    source: str = Field(min_length=1)
    confidence: Confidence
    timezone_utc_offset_hours: float
    day_start_hour: int = Field(ge=0, le=23)
    night_start_hour: int = Field(ge=0, le=23)
    night_penalty_db: float
    tolerance_db: float
    periods_source: str = Field(min_length=1)
    periods_confidence: Confidence
    per_period_convention_confidence: Confidence
    zones: dict[str, NoiseZone] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> NoiseStandard:
        if not self.day_start_hour < self.night_start_hour:
            raise ValueError("day_start_hour must come before night_start_hour")
        return self


# -- Concentration standards -----------------------------------------------------------------
class AirQualityStandard(_Strict):
    body: str
    parameter: str
    averaging_hours: int = Field(ge=1)
    limit_ugm3: float = Field(gt=0)
    source: str = Field(min_length=1)
    confidence: Confidence


class AirQualityStandards(_Strict):
    basis: str = Field(default="", description="What kind of document the numbers come from, "
                                               "in words (an official text, news reports, ...)")
    standards: dict[str, AirQualityStandard] = Field(min_length=1)
