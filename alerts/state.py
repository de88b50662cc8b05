"""Alert state in the relational database: every decision is committed with its history event
and its notifications in one transaction (the outbox), so a crash between deciding and sending
loses nothing and a decision cannot be queued twice (idempotency keys are unique).

The engine (alerts/engine.py) decides; this module maps rows to :class:`AlertState`, builds
each version's :class:`AlertView`, applies silences, and records operators' actions
(acknowledge, resolve) and silences for the API and ``kota alerts``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Engine, case, func, or_, select
from sqlalchemy.orm import Session

from alerts.engine import AlertState, Decision
from alerts.model import (
    ACTIVE_STATUSES,
    SEVERITY_RANK,
    AlertText,
    AlertView,
    Area,
    MsgType,
    alert_view_from_json,
    alert_view_to_json,
)
from alerts.outbox import idempotency_key
from alerts.rules import Finding
from store.alert_models import Alert, AlertEvent, OutboxItem, Silence
from store.models import utc

__all__ = ["AlertStore", "ChannelFilter", "RuleInfo", "StateError", "active_key"]

ENGINE_ACTOR = "engine"
_VERSION_STANDS = timedelta(days=1)
_CANCEL_STANDS = timedelta(hours=1)


class ChannelFilter(Protocol):
    """What the store needs of a channel: its name and whether it takes a version."""

    @property
    def name(self) -> str: ...

    def accepts(self, view: AlertView) -> bool: ...


@dataclass(frozen=True)
class RuleInfo:
    """What the store needs of a rule to build a view."""

    id: str
    hazard: Any
    audience: Any
    exercise: bool


class StateError(ValueError):
    """An operator's action that cannot be done (unknown alert, already resolved)."""


def active_key(rule_id: str, scope: str) -> str:
    return f"{rule_id}|{scope}"


def _now() -> datetime:
    return datetime.now(UTC)


def state_of(row: Alert) -> AlertState:
    details = (row.view or {}).get("details") or {}
    return AlertState(
        status=row.status,  # type: ignore[arg-type]
        grade=row.grade, version=row.version,
        pending_since=utc(row.pending_since) or _now(), fired_at=utc(row.fired_at),
        clear_since=utc(row.clear_since), last_notified_at=utc(row.last_notified_at),
        clear_grade=int(details.get("_clear_grade", 0)))


def _msg_type(status: str, version: int) -> MsgType:
    if status == "resolved":
        return "Cancel"
    return "Alert" if version <= 1 else "Update"


class AlertStore:
    """Alerts, their history, the outbox and silences, on one SQLAlchemy engine."""

    def __init__(self, engine: Engine, channels: Sequence[ChannelFilter] = ()) -> None:
        self.engine = engine
        self.channels = list(channels)

    # -- the engine's side ---------------------------------------------------------------------
    def active(self) -> dict[tuple[str, str], AlertState]:
        """Every active alert's state, by (rule, scope): the service's memory after a restart."""
        with Session(self.engine) as session:
            rows = session.scalars(select(Alert).where(Alert.active_key.is_not(None))).all()
            return {(row.rule_id, row.scope): state_of(row) for row in rows}

    def apply(self, rule: RuleInfo, scope: str, decision: Decision, finding: Finding | None,
              now: datetime) -> AlertView | None:
        """Commit one decision. Returns the new version's view when one was queued for delivery
        (or held by a silence), else None."""
        new = decision.state
        if new is None:
            return None
        with Session(self.engine) as session, session.begin():
            row = session.scalars(select(Alert).where(
                Alert.active_key == active_key(rule.id, scope))).first()
            if row is None:
                if decision.event is None:
                    return None
                row = self._new_row(rule, scope, finding, now)
                session.add(row)
            old_view = row.view
            row.status = new.status
            row.grade = new.grade
            row.version = new.version
            row.pending_since = new.pending_since
            row.fired_at = new.fired_at
            row.clear_since = new.clear_since
            row.last_notified_at = new.last_notified_at
            row.updated_at = now
            if finding is not None:
                row.last_observed_at = finding.at
                if decision.event is not None or new.grade == finding.grade:
                    row.level = finding.level
                    row.severity = finding.severity
            if new.status == "resolved":
                row.active_key = None
                row.resolved_at = now
                row.resolved_by = row.resolved_by or ENGINE_ACTOR
            session.flush()   # a new row gets its id: the view and the keys carry it
            view = self._view(row, finding, old_view, now)
            view_json = alert_view_to_json(view)
            view_json["details"]["_clear_grade"] = new.clear_grade
            row.view = view_json
            if decision.event is not None:
                session.add(AlertEvent(alert_id=row.id, at=now, kind=decision.event,
                                       actor=ENGINE_ACTOR, version=row.version, grade=row.grade,
                                       level=row.level, note=None))
            if decision.notify:
                self._queue(session, row, view, now)
            return view if decision.notify else None

    def _new_row(self, rule: RuleInfo, scope: str, finding: Finding | None,
                 now: datetime) -> Alert:
        assert finding is not None
        return Alert(
            rule_id=rule.id, scope=scope, active_key=active_key(rule.id, scope),
            city=finding.city, hazard=rule.hazard, audience=rule.audience,
            cap_status="Exercise" if rule.exercise else "Actual", status="pending",
            grade=finding.grade, level=finding.level, severity=finding.severity, version=0,
            notified_version=0, view={}, pending_since=finding.at, last_observed_at=finding.at,
            updated_at=now)

    def _view(self, row: Alert, finding: Finding | None, old: dict[str, Any] | None,
              now: datetime) -> AlertView:
        if finding is not None and (finding.grade > 0 or not old):
            texts = dict(finding.texts)
            area, details = finding.area, dict(finding.details)
            urgency, certainty = finding.urgency, finding.certainty
        else:
            # No new finding, or the all-clear's: keep the words of the last alerting version.
            previous = alert_view_from_json(old) if old else None
            texts = previous.texts if previous else {}
            area = previous.area if previous else Area(description=row.scope)
            details = {k: v for k, v in (previous.details if previous else {}).items()
                       if not k.startswith("_")}
            urgency = previous.urgency if previous else "Unknown"
            certainty = previous.certainty if previous else "Unknown"
        if row.status == "resolved":
            urgency = "Past"
            if texts and not any(text.headline.startswith(tuple(_ENDED.values()))
                                 for text in texts.values()):
                texts = _ended(texts)
        return AlertView(
            id=row.id or 0, version=row.version, rule_id=row.rule_id, scope=row.scope,
            city=row.city, hazard=row.hazard, audience=row.audience,  # type: ignore[arg-type]
            status=row.status,  # type: ignore[arg-type]
            msg_type=_msg_type(row.status, row.version),
            cap_status=row.cap_status,  # type: ignore[arg-type]
            level=row.level, grade=row.grade, severity=row.severity,  # type: ignore[arg-type]
            urgency=urgency, certainty=certainty, sent_at=now, fired_at=utc(row.fired_at),
            texts=texts, area=area, details=details, acknowledged_by=row.acknowledged_by,
            acknowledged_at=utc(row.acknowledged_at), resolved_by=row.resolved_by,
            resolved_at=utc(row.resolved_at),
            # CAP <expires>: a version stands until the next one (repeats, updates) or a day;
            # the all-clear for an hour (public alert hubs drop expired messages).
            expires_at=now + (_CANCEL_STANDS if row.status == "resolved" else _VERSION_STANDS))

    def _silence(self, session: Session, row: Alert, now: datetime) -> Silence | None:
        return session.scalars(select(Silence).where(
            Silence.starts_at <= now, Silence.ends_at > now, Silence.expired_early_at.is_(None),
            or_(Silence.rule_id.is_(None), Silence.rule_id == row.rule_id),
            or_(Silence.scope.is_(None), Silence.scope == row.scope))).first()

    def _queue(self, session: Session, row: Alert, view: AlertView, now: datetime) -> int:
        """Outbox rows for this version, unless a silence holds it (recorded as an event)."""
        silence = self._silence(session, row, now)
        if silence is not None:
            session.add(AlertEvent(alert_id=row.id, at=now, kind="silenced", actor=ENGINE_ACTOR,
                                   version=row.version, grade=row.grade, level=row.level,
                                   note=f"held by silence {silence.id}: {silence.reason}"))
            return 0
        payload = alert_view_to_json(view)
        queued = 0
        for channel in self.channels:
            if not channel.accepts(view):
                continue
            session.add(OutboxItem(
                alert_id=row.id, version=row.version, channel=channel.name,
                idempotency_key=idempotency_key(view, channel.name),
                payload=payload, status="queued", attempts=0, next_attempt_at=now,
                created_at=now))
            queued += 1
        row.notified_version = row.version
        return queued

    def catch_up(self, now: datetime | None = None) -> int:
        """Queue the current version of active alerts whose version a silence held back, once
        the silence is over. Returns how many alerts were queued."""
        now = now or _now()
        count = 0
        with Session(self.engine) as session, session.begin():
            rows = session.scalars(select(Alert).where(
                Alert.active_key.is_not(None), Alert.status != "pending",
                Alert.version > Alert.notified_version)).all()
            for row in rows:
                if self._silence(session, row, now) is None:
                    self._queue(session, row, alert_view_from_json(row.view), now)
                    count += 1
        return count

    # -- operators' side -----------------------------------------------------------------------
    def acknowledge(self, alert_id: int, actor: str, note: str | None = None,
                    now: datetime | None = None) -> AlertView:
        """An operator has seen the alert: no more repeats until it escalates."""
        now = now or _now()
        with Session(self.engine) as session, session.begin():
            row = self._row(session, alert_id)
            if row.status != "firing":
                raise StateError(f"alert {alert_id} is {row.status}: only a firing alert can be "
                                 "acknowledged")
            row.status, row.acknowledged_at, row.acknowledged_by = "acknowledged", now, actor
            row.updated_at = now
            session.add(AlertEvent(alert_id=row.id, at=now, kind="acknowledged", actor=actor,
                                   version=row.version, grade=row.grade, level=row.level,
                                   note=note))
            view = self._view(row, None, row.view, now)
            row.view = {**alert_view_to_json(view),
                        "details": {**view.details, **_private(row.view)}}
            return view

    def resolve(self, alert_id: int, actor: str, note: str | None = None,
                now: datetime | None = None) -> AlertView:
        """An operator closes the alert: the all-clear is sent like the engine's. If the
        condition still holds, the next observation starts a new alert."""
        now = now or _now()
        with Session(self.engine) as session, session.begin():
            row = self._row(session, alert_id)
            if row.status == "resolved":
                raise StateError(f"alert {alert_id} is already resolved")
            was_pending = row.status == "pending"
            row.status, row.active_key = "resolved", None
            row.resolved_at, row.resolved_by, row.updated_at = now, actor, now
            if not was_pending:
                row.version += 1
            session.add(AlertEvent(alert_id=row.id, at=now, kind="resolved", actor=actor,
                                   version=row.version, grade=row.grade, level=row.level,
                                   note=note))
            view = self._view(row, None, row.view, now)
            row.view = alert_view_to_json(view)
            if not was_pending:
                row.last_notified_at = now
                self._queue(session, row, view, now)
            return view

    def _row(self, session: Session, alert_id: int) -> Alert:
        row = session.get(Alert, alert_id, with_for_update=True)
        if row is None:
            raise StateError(f"no alert {alert_id}")
        return row

    # -- reading -------------------------------------------------------------------------------
    def find(self, *, statuses: Sequence[str] | None = None, hazard: str | None = None,
             rule_id: str | None = None, audience: Sequence[str] | None = None,
             cap_status: str | None = None, since: datetime | None = None,
             with_message: bool = False, worst_first: bool = False, limit: int = 100,
             before_id: int | None = None) -> list[AlertView]:
        """Alerts newest first, or worst first (severity, then most recently updated).

        ``since``: changed (a new version, an operator's action) at or after this time;
        ``with_message``: only alerts whose message was written (not a pending one's first
        decision).
        """
        query = select(Alert).limit(limit)
        if statuses:
            query = query.where(Alert.status.in_(statuses))
        if hazard:
            query = query.where(Alert.hazard == hazard)
        if rule_id:
            query = query.where(Alert.rule_id == rule_id)
        if audience:
            query = query.where(Alert.audience.in_(audience))
        if cap_status:
            query = query.where(Alert.cap_status == cap_status)
        if since is not None:
            query = query.where(Alert.updated_at >= since.astimezone(UTC))
        if with_message:
            query = query.where(Alert.view.is_not(None))
        if before_id:
            query = query.where(Alert.id < before_id)
        if worst_first:
            rank = case(SEVERITY_RANK, value=Alert.severity, else_=0)
            query = query.order_by(rank.desc(), Alert.updated_at.desc(), Alert.id.desc())
        else:
            query = query.order_by(Alert.id.desc())
        with Session(self.engine) as session:
            return [_row_view(row) for row in session.scalars(query).all()]

    def get(self, alert_id: int) -> tuple[AlertView, list[AlertEvent], list[OutboxItem]] | None:
        with Session(self.engine, expire_on_commit=False) as session:
            row = session.get(Alert, alert_id)
            if row is None:
                return None
            events = session.scalars(select(AlertEvent).where(AlertEvent.alert_id == alert_id)
                                     .order_by(AlertEvent.id)).all()
            deliveries = session.scalars(select(OutboxItem).where(
                OutboxItem.alert_id == alert_id).order_by(OutboxItem.id)).all()
            return _row_view(row), list(events), list(deliveries)

    def versions(self, alert_id: int) -> list[AlertView]:
        """Every version that was queued for delivery (from the outbox), oldest first: the CAP
        message of each, and the references of the next."""
        with Session(self.engine) as session:
            rows = session.execute(
                select(OutboxItem.version, func.min(OutboxItem.id))
                .where(OutboxItem.alert_id == alert_id).group_by(OutboxItem.version)
                .order_by(OutboxItem.version)).all()
            views = []
            for _version, item_id in rows:
                item = session.get(OutboxItem, item_id)
                assert item is not None
                views.append(alert_view_from_json(item.payload))
            return views

    def counts(self) -> dict[str, int]:
        """Active alerts per status and outbox rows per status (for /metrics and the API)."""
        with Session(self.engine) as session:
            result = {f"alerts_{status}": count for status, count in session.execute(
                select(Alert.status, func.count()).where(Alert.status.in_(ACTIVE_STATUSES))
                .group_by(Alert.status)).all()}
            result.update({f"outbox_{status}": count for status, count in session.execute(
                select(OutboxItem.status, func.count()).group_by(OutboxItem.status)).all()})
            return result

    # -- silences ------------------------------------------------------------------------------
    def add_silence(self, *, rule_id: str | None, scope: str | None, starts_at: datetime,
                    ends_at: datetime, reason: str, actor: str) -> Silence:
        if ends_at <= starts_at:
            raise StateError("a silence must end after it starts")
        if not reason.strip():
            raise StateError("a silence needs a reason (who is servicing what)")
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            silence = Silence(rule_id=rule_id, scope=scope, starts_at=starts_at,
                              ends_at=ends_at, reason=reason.strip(), created_by=actor,
                              created_at=_now())
            session.add(silence)
        return silence

    def silences(self, *, active_at: datetime | None = None) -> list[Silence]:
        query = select(Silence).order_by(Silence.id.desc())
        if active_at is not None:
            query = query.where(Silence.starts_at <= active_at, Silence.ends_at > active_at,
                                Silence.expired_early_at.is_(None))
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.scalars(query).all())

    def expire_silence(self, silence_id: int, now: datetime | None = None) -> Silence:
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            silence = session.get(Silence, silence_id)
            if silence is None:
                raise StateError(f"no silence {silence_id}")
            if silence.expired_early_at is None:
                silence.expired_early_at = now or _now()
            return silence


def _private(view: dict[str, Any] | None) -> dict[str, Any]:
    details = (view or {}).get("details") or {}
    return {key: value for key, value in details.items() if key.startswith("_")}


_ENDED = {"id-ID": "Berakhir", "en-US": "Ended"}


def _ended(texts: dict[str, AlertText]) -> dict[str, AlertText]:
    """The all-clear keeps the last words, marked as ended."""
    return {language: AlertText(
        headline=f"{_ENDED.get(language, 'Ended')}: {text.headline}",
        description=text.description, instruction="")
        for language, text in texts.items()}


def _row_view(row: Alert) -> AlertView:
    if not row.view:
        return AlertView(
            id=row.id, version=row.version, rule_id=row.rule_id, scope=row.scope, city=row.city,
            hazard=row.hazard, audience=row.audience,  # type: ignore[arg-type]
            status=row.status, msg_type=_msg_type(row.status, row.version),  # type: ignore[arg-type]
            cap_status=row.cap_status, level=row.level, grade=row.grade,  # type: ignore[arg-type]
            severity=row.severity, urgency="Unknown", certainty="Unknown",  # type: ignore[arg-type]
            sent_at=utc(row.updated_at) or _now(), fired_at=utc(row.fired_at), texts={},
            area=Area(description=row.scope))
    view = alert_view_from_json(row.view)
    # The engine keeps its own figures (hysteresis) beside the message's: not for callers.
    for name in [name for name in view.details if name.startswith("_")]:
        view.details.pop(name)
    return view
