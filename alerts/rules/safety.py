"""Public-safety rules on the safety stream, for operators only (never the public):

* ``safety_event`` — a panic press, fire or smoke: an alert at once, one per incident (the
  incident id, else the device), resolved when the incident's ``resolved`` event arrives or an
  operator resolves it;
* ``incident_open`` — an incident still open after ``max_open_s``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

from pydantic import Field

from alerts.engine import Timing
from alerts.model import Area, Severity
from alerts.rules._contract import Finding, Reading, RuleContext, RuleKind, RuleSettings

__all__ = ["IncidentOpenRule", "IncidentOpenSettings", "SafetyEventRule", "SafetyEventSettings"]


def _default_severities() -> dict[str, Severity]:
    return {"panic": "Extreme", "fire": "Extreme", "smoke": "Severe"}


class SafetyEventSettings(RuleSettings):
    events: dict[str, Severity] = Field(
        default_factory=_default_severities,
        description="Event categories that alert at once, with their CAP severity")
    position_radius_km: float = Field(default=0.2, gt=0,
                                      description="Radius of the area around the device")


class IncidentOpenSettings(RuleSettings):
    max_open_s: float = Field(default=1800, gt=0,
                              description="An incident open longer than this is an alert")
    events: list[str] = Field(default_factory=lambda: ["panic", "fire", "smoke", "fight",
                                                       "accident", "crowd"])


def _incident(reading: Reading) -> str:
    incident = reading.fields.get("incident_id")
    return str(incident) if incident else reading.device_id


def _place(reading: Reading, radius_km: float) -> tuple[Area, dict[str, Any]]:
    device = reading.device
    if device is None:
        return Area(description=reading.device_id), {"place": reading.device_id,
                                                     "district": "?"}
    place = device.name or device.device_id
    where = f"{place}, {device.kelurahan + ', ' if device.kelurahan else ''}{device.district}"
    return (Area(description=where, districts=(device.district,),
                 circle_km=(device.lat, device.lon, radius_km)),
            {"place": where, "district": device.district})


class SafetyEventRule(RuleKind[SafetyEventSettings]):
    kind = "safety_event"
    settings_model = SafetyEventSettings
    hazard = "safety"
    default_audience = "operators"
    reading_kinds: ClassVar[frozenset[str]] = frozenset({"safety"})
    detail_fields = frozenset({"event", "place", "district", "message", "incident", "device",
                               "time_local"})
    default_messages: ClassVar[dict[str, dict[str, str]]] = {
        "id-ID": {"headline": "{event_id} di {place}",
                  "description": "{event_id} dari {device} di {place} pukul {time_local}. "
                                 "Pesan: {message}",
                  "instruction": "Kirim petugas Satpol PP / pemadam terdekat dan hubungi "
                                 "pelapor."},
        "en-US": {"headline": "{event_en} at {place}",
                  "description": "{event_en} from {device} at {place} at {time_local}. "
                                 "Message: {message}",
                  "instruction": "Send the nearest Satpol PP / fire crew and call the reporter."},
    }
    _names: ClassVar[dict[str, tuple[str, str]]] = {
        "panic": ("Tombol darurat ditekan", "Panic button pressed"),
        "fire": ("Kebakaran terdeteksi", "Fire detected"),
        "smoke": ("Asap terdeteksi", "Smoke detected"),
    }

    def timing(self) -> Timing:
        # An incident ends with its resolved event or an operator: never by time alone.
        return Timing(fire_grade=1, repeat_s=self.settings.repeat_s)

    def on_reading(self, reading: Reading) -> Sequence[Finding]:
        event = str(reading.fields.get("event", ""))
        if event == "resolved":
            return [Finding(scope=_incident(reading), at=reading.at, grade=0, level="resolved",
                            severity="Minor", urgency="Past", certainty="Observed",
                            city=reading.city, area=Area(description=reading.device_id))]
        severity = self.settings.events.get(event)
        if severity is None:
            return ()
        area, place = _place(reading, self.settings.position_radius_km)
        name_id, name_en = self._names.get(event, (event, event))
        local = reading.at.astimezone(_WIB).strftime("%H:%M WIB")
        return [Finding(
            scope=_incident(reading), at=reading.at, grade=1, level=event,
            severity=severity, urgency="Immediate", certainty="Observed", city=reading.city,
            area=area,
            details={"event": event, "event_id": name_id, "event_en": name_en,
                     "message": str(reading.fields.get("message") or "-"),
                     "incident": _incident(reading), "device": reading.device_id,
                     "time_local": local, **place})]


@dataclass
class _Open:
    first_at: datetime
    reading: Reading


class IncidentOpenRule(RuleKind[IncidentOpenSettings]):
    kind = "incident_open"
    settings_model = IncidentOpenSettings
    hazard = "safety"
    default_audience = "operators"
    reading_kinds: ClassVar[frozenset[str]] = frozenset({"safety"})
    detail_fields = frozenset({"event", "place", "district", "incident", "open_min"})
    default_messages: ClassVar[dict[str, dict[str, str]]] = {
        "id-ID": {"headline": "Insiden {incident} belum selesai setelah {open_min} menit",
                  "description": "Insiden {event} di {place} terbuka sejak {open_min} menit.",
                  "instruction": "Periksa penanganan dan tutup insiden bila sudah selesai."},
        "en-US": {"headline": "Incident {incident} still open after {open_min} min",
                  "description": "The {event} incident at {place} has been open for "
                                 "{open_min} min.",
                  "instruction": "Check on the response and close the incident when done."},
    }

    def __init__(self, settings: IncidentOpenSettings, context: RuleContext) -> None:
        super().__init__(settings, context)
        self.open: dict[str, _Open] = {}

    def timing(self) -> Timing:
        return Timing(fire_grade=1, repeat_s=self.settings.repeat_s)

    def on_reading(self, reading: Reading) -> Sequence[Finding]:
        incident = _incident(reading)
        event = str(reading.fields.get("event", ""))
        if event == "resolved":
            # Clear even an incident this rule does not remember (opened before a restart):
            # its stored alert would otherwise stay firing; with no alert, grade 0 is nothing.
            self.open.pop(incident, None)
            return [Finding(scope=incident, at=reading.at, grade=0, level="resolved",
                            severity="Minor", urgency="Past", certainty="Observed",
                            city=reading.city, area=Area(description=reading.device_id))]
        if event in self.settings.events and incident not in self.open:
            self.open[incident] = _Open(reading.at, reading)
        return ()

    def on_tick(self, now: datetime) -> Sequence[Finding]:
        findings = []
        limit = timedelta(seconds=self.settings.max_open_s)
        for incident, item in self.open.items():
            if now - item.first_at < limit:
                continue
            area, place = _place(item.reading, 0.2)
            findings.append(Finding(
                scope=incident, at=now, grade=1, level="open too long", severity="Moderate",
                urgency="Immediate", certainty="Observed", city=item.reading.city, area=area,
                details={"incident": incident, "event": item.reading.fields.get("event"),
                         "open_min": int((now - item.first_at).total_seconds() // 60),
                         **place}))
        return findings


_WIB = __import__("zoneinfo").ZoneInfo("Asia/Jakarta")
