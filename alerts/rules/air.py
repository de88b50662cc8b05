"""Rules on the indicator service's declared outputs (indicators/outputs/), polled from InfluxDB:

* ``ispu`` — ISPU per kecamatan (``ispu``, window 1h, scope district) at ``fire_at_category``
  or worse for ``pending_s``, with the advice for the category;
* ``rain`` — BMKG rain categories per rain gauge (``rain_category``, windows 1h and 1d) at
  ``fire_at_rank`` or worse.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from alerts.model import Area, Severity
from alerts.rules._contract import Finding, RuleContext, RuleKind, RuleSettings
from indicators.outputs import output
from indicators.queries import eq, group_by, recent, where
from kota.influx import quote_ident
from kota.standards import load_ispu_table, load_rain_tables

__all__ = ["Advice", "IspuRule", "IspuSettings", "RainRule", "RainSettings"]

ISPU = output("ispu").measurement
RAIN_CATEGORY = output("rain_category").measurement


class Advice(BaseModel):
    """What a category means and what to do, in both languages."""

    model_config = ConfigDict(extra="forbid")

    severity: Severity
    id: str = Field(default="", description="Empty: the category's advice in "
                                            "kota/standards/ispu.yaml")
    en: str = Field(default="", description="Empty: the category's advice in "
                                            "kota/standards/ispu.yaml")


class IspuSettings(RuleSettings):
    fire_at_category: Literal["Tidak Sehat", "Sangat Tidak Sehat", "Berbahaya"] = "Tidak Sehat"
    max_age_s: int = Field(default=7200, gt=0,
                           description="Ignore ISPU points older than this (the service is "
                                       "behind: no finding rather than a stale one)")
    categories: list[str] = Field(
        default=["Baik", "Sedang", "Tidak Sehat", "Sangat Tidak Sehat", "Berbahaya"],
        description="ISPU categories from best to worst (P.14/2020)")
    advice: dict[str, Advice] = Field(default_factory=dict,
                                      description="Per category: severity and advice")
    advice_source: str = ""


def _rows(series: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for item in series:
        columns, tags = item.get("columns", []), item.get("tags") or {}
        for values in item.get("values", []):
            rows.append({**dict(zip(columns, values, strict=False)), **tags})
    return rows


def _time(row: dict[str, Any]) -> datetime:
    value = row["time"]
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value / 1000, UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


class IspuRule(RuleKind[IspuSettings]):
    kind = "ispu"
    settings_model = IspuSettings
    hazard = "air"
    detail_fields = frozenset({"district", "ispu", "category", "critical_parameter",
                               "advice_id", "advice_en"})
    default_messages: ClassVar[dict[str, dict[str, str]]] = {
        "id-ID": {"headline": "Kualitas udara {category} di {district} (ISPU {ispu})",
                  "description": "ISPU Kecamatan {district} {ispu} ({category}); parameter "
                                 "kritis {critical_parameter}.",
                  "instruction": "{advice_id}"},
        "en-US": {"headline": "Air quality {category} in {district} (ISPU {ispu})",
                  "description": "The ISPU of Kecamatan {district} is {ispu} ({category}); "
                                 "critical parameter {critical_parameter}.",
                  "instruction": "{advice_en}"},
    }

    def __init__(self, settings: IspuSettings, context: RuleContext) -> None:
        super().__init__(settings, context)
        self.rank = {name: rank for rank, name in enumerate(settings.categories)}
        # The standards' advice per category, for a category the rule gives no text of its own.
        self.health = {band.name: band.health for band in load_ispu_table().categories.bands}

    def queries(self, now: datetime) -> Sequence[str]:
        return [f"SELECT * FROM {quote_ident(ISPU)} WHERE "
                + where(recent(self.settings.max_age_s), eq("window", "1h"),
                        eq("scope", "district"))
                + f" GROUP BY {group_by(['city', 'district'])} ORDER BY time DESC LIMIT 1"]

    def findings(self, answers: Sequence[list[dict[str, Any]]], now: datetime
                 ) -> Sequence[Finding]:
        fire_rank = self.rank[self.settings.fire_at_category]
        findings = []
        for row in _rows(answers[0]) if answers else []:
            category = str(row.get("category") or "")
            if category not in self.rank or row.get("ispu") is None:
                continue
            rank = self.rank[category]
            advice = self.settings.advice.get(category)
            health = self.health.get(category)
            advice_id = (advice.id if advice else "") or (health.advice_id if health else "")
            advice_en = (advice.en if advice else "") or (health.advice_en if health else "")
            district = str(row.get("district") or "")
            findings.append(Finding(
                scope=district, at=_time(row),
                grade=rank - fire_rank + 1 if rank >= fire_rank else 0,
                level=category, severity=advice.severity if advice else "Unknown",
                urgency="Immediate", certainty="Observed", city=str(row.get("city") or ""),
                area=Area(description=f"Kecamatan {district}", districts=(district,)),
                details={"district": district, "ispu": round(float(row["ispu"])),
                         "category": category,
                         "critical_parameter": row.get("critical_parameter") or "-",
                         "advice_id": advice_id, "advice_en": advice_en}))
        return findings


class RainSettings(RuleSettings):
    windows: list[Literal["1h", "1d"]] = Field(default=["1h", "1d"])
    fire_at: dict[str, str] = Field(
        default={"1h": "Lebat", "1d": "Lebat"},
        description="Per window, the first BMKG category that is an alert "
                    "(kota/standards/bmkg_rain.yaml: hourly and daily scales differ)")
    severities: dict[str, Severity] = Field(
        default={"Lebat": "Moderate", "Sangat lebat": "Severe", "Ekstrem": "Extreme"},
        description="CAP severity per category")
    max_age_s: int = Field(default=5400, gt=0)


class RainRule(RuleKind[RainSettings]):
    kind = "rain"
    settings_model = RainSettings
    hazard = "rain"
    detail_fields = frozenset({"device", "district", "rain_mm", "category", "window_id",
                               "window_en"})
    default_messages: ClassVar[dict[str, dict[str, str]]] = {
        "id-ID": {"headline": "Hujan {category} di {district}: {rain_mm} mm {window_id}",
                  "description": "Penakar hujan {device} di {district} mencatat {rain_mm} mm "
                                 "{window_id} (kategori BMKG: {category}).",
                  "instruction": "Waspadai genangan dan banjir; hindari bantaran sungai dan "
                                 "saluran."},
        "en-US": {"headline": "{category} rain in {district}: {rain_mm} mm {window_en}",
                  "description": "Rain gauge {device} in {district} recorded {rain_mm} mm "
                                 "{window_en} (BMKG category: {category}).",
                  "instruction": "Watch for waterlogging and floods; keep away from rivers and "
                                 "drains."},
    }
    _window_words: ClassVar[dict[str, tuple[str, str]]] = {
        "1h": ("dalam 1 jam", "in 1 hour"), "1d": ("dalam 24 jam", "in 24 hours")}

    def queries(self, now: datetime) -> Sequence[str]:
        return [f"SELECT * FROM {quote_ident(RAIN_CATEGORY)} WHERE "
                # A BMKG rain day (07:00-07:00) is stamped at its start and written after the
                # indicator service's next local midnight, ~41 h later: look back three days so
                # a late indicator service still has it read.
                + where(recent(self.settings.max_age_s if window == "1h"
                               else self.settings.max_age_s + 3 * 86400), eq("window", window))
                + f" GROUP BY {group_by(['city', 'district', 'device'])} "
                  "ORDER BY time DESC LIMIT 1"
                for window in self.settings.windows]

    def __init__(self, settings: RainSettings, context: RuleContext) -> None:
        super().__init__(settings, context)
        tables = load_rain_tables()
        scales = {"1h": tables.hourly, "1d": tables.daily}
        self.ranks = {window: {c.name: rank for rank, c in enumerate(scale.categories)}
                      for window, scale in scales.items()}
        for window in settings.windows:
            if settings.fire_at.get(window) not in self.ranks[window]:
                raise ValueError(f"fire_at.{window}: {settings.fire_at.get(window)!r} is not a "
                                 f"BMKG category: {', '.join(self.ranks[window])}")

    def findings(self, answers: Sequence[list[dict[str, Any]]], now: datetime
                 ) -> Sequence[Finding]:
        findings = []
        for window, answer in zip(self.settings.windows, answers, strict=False):
            ranks = self.ranks[window]
            fire_rank = ranks[self.settings.fire_at[window]]
            for row in _rows(answer):
                category = str(row.get("category") or "")
                if category not in ranks:
                    continue
                rank = ranks[category]
                fire = rank >= fire_rank
                district, device = str(row.get("district") or ""), str(row.get("device") or "")
                words = self._window_words[window]
                findings.append(Finding(
                    scope=f"{device}:{window}", at=_time(row),
                    grade=rank - fire_rank + 1 if fire else 0, level=category,
                    severity=self.settings.severities.get(category, "Minor"),
                    urgency="Immediate", certainty="Observed", city=str(row.get("city") or ""),
                    area=Area(description=f"Kecamatan {district}", districts=(district,)),
                    details={"device": device, "district": district,
                             "rain_mm": round(float(row.get("rain_mm") or 0), 1),
                             "category": category, "window_id": words[0],
                             "window_en": words[1]}))
        return findings
