"""Flood rules on the water-level stream: Siaga status at a gauge (``siaga``), and an upstream
gauge warning the kecamatan downstream with the travel time (``upstream``).

Grades: 0 Normal (Siaga 4), 1 Waspada (Siaga 3), 2 Siaga (Siaga 2), 3 Awas (Siaga 1). The
thresholds are the gauges table of kota/standards (docs/standards.md); a falling level must drop
``hysteresis_cm`` below a threshold before the lower status counts (a level hovering at a
threshold does not flap), on top of the engine's ``clear_after_s``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from alerts.model import Area, Certainty, Severity, Urgency
from alerts.rules._contract import Finding, Reading, RuleContext, RuleKind, RuleSettings
from kota.indices.siaga import (
    NORMAL_STATUS,
    hours_to_next_threshold,
    rate_of_rise_cm_per_h,
    siaga_status,
)
from kota.standards import GaugeThresholds, load_gauges_table

__all__ = ["GaugeArea", "LevelWords", "RiseRule", "RiseSettings", "Route", "SiagaRule",
           "SiagaSettings", "UpstreamRule", "UpstreamSettings"]

Confidence = Literal["verified", "partial", "unverified"]


class LevelWords(BaseModel):
    """How one Siaga status is announced (CAP severity, urgency, certainty)."""

    model_config = ConfigDict(extra="forbid")

    severity: Severity
    urgency: Urgency
    certainty: Certainty = "Observed"


def _default_levels() -> dict[int, LevelWords]:
    return {3: LevelWords(severity="Moderate", urgency="Expected"),
            2: LevelWords(severity="Severe", urgency="Immediate"),
            1: LevelWords(severity="Extreme", urgency="Immediate")}


class GaugeArea(BaseModel):
    """The kecamatan a gauge warns, with where that list comes from."""

    model_config = ConfigDict(extra="forbid")

    districts: list[str] = Field(default_factory=list)
    radius_km: float = Field(default=3.0, gt=0, le=50)
    source: str = ""
    confidence: Confidence = "unverified"


class _FloodSettings(RuleSettings):
    hysteresis_cm: float = Field(default=10, ge=0,
                                 description="How far below a threshold a falling level must "
                                             "be before the lower status counts")
    levels: dict[int, LevelWords] = Field(default_factory=_default_levels)
    gauges_file: str | None = Field(default=None,
                                    description="Another Siaga table (kota/standards format)")


class SiagaSettings(_FloodSettings):
    fire_at_status: Literal[3, 2, 1] = Field(
        default=3, description="The first Siaga status that is an alert (3: Waspada)")
    rise_window_s: float = Field(default=3600, gt=0,
                                 description="Readings used for the rate of rise")
    areas: dict[str, GaugeArea] = Field(default_factory=dict,
                                        description="Per gauge id: the kecamatan it warns")


class RiseSettings(_FloodSettings):
    towards_status: Literal[3, 2, 1] = Field(
        default=3, description="Warn before the gauge reaches this Siaga status")
    lead_h: float = Field(default=3, gt=0, le=48,
                          description="Warn when the current rise reaches it within this long")
    min_rise_cm_per_h: float = Field(default=5, gt=0,
                                     description="Slower rises are noise, not a trend")
    rise_window_s: float = Field(default=3600, gt=0,
                                 description="Readings used for the rate of rise")


class Route(BaseModel):
    """How long a flood wave takes from an upstream gauge to a downstream one."""

    model_config = ConfigDict(extra="forbid")

    upstream: str
    downstream: str
    travel_h: tuple[float, float]
    districts: list[str] = Field(default_factory=list,
                                 description="Kecamatan affected downstream")
    source: str
    confidence: Confidence = "unverified"


class UpstreamSettings(_FloodSettings):
    fire_at_status: Literal[3, 2, 1] = 3
    routes: list[Route] = Field(min_length=1)


class _GaugeLevels:
    """Per gauge: the grade last reported (for hysteresis) and recent readings (rise rate)."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self.grades: dict[str, int] = {}
        self.samples: dict[str, deque[tuple[float, float]]] = {}

    def add(self, gauge_id: str, epoch_s: float, level_cm: float) -> list[tuple[float, float]]:
        samples = self.samples.setdefault(gauge_id, deque(maxlen=4096))
        samples.append((epoch_s, level_cm))
        while samples and samples[0][0] < epoch_s - self.window_s:
            samples.popleft()
        return list(samples)


class _FloodRule(RuleKind[Any]):
    hazard = "flood"
    reading_kinds: ClassVar[frozenset[str]] = frozenset({"water"})

    def __init__(self, settings: Any, context: RuleContext) -> None:
        super().__init__(settings, context)
        table = load_gauges_table(settings.gauges_file)
        self.gauges: dict[str, GaugeThresholds] = dict(table.gauges)
        self.status_names = table.status_names.names
        self.levels = _GaugeLevels(getattr(settings, "rise_window_s", 3600.0))

    def restore(self, scope: str, grade: int) -> None:
        # Hysteresis needs the grade last reported; an upstream scope is "upstream>downstream".
        self.levels.grades[scope.split(">")[0]] = grade

    def _gauge(self, reading: Reading) -> tuple[GaugeThresholds, float] | None:
        level = reading.fields.get("level_cm")
        device = reading.device
        if not isinstance(level, (int, float)) or device is None:
            return None
        gauge = self.gauges.get(str(device.params.get("gauge_id", "")))
        return (gauge, float(level)) if gauge is not None else None

    def _status(self, gauge: GaugeThresholds, level_cm: float) -> tuple[int, str]:
        """The status with hysteresis against the last one reported for this gauge."""
        grade = NORMAL_STATUS - siaga_status(gauge, level_cm).status
        previous = self.levels.grades.get(gauge.id, 0)
        if grade < previous:
            # Falling: the lower status counts once the level is hysteresis_cm below it.
            lifted = siaga_status(gauge, level_cm + self.settings.hysteresis_cm).status
            grade = min(previous, NORMAL_STATUS - lifted)
        self.levels.grades[gauge.id] = grade
        status = NORMAL_STATUS - grade
        return status, self.status_names[status].name

    def _words(self, status: int) -> LevelWords:
        return self.settings.levels.get(status) or LevelWords(severity="Unknown",
                                                              urgency="Unknown")


class SiagaRule(_FloodRule):
    """An alert per gauge while it is at ``fire_at_status`` or worse; escalations and
    de-escalations are updates of that one alert."""

    kind = "siaga"
    settings_model = SiagaSettings
    detail_fields = frozenset({"gauge", "gauge_id", "river", "level_cm", "status", "status_name",
                               "rise_cm_per_h", "hours_to_next", "next_status", "districts",
                               "trend_id", "trend_en"})
    default_messages: ClassVar[dict[str, dict[str, str]]] = {
        "id-ID": {
            "headline": "{gauge}: Siaga {status} ({status_name}), tinggi air {level_cm} cm",
            "description": "Tinggi muka air di {gauge} ({river}) {level_cm} cm, status Siaga "
                           "{status} ({status_name}). {trend_id} Wilayah terdampak: {districts}.",
            "instruction": "Warga di bantaran {river} bersiap mengungsi; amankan dokumen dan "
                           "barang berharga; ikuti arahan BPBD dan lurah setempat.",
        },
        "en-US": {
            "headline": "{gauge}: Siaga {status} ({status_name}), water at {level_cm} cm",
            "description": "The water level at {gauge} ({river}) is {level_cm} cm, Siaga status "
                           "{status} ({status_name}). {trend_en} Areas affected: {districts}.",
            "instruction": "Residents along the {river} should prepare to evacuate, keep "
                           "documents and valuables safe and follow BPBD and kelurahan staff.",
        },
    }

    def on_reading(self, reading: Reading) -> Sequence[Finding]:
        found = self._gauge(reading)
        if found is None:
            return ()
        gauge, level_cm = found
        status, status_name = self._status(gauge, level_cm)
        samples = self.levels.add(gauge.id, reading.at.timestamp(), level_cm)
        rise = rate_of_rise_cm_per_h(samples)
        hours = hours_to_next_threshold(gauge, level_cm, rise)
        grade = NORMAL_STATUS - status
        fire_grade = NORMAL_STATUS - self.settings.fire_at_status
        area_settings = self.settings.areas.get(gauge.id, GaugeArea())
        device = reading.device
        assert device is not None
        districts = area_settings.districts or [device.district]
        next_status = status - 1 if status > 1 else None
        trend_id = trend_en = ""
        if hours is not None and next_status is not None:
            trend_id = (f"Naik {rise:.0f} cm/jam: Siaga {next_status} tercapai dalam sekitar "
                        f"{hours:.1f} jam.")
            trend_en = (f"Rising {rise:.0f} cm/h: Siaga {next_status} in about {hours:.1f} h.")
        words = self._words(status)
        return [Finding(
            scope=gauge.id, at=reading.at,
            grade=grade if grade >= fire_grade else 0,
            level=f"Siaga {status} ({status_name})",
            severity=words.severity, urgency=words.urgency, certainty=words.certainty,
            city=reading.city,
            area=Area(description=", ".join(districts), districts=tuple(districts),
                      circle_km=(device.lat, device.lon, area_settings.radius_km)),
            details={"gauge": gauge.name, "gauge_id": gauge.id, "river": gauge.river,
                     "level_cm": round(level_cm), "status": status, "status_name": status_name,
                     "rise_cm_per_h": None if rise is None else round(rise, 1),
                     "hours_to_next": None if hours is None else round(hours, 1),
                     "next_status": next_status, "districts": ", ".join(districts),
                     "trend_id": trend_id, "trend_en": trend_en,
                     "device": device.device_id})]


class UpstreamRule(_FloodRule):
    """An upstream gauge at ``fire_at_status`` or worse warns each downstream route's kecamatan
    with the travel time: one alert per route (scope ``upstream>downstream``)."""

    kind = "upstream"
    settings_model = UpstreamSettings
    detail_fields = frozenset({"upstream", "downstream", "level_cm", "status", "status_name",
                               "travel_min_h", "travel_max_h", "districts", "river"})
    default_messages: ClassVar[dict[str, dict[str, str]]] = {
        "id-ID": {
            "headline": "{upstream} Siaga {status}: air tiba di {downstream} dalam sekitar "
                        "{travel_min_h}–{travel_max_h} jam",
            "description": "{upstream} ({river}) mencapai {level_cm} cm, Siaga {status} "
                           "({status_name}). Limpasan diperkirakan tiba di {downstream} dalam "
                           "sekitar {travel_min_h}–{travel_max_h} jam. Wilayah terdampak: "
                           "{districts}.",
            "instruction": "Warga bantaran sungai di wilayah terdampak bersiap; pantau "
                           "informasi BPBD.",
        },
        "en-US": {
            "headline": "{upstream} Siaga {status}: water reaches {downstream} in about "
                        "{travel_min_h}–{travel_max_h} h",
            "description": "{upstream} ({river}) is at {level_cm} cm, Siaga {status} "
                           "({status_name}). The flood wave is expected at {downstream} in "
                           "about {travel_min_h}–{travel_max_h} h. Areas affected: {districts}.",
            "instruction": "Residents along the river in the affected areas should get ready "
                           "and follow BPBD's updates.",
        },
    }

    def on_reading(self, reading: Reading) -> Sequence[Finding]:
        found = self._gauge(reading)
        if found is None:
            return ()
        gauge, level_cm = found
        routes = [route for route in self.settings.routes if route.upstream == gauge.id]
        if not routes:
            return ()
        status, status_name = self._status(gauge, level_cm)
        grade = NORMAL_STATUS - status
        fire_grade = NORMAL_STATUS - self.settings.fire_at_status
        words = self._words(status)
        findings = []
        for route in routes:
            downstream = self.gauges.get(route.downstream)
            downstream_name = downstream.name if downstream else route.downstream
            findings.append(Finding(
                scope=f"{route.upstream}>{route.downstream}", at=reading.at,
                grade=grade if grade >= fire_grade else 0,
                level=f"Siaga {status} ({status_name}) di hulu",
                severity=words.severity, urgency="Expected", certainty="Likely",
                city=reading.city,
                area=Area(description=", ".join(route.districts) or downstream_name,
                          districts=tuple(route.districts)),
                details={"upstream": gauge.name, "downstream": downstream_name,
                         "river": gauge.river, "level_cm": round(level_cm), "status": status,
                         "status_name": status_name,
                         "travel_min_h": f"{route.travel_h[0]:g}",
                         "travel_max_h": f"{route.travel_h[1]:g}",
                         "districts": ", ".join(route.districts), "route_source": route.source}))
        return findings


class RiseRule(_FloodRule):
    """A gauge still below ``towards_status`` whose rise would reach it within ``lead_h``: the
    warning before the Siaga alert ("Manggarai reaches Siaga 3 in about 2 h"). Clears when the
    water stops rising or the status is reached (the ``siaga`` rule takes over)."""

    kind = "rise"
    settings_model = RiseSettings
    detail_fields = frozenset({"gauge", "gauge_id", "river", "level_cm", "status",
                               "status_name", "rise_cm_per_h", "hours", "towards_status",
                               "districts"})
    default_messages: ClassVar[dict[str, dict[str, str]]] = {
        "id-ID": {
            "headline": "{gauge}: Siaga {towards_status} dalam sekitar {hours} jam",
            "description": "Tinggi air di {gauge} ({river}) {level_cm} cm dan naik "
                           "{rise_cm_per_h} cm/jam: Siaga {towards_status} tercapai dalam "
                           "sekitar {hours} jam bila terus naik.",
            "instruction": "Warga bantaran {river} bersiap dan memantau informasi BPBD.",
        },
        "en-US": {
            "headline": "{gauge}: Siaga {towards_status} in about {hours} h",
            "description": "The water at {gauge} ({river}) is {level_cm} cm and rising "
                           "{rise_cm_per_h} cm/h: Siaga {towards_status} in about {hours} h "
                           "if it keeps rising.",
            "instruction": "Residents along the {river} should get ready and follow BPBD's "
                           "updates.",
        },
    }

    def on_reading(self, reading: Reading) -> Sequence[Finding]:
        found = self._gauge(reading)
        if found is None:
            return ()
        gauge, level_cm = found
        status = siaga_status(gauge, level_cm).status
        samples = self.levels.add(gauge.id, reading.at.timestamp(), level_cm)
        rise = rate_of_rise_cm_per_h(samples)
        target = dict(gauge.thresholds())[self.settings.towards_status].value_cm
        hours = None
        if (rise is not None and rise >= self.settings.min_rise_cm_per_h
                and target is not None and status > self.settings.towards_status):
            hours = max(0.0, (target - level_cm) / rise)
        warn = hours is not None and hours <= self.settings.lead_h
        device = reading.device
        assert device is not None
        words = self._words(self.settings.towards_status)
        return [Finding(
            scope=gauge.id, at=reading.at, grade=int(warn),
            level=f"menuju Siaga {self.settings.towards_status}",
            severity=words.severity, urgency="Expected", certainty="Likely",
            city=reading.city,
            area=Area(description=device.district, districts=(device.district,),
                      circle_km=(device.lat, device.lon, 3.0)),
            details={"gauge": gauge.name, "gauge_id": gauge.id, "river": gauge.river,
                     "level_cm": round(level_cm), "status": status,
                     "status_name": self.status_names[status].name,
                     "rise_cm_per_h": None if rise is None else round(rise, 1),
                     "hours": None if hours is None else round(hours, 1),
                     "towards_status": self.settings.towards_status,
                     "districts": device.district, "device": device.device_id})]
