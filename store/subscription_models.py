"""Subscriptions (issue 12): who gets which alerts on which channel, and every notification
sent to them. The schema itself is store/migrations/versions/0004_subscriptions.py.

Personal data (UU 27/2022): ``address`` (an email address, a webhook URL or an apprise URL) is
the only personal datum and is kept only while the subscription exists; deleting a subscriber
deletes its notifications too (ON DELETE CASCADE). ``address_hash`` (SHA-256 of the normalised
address with the server's secret) finds a subscriber without searching by the address itself,
and is what logs and metrics may show.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from store.models import Base

__all__ = ["NOTIFICATION_STATUSES", "SUBSCRIBER_CHANNELS", "SUBSCRIBER_STATUSES",
           "Notification", "Subscriber"]

SUBSCRIBER_CHANNELS = ("email", "webhook", "apprise")
# pending: waiting for the email confirmation or the webhook challenge; nothing is sent to it.
SUBSCRIBER_STATUSES = ("pending", "active", "unsubscribed")
# digested: folded into a later digest notification (``digest_id``) instead of sent alone.
NOTIFICATION_STATUSES = ("queued", "sent", "failed", "digested")


class Subscriber(Base):
    """One subscription: an address on a channel, with what it wants to hear about."""

    __tablename__ = "subscribers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(Text)
    address_hash: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    language: Mapped[str] = mapped_column(String(8))          # id-ID or en-US
    # What it wants: kecamatan names (as the registry spells them), kelurahan names, or a
    # point and radius; hazards (flood, air, rain, safety: only the public ones); the lowest
    # CAP severity.
    districts: Mapped[list[str]] = mapped_column(JSON, default=list)
    kelurahan: Mapped[list[str]] = mapped_column(JSON, default=list)
    lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    radius_km: Mapped[float | None] = mapped_column(Float, nullable=True)
    hazards: Mapped[list[str]] = mapped_column(JSON, default=list)
    min_severity: Mapped[str] = mapped_column(String(16))
    # Quiet hours in local time (Asia/Jakarta), e.g. 22 → 6; never hold back Extreme.
    quiet_start_h: Mapped[int | None] = mapped_column(Integer, nullable=True)
    quiet_end_h: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Who made it: "public" (the sign-up page) or an operator's key label (agencies' groups).
    created_by: Mapped[str] = mapped_column(String(100))
    # An operator's label for an agency's subscription ("BPBD Jakarta Timur, Telegram").
    label: Mapped[str | None] = mapped_column(String(100), nullable=True)
    # The confirmation (email link or webhook challenge): only a hash of the token is kept.
    confirm_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    confirm_sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True),
                                                             nullable=True)
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    unsubscribed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True),
                                                             nullable=True)
    last_sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True),
                                                          nullable=True)


class Notification(Base):
    """One alert version for one subscriber. ``(subscriber_id, alert_id, version)`` is unique:
    fanning out twice (a crash and a retry) cannot queue twice."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"),
                                          index=True)
    version: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)   # alert_view_to_json(view)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    digest_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
