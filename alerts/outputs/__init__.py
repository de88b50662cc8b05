"""What the alert service writes to InfluxDB, declared like the indicator service's outputs
(indicators/outputs/): ``alert_events.yaml``, one point per notified alert version, which the
Grafana alerts panel and annotations read (dashboards/schema.py checks them against it).

:func:`alert_event_line` is the only place that line is built (alerts/service.py calls it).
"""

from __future__ import annotations

from pathlib import Path

from alerts.model import AlertView
from indicators.outputs import OutputSpec, load_outputs
from kota.lineproto import build_line, series_key

__all__ = ["ALERT_EVENTS", "ALERT_OUTPUTS", "ALERT_OUTPUTS_DIR", "alert_event_line"]

ALERT_OUTPUTS_DIR = Path(__file__).resolve().parent
ALERT_OUTPUTS: dict[str, OutputSpec] = load_outputs(ALERT_OUTPUTS_DIR)
ALERT_EVENTS = ALERT_OUTPUTS["alert_events"].measurement


def alert_event_line(view: AlertView) -> str:
    """One ``alert_events`` point (line protocol, ms precision) for a notified version."""
    text = view.texts.get("id-ID")
    tags = {"city": view.city, "rule": view.rule_id, "hazard": view.hazard,
            "audience": view.audience, "scope": view.scope, "status": view.status,
            "cap_status": view.cap_status}
    fields: dict[str, float | str] = {
        "alert_id": float(view.id), "version": float(view.version),
        "grade": float(view.grade), "level": view.level, "severity": view.severity,
        "headline": text.headline if text else view.level}
    return build_line(series_key(ALERT_EVENTS, tags.items()), fields,
                      int(view.sent_at.timestamp() * 1000))
