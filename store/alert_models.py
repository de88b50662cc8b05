"""The alert engine's tables (alerts/): alerts, their history, the outbox and silences.

The schema itself is the migration store/migrations/versions/0002_alerts.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from store.models import Base

__all__ = ["ALERT_STATUSES", "OUTBOX_STATUSES", "Alert", "AlertEvent", "OutboxItem", "Silence"]

ALERT_STATUSES = ("pending", "firing", "acknowledged", "resolved")
OUTBOX_STATUSES = ("queued", "sent", "failed")


class Alert(Base):
    """One alert: one rule at one scope (a gauge, a kecamatan, a device) from the moment its
    condition first held until it resolved. ``active_key`` is ``rule_id|scope`` while the alert
    is not resolved and NULL after: unique, so there is one active alert per rule and scope."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rule_id: Mapped[str] = mapped_column(String(100))
    scope: Mapped[str] = mapped_column(String(200))
    active_key: Mapped[str | None] = mapped_column(String(301), unique=True, nullable=True)
    city: Mapped[str] = mapped_column(String(64))
    hazard: Mapped[str] = mapped_column(String(16))
    audience: Mapped[str] = mapped_column(String(16))
    cap_status: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    grade: Mapped[int] = mapped_column(Integer)
    level: Mapped[str] = mapped_column(String(100))
    severity: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer, default=0)   # 0 while pending
    # The last version queued for delivery: a version decided during a silence is sent when
    # the silence ends if the alert is still active.
    notified_version: Mapped[int] = mapped_column(Integer, default=0)
    # The latest view (texts, area, figures) as JSON: what the API and the CAP feed show.
    view: Mapped[dict[str, Any]] = mapped_column(JSON)
    pending_since: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    fired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Hysteresis in time: since when the condition has been clear (NULL: it holds).
    clear_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_observed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_notified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True),
                                                              nullable=True)
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True),
                                                             nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AlertEvent(Base):
    """One step in an alert's history: who (``actor``: ``engine`` or a principal) did what."""

    __tablename__ = "alert_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"),
                                          index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # pending, fired, escalated, deescalated, repeated, acknowledged, resolved, silenced,
    # unsilenced, withdrawn (pending that cleared before firing)
    kind: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    grade: Mapped[int] = mapped_column(Integer)
    level: Mapped[str] = mapped_column(String(100))
    note: Mapped[str | None] = mapped_column(Text, nullable=True)


class OutboxItem(Base):
    """One notification to deliver: one alert version to one channel. Written in the same
    transaction as the state change that caused it; ``idempotency_key`` is unique, so deciding
    twice cannot queue twice."""

    __tablename__ = "alert_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"),
                                          index=True)
    version: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)   # alert_view_to_json(view)
    status: Mapped[str] = mapped_column(String(16))   # queued, sent, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Silence(Base):
    """Hold back notifications of matching alerts between two times (a sensor being serviced,
    a maintenance window). Matching alerts still change state and are recorded; they are not
    sent. ``rule_id`` and ``scope`` NULL match any."""

    __tablename__ = "alert_silences"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rule_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    scope: Mapped[str | None] = mapped_column(String(200), nullable=True)
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expired_early_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True),
                                                              nullable=True)
