"""The alert engine's types: what a rule observes, what an alert is, what a channel is given.

Pure data, no I/O. The engine (alerts/engine.py) turns observations into decisions; the state
module (alerts/state.py) commits them with their notifications in one transaction; channels
(alerts/channels/<channel>/) and the CAP writer (alerts/cap/) receive :class:`AlertView`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = ["ACTIVE_STATUSES", "LANGUAGES", "SEVERITY_RANK", "AlertStatus", "AlertText",
           "AlertView", "Area", "Audience", "CapStatus", "Certainty", "Hazard", "MsgType",
           "Severity", "Urgency",
           "alert_view_from_json", "alert_view_to_json"]

# The lifecycle. "pending": the condition holds but not yet for the rule's pending duration.
AlertStatus = Literal["pending", "firing", "acknowledged", "resolved"]
ACTIVE_STATUSES: tuple[AlertStatus, ...] = ("pending", "firing", "acknowledged")
# Who an alert is for: everyone (residents, agencies), operators only (safety: never public),
# field teams (device health).
Audience = Literal["public", "operators", "field"]
Hazard = Literal["flood", "air", "rain", "safety", "device"]
# CAP 1.2 enumerations (OASIS CAP 1.2, section 3.2.1 and 3.2.2).
CapStatus = Literal["Actual", "Exercise", "Test"]
MsgType = Literal["Alert", "Update", "Cancel"]
Severity = Literal["Extreme", "Severe", "Moderate", "Minor", "Unknown"]
# CAP severities from least to most severe ("Unknown" sorts lowest).
SEVERITY_RANK: dict[str, int] = {"Unknown": 0, "Minor": 1, "Moderate": 2, "Severe": 3,
                                 "Extreme": 4}
Urgency = Literal["Immediate", "Expected", "Future", "Past", "Unknown"]
Certainty = Literal["Observed", "Likely", "Possible", "Unlikely", "Unknown"]
# Every message is written in Bahasa Indonesia and English (CAP language codes).
LANGUAGES = ("id-ID", "en-US")


@dataclass(frozen=True)
class AlertText:
    """One language's words: CAP's headline, description and instruction."""

    headline: str
    description: str
    instruction: str


@dataclass(frozen=True)
class Area:
    """Where an alert applies. ``districts`` are kecamatan names as the registry spells them;
    ``circle_km`` is (lat, lon, radius in km) around the source (a gauge, a device)."""

    description: str
    districts: tuple[str, ...] = ()
    circle_km: tuple[float, float, float] | None = None
    polygon: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True)
class AlertView:
    """One alert at one version, as channels and the CAP writer see it.

    ``version`` starts at 1 when the alert fires and grows with every update that is notified
    (escalation, de-escalation, repeat, acknowledgement, resolution); (id, version) is unique and
    is what idempotency keys and CAP identifiers are made of.
    """

    id: int
    version: int
    rule_id: str
    scope: str
    city: str
    hazard: Hazard
    audience: Audience
    status: AlertStatus
    msg_type: MsgType
    cap_status: CapStatus
    level: str               # the words BPBD/KLHK use: "Siaga 3 (Waspada)", "Tidak Sehat"
    grade: int               # the rule's own scale: 0 clear, higher is worse
    severity: Severity
    urgency: Urgency
    certainty: Certainty
    sent_at: datetime        # when this version was decided
    fired_at: datetime | None
    texts: dict[str, AlertText]   # by language code (LANGUAGES)
    area: Area
    details: dict[str, Any] = field(default_factory=dict)   # figures behind the text
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    resolved_by: str | None = None
    resolved_at: datetime | None = None
    expires_at: datetime | None = None

    @property
    def identifier(self) -> str:
        """The CAP identifier of this version (unique per sender)."""
        return f"kota-{self.city}-alert-{self.id}-v{self.version}"


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, tuple):
        return [_json_value(item) for item in value]
    if isinstance(value, dict):
        return {key: _json_value(item) for key, item in value.items()}
    return value


def alert_view_to_json(view: AlertView) -> dict[str, Any]:
    """A JSON-safe dict (the outbox stores it; the webhook sends it)."""
    document: dict[str, Any] = _json_value(asdict(view))
    document["identifier"] = view.identifier
    return document


def _when(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def alert_view_from_json(document: dict[str, Any]) -> AlertView:
    area = document["area"]
    circle = area.get("circle_km")
    return AlertView(
        **{key: document[key] for key in (
            "id", "version", "rule_id", "scope", "city", "hazard", "audience", "status",
            "msg_type", "cap_status", "level", "grade", "severity", "urgency", "certainty",
            "details", "acknowledged_by", "resolved_by")},
        sent_at=datetime.fromisoformat(document["sent_at"]),
        fired_at=_when(document["fired_at"]),
        acknowledged_at=_when(document["acknowledged_at"]),
        resolved_at=_when(document["resolved_at"]),
        expires_at=_when(document["expires_at"]),
        texts={language: AlertText(**text) for language, text in document["texts"].items()},
        area=Area(description=area["description"], districts=tuple(area["districts"]),
                  circle_km=(circle[0], circle[1], circle[2]) if circle else None,
                  polygon=tuple((point[0], point[1]) for point in area["polygon"])),
    )
