"""Alerts for the API: the alert engine's state (alerts/state.py) read and acted on, its CAP
messages and Atom feed (alerts/cap/).

The state lives in the API's own database (``api.database.url``, the same one as the API keys;
``alerts.database.url`` must name it too). Who may see what is decided here, once:
public callers see only alerts for the public with CAP status Actual that have fired (drills,
operators' and field teams' alerts, and pending ones never reach them), and never who acted.
Every method blocks (SQLAlchemy): routes call them through ``asyncio.to_thread``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from alerts.cap import atom_feed, cap_message
from alerts.model import ACTIVE_STATUSES, AlertView
from alerts.outbox import requeue_failed
from alerts.state import AlertStore, ChannelFilter, StateError
from store.alert_models import Alert, AlertEvent, OutboxItem, Silence

__all__ = ["FEED_KEEPS_ENDED", "PUBLIC_STATUSES", "AlertsService", "Detail", "StateError",
           "for_public", "hide_actor", "parse_identifier", "public_sees"]

# Pending alerts have not fired (nothing was sent): not news for the public.
PUBLIC_STATUSES = ("firing", "acknowledged", "resolved")
# The Atom feed keeps an all-clear (CAP Cancel) this long after it was sent, so a reader that
# polls the feed sees the alert end rather than vanish (public alert hubs do the same).
FEED_KEEPS_ENDED = timedelta(hours=1)
_IDENTIFIER = re.compile(r"^kota-(?P<city>[a-z0-9-]+)-alert-(?P<id>[0-9]{1,18})-v"
                         r"(?P<version>[0-9]{1,9})$")
ENGINE_ACTOR = "engine"
PUBLIC_ACTOR = "operator"   # what the public reads instead of a key's name


def parse_identifier(identifier: str) -> tuple[str, int, int] | None:
    """``kota-<city>-alert-<id>-v<version>`` → (city, id, version); None if not one of ours."""
    found = _IDENTIFIER.match(identifier)
    if found is None:
        return None
    return found["city"], int(found["id"]), int(found["version"])


def public_sees(view: AlertView) -> bool:
    return (view.audience == "public" and view.cap_status == "Actual"
            and view.status in PUBLIC_STATUSES)


def hide_actor(actor: str | None) -> str | None:
    return actor if actor in (None, ENGINE_ACTOR) else PUBLIC_ACTOR


def for_public(view: AlertView) -> AlertView:
    """The view without who acknowledged or resolved it (a key's name is internal)."""
    return replace(view, acknowledged_by=hide_actor(view.acknowledged_by),
                   resolved_by=hide_actor(view.resolved_by))


@dataclass(frozen=True)
class Detail:
    """One alert with its history, its deliveries and the versions that were queued."""

    view: AlertView
    events: list[AlertEvent]
    deliveries: list[OutboxItem]
    versions: list[AlertView]


class AlertsService:
    """Queries and operators' actions on the alert state in ``engine``."""

    def __init__(self, engine: Engine, channels: Sequence[ChannelFilter], sender: str) -> None:
        self.engine = engine
        # Resolving queues the all-clear through the alert service's channels, as `kota alerts
        # resolve` does; the running `kota alerts` delivers it.
        self.store = AlertStore(engine, channels)
        self.sender = sender

    # -- reading -------------------------------------------------------------------------------
    def find(self, *, public: bool, statuses: Sequence[str] | None = None,
             hazard: str | None = None, rule_id: str | None = None,
             since: datetime | None = None, limit: int = 100, before_id: int | None = None,
             worst_first: bool = False) -> list[AlertView]:
        """Alerts newest first, or worst first (severity, then most recently updated); the
        public sees fired alerts for the public with CAP status Actual only.

        ``since``: changed (a new version, an operator's action) at or after this time.
        """
        if public:
            statuses = [s for s in (statuses or PUBLIC_STATUSES) if s in PUBLIC_STATUSES]
        views = self.store.find(
            statuses=statuses, hazard=hazard, rule_id=rule_id, since=since, with_message=True,
            worst_first=worst_first, limit=limit, before_id=before_id,
            audience=["public"] if public else None, cap_status="Actual" if public else None)
        return [for_public(view) for view in views] if public else views

    def detail(self, alert_id: int, *, public: bool) -> Detail | None:
        """One alert; None when it does not exist or the caller may not see it."""
        found = self.store.get(alert_id)
        if found is None:
            return None
        view, events, deliveries = found
        if public and not public_sees(view):
            return None
        versions = self.store.versions(alert_id)
        if public:
            view = for_public(view)
            versions = [for_public(v) for v in versions]
        return Detail(view, events, deliveries, versions)

    def exists(self, alert_id: int) -> bool:
        with Session(self.engine) as session:
            return session.get(Alert, alert_id) is not None

    # -- operators' actions --------------------------------------------------------------------
    def acknowledge(self, alert_id: int, actor: str, note: str | None) -> AlertView:
        """Raises StateError when the alert is not firing."""
        return self.store.acknowledge(alert_id, actor, note)

    def resolve(self, alert_id: int, actor: str, note: str | None) -> AlertView:
        """Raises StateError when it is already resolved; queues the all-clear."""
        return self.store.resolve(alert_id, actor, note)

    # -- silences ------------------------------------------------------------------------------
    def silences(self, *, active_at: datetime | None) -> list[Silence]:
        return self.store.silences(active_at=active_at)

    def add_silence(self, *, rule_id: str | None, scope: str | None, starts_at: datetime,
                    ends_at: datetime, reason: str, actor: str) -> Silence:
        return self.store.add_silence(rule_id=rule_id, scope=scope, starts_at=starts_at,
                                      ends_at=ends_at, reason=reason, actor=actor)

    def expire_silence(self, silence_id: int) -> Silence:
        return self.store.expire_silence(silence_id)

    # -- deliveries ----------------------------------------------------------------------------
    def deliveries(self, *, status: str | None, channel: str | None, limit: int,
                   before_id: int | None) -> list[OutboxItem]:
        """Outbox rows, newest first."""
        query = select(OutboxItem).order_by(OutboxItem.id.desc()).limit(limit)
        if status:
            query = query.where(OutboxItem.status == status)
        if channel:
            query = query.where(OutboxItem.channel == channel)
        if before_id is not None:
            query = query.where(OutboxItem.id < before_id)
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.scalars(query).all())

    def retry_failed(self, channel: str | None) -> int:
        return requeue_failed(self.engine, channel)

    # -- CAP -----------------------------------------------------------------------------------
    def cap(self, identifier: str, *, public: bool) -> bytes | None:
        """The CAP message of one version, referencing every version queued before it; None
        when there is no such version or the caller may not see it."""
        parsed = self.parse(identifier)
        if parsed is None:
            return None
        alert_id, version = parsed
        found = self.store.get(alert_id)
        if found is None:
            return None
        current = found[0]
        if public and not public_sees(current):
            return None
        queued = self.store.versions(alert_id)
        # What was sent is the truth of a version; a version no channel took (none configured,
        # or held by a silence) is served from the alert's latest view while it is current.
        view = next((v for v in queued if v.version == version), None)
        if view is None and version == current.version and current.version > 0:
            view = current
        if view is None or not view.texts:
            return None
        earlier = [v for v in queued if v.version < version]
        return cap_message(view, sender=self.sender, references=earlier)

    def parse(self, identifier: str) -> tuple[int, int] | None:
        parsed = parse_identifier(identifier)
        if parsed is None:
            return None
        city, alert_id, version = parsed
        with Session(self.engine) as session:
            row = session.get(Alert, alert_id)
            if row is None or row.city != city:
                return None
        return alert_id, version

    def feed(self, *, base_url: str, feed_url: str, now: datetime | None = None) -> bytes:
        """The Atom feed of current public Actual alerts: active ones and all-clears sent in
        the last hour, each entry its latest version."""
        now = now or datetime.now(UTC)
        views = self.find(public=True, statuses=ACTIVE_STATUSES, limit=500, worst_first=True)
        views += self.find(public=True, statuses=["resolved"], since=now - FEED_KEEPS_ENDED,
                           limit=500)
        return atom_feed([v for v in views if v.texts], base_url=base_url, sender=self.sender,
                         feed_url=feed_url, updated=now)

