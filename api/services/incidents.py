"""Each incident not resolved now, for operators: read from the raw ``safety`` events of the
lookback and grouped as the indicator service groups them (indicators.safety.
unresolved_incidents, the same function its counts come from), each linked to the active alert
about it when the alert state has one (the safety rules' scope is the incident id, else the
device: alerts/rules/safety.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from sqlalchemy.exc import SQLAlchemyError

from alerts.model import ACTIVE_STATUSES, SEVERITY_RANK, AlertView
from api.schemas import IncidentAlert, OpenIncident, OpenIncidentsResponse
from api.services.alerts import AlertsService
from api.services.readings import Filters, ms_to_datetime
from indicators import queries as q
from indicators.safety import Incident, events_from_series, unresolved_incidents
from indicators.settings import SafetySettings
from indicators.windows import HOUR_MS
from kota.influx import InfluxClient
from kota.registry import Registry

__all__ = ["IncidentsList"]

log = logging.getLogger("kota.api.incidents")
MAX_ALERTS = 2000  # active safety alerts read to link; far more than a city has open at once


class IncidentsList:
    """``safety``: the open horizon and lookback, the indicator service's defaults
    (indicators.safety), so the list agrees with the counts it writes."""

    def __init__(self, influx: InfluxClient, registry: Registry,
                 safety: SafetySettings | None = None) -> None:
        self.influx = influx
        self.registry = registry
        self.safety = safety or SafetySettings()

    async def unresolved(self, filters: Filters, alerts: AlertsService | None,
                         alert_url: str) -> OpenIncidentsResponse:
        """Worst first: the severity of the incident's alert, open before stale, newest first.
        ``alert_url``: the alert's path with ``{id}`` in it."""
        now_ms = int(time.time() * 1000)
        lookback_ms = int(self.safety.incident_lookback_h * HOUR_MS)
        series = await self.influx.query(q.raw_query(
            "safety", ["incident_id", "count"], now_ms - lookback_ms, now_ms + 1, filters.city,
            ["city", "district", "device", "event"]))
        incidents, _ = unresolved_incidents(
            events_from_series(q.rows_by_tags(series)), now_ms + 1,
            int(self.safety.incident_open_horizon_h * HOUR_MS))
        # The district of an incident is its first event's: filtered here, not in the query
        # (its resolved event may come from a device elsewhere).
        incidents = [i for i in incidents
                     if filters.district in (None, i.first.district)
                     and filters.device in (None, i.first.device)]
        linked: dict[str, AlertView] | None = {}
        if alerts is not None and incidents:
            linked = await self._alerts(alerts)
        items = [self._item(incident, now_ms, (linked or {}).get(_scope(incident)), alert_url)
                 for incident in incidents]
        items.sort(key=lambda i: (-(SEVERITY_RANK.get(i.alert.severity, 0) if i.alert else -1),
                                  i.state != "open", -i.opened_at.timestamp()))
        return OpenIncidentsResponse(
            as_of=ms_to_datetime(now_ms), open_horizon_h=self.safety.incident_open_horizon_h,
            lookback_h=self.safety.incident_lookback_h,
            alerts="unavailable" if linked is None else "linked", count=len(items), items=items)

    @staticmethod
    async def _alerts(alerts: AlertsService) -> dict[str, AlertView] | None:
        """Active safety alerts by scope, the worst one where several share a scope; None when
        the alert state cannot be read (the list still answers, without links)."""
        try:
            views: Sequence[AlertView] = await asyncio.to_thread(
                alerts.find, public=False, statuses=list(ACTIVE_STATUSES), hazard="safety",
                limit=MAX_ALERTS, worst_first=True)
        except SQLAlchemyError as exc:
            log.warning("incident list without alert links: %s", exc)
            return None
        by_scope: dict[str, AlertView] = {}
        for view in views:  # worst first: the first per scope is kept
            by_scope.setdefault(view.scope, view)
        return by_scope

    def _item(self, incident: Incident, now_ms: int, alert: AlertView | None,
              alert_url: str) -> OpenIncident:
        first, last = incident.first, incident.last
        device = self.registry.get(first.device)
        return OpenIncident(
            incident_id=incident.incident_id or None, state=incident.state,
            event=first.event, last_event=last.event, device=first.device,
            device_name=device.name if device and device.name else first.device,
            city=first.city, district=first.district, opened_at=ms_to_datetime(first.time_ms),
            last_event_at=ms_to_datetime(last.time_ms),
            age_s=max(0.0, (now_ms - first.time_ms) / 1000), events=incident.events,
            alert=IncidentAlert(id=alert.id, status=alert.status, level=alert.level,
                                severity=alert.severity,
                                url=alert_url.format(id=alert.id)) if alert else None)


def _scope(incident: Incident) -> str:
    """The scope the safety rules give an alert about this incident."""
    return incident.incident_id or incident.first.device
