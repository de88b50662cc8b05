"""Delivery of queued notifications: the outbox dispatcher.

The engine writes one ``alert_outbox`` row per (alert version, channel) in the same transaction
as the state change, then calls :meth:`Dispatcher.wake`. The dispatcher runs one worker per
configured channel, so a slow mail server never holds up a webhook: each worker takes its due
rows (``queued`` and ``next_attempt_at <= now``, oldest first, ``batch`` at a time), sends them
in order and marks each in its own short transaction: ``sent`` with ``sent_at``, or one more
attempt with a backoff, or ``failed`` after ``max_attempts`` (or at once when the channel says
retrying cannot help). A later version of an alert waits until the earlier one to the same
channel is sent or failed, so a receiver never sees an update before the alert it updates.

At least once: a crash between a send and its mark sends the row again with the same
idempotency key, which receivers use to drop the repeat. One dispatcher per database (one
``kota alerts`` service): rows are not leased, two dispatchers would both send them.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from alerts.channels._contract import Channel, DeliveryError
from alerts.model import AlertView, alert_view_from_json
from kota.backoff import Backoff
from store.alert_models import OutboxItem

__all__ = ["Dispatcher", "OutboxMetrics", "OutboxSettings", "idempotency_key", "requeue_failed"]

log = logging.getLogger(__name__)

# Delivery latency buckets (created → sent), seconds: the target is p99 <= 5 s.
_LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
_ERROR_CHARS = 2000   # last_error is for people; a whole HTML error page is not


class OutboxSettings(BaseModel):
    """How the outbox is delivered (``alerts.outbox`` in kota.yaml)."""

    model_config = ConfigDict(extra="forbid")

    poll_interval_s: float = Field(
        default=2.0, gt=0, le=3600,
        description="Seconds between looks for due rows; new alerts wake the dispatcher at once, "
                    "so this bounds only retries and rows queued by another process")
    batch: int = Field(default=100, ge=1, le=10_000,
                       description="Rows one channel takes per look")
    max_attempts: int = Field(
        default=10, ge=1, le=1000,
        description="Tries per notification before it is marked failed (10 with the default "
                    "backoff: about 15-30 minutes of retrying)")
    backoff_initial_s: float = Field(default=5.0, gt=0, le=3600,
                                     description="Wait after the first failed try; doubles")
    backoff_max_s: float = Field(
        default=600.0, gt=0, le=86_400,
        description="Longest wait between tries (a longer Retry-After is cut to it: an alert "
                    "that waits longer is stale)")

    @model_validator(mode="after")
    def _ordered(self) -> OutboxSettings:
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("backoff_max_s must be at least backoff_initial_s "
                             f"({self.backoff_max_s:g} < {self.backoff_initial_s:g})")
        return self


def idempotency_key(view: AlertView, channel: str) -> str:
    """The key of one (alert version, channel): ``kota-<city>-alert-<id>-v<version>-<channel>``
    (the email channel threads updates under the key of version 1)."""
    return f"{view.identifier}-{channel}"


class OutboxMetrics:
    """The dispatcher's Prometheus metrics, in the given registry (the service's /metrics)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        labels = ["channel"]
        self.sent = Counter("kota_alerts_notifications_sent", "Notifications delivered",
                            labels, registry=self.registry)
        self.failed = Counter("kota_alerts_notifications_failed",
                              "Notifications given up (max_attempts, refused, or no such "
                              "channel)", labels, registry=self.registry)
        self.retried = Counter("kota_alerts_notifications_retried",
                               "Failed tries that will be tried again", labels,
                               registry=self.registry)
        self.queued = Gauge("kota_alerts_outbox_queued", "Outbox rows waiting to be sent",
                            labels, registry=self.registry)
        self.failed_rows = Gauge("kota_alerts_outbox_failed", "Outbox rows marked failed",
                                 labels, registry=self.registry)
        self.latency = Histogram("kota_alerts_delivery_latency_seconds",
                                 "Outbox row created to delivered", labels,
                                 buckets=_LATENCY_BUCKETS_S, registry=self.registry)


def _utc(moment: datetime) -> datetime:
    """SQLite gives naive datetimes back; every time here is written in UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class _Due:
    id: int
    alert_id: int
    version: int
    idempotency_key: str
    payload: dict[str, Any]
    attempts: int
    created_at: datetime


def requeue_failed(engine: Engine, channel: str | None = None) -> int:
    """Put failed rows back in the queue (attempts from 0), after the cause was fixed; returns
    how many. Their idempotency keys are unchanged."""
    statement = (update(OutboxItem).where(OutboxItem.status == "failed")
                 .values(status="queued", attempts=0, next_attempt_at=_now()))
    if channel is not None:
        statement = statement.where(OutboxItem.channel == channel)
    with Session(engine) as session, session.begin():
        result = session.execute(statement)
        return int(result.rowcount)  # type: ignore[attr-defined]


class Dispatcher:
    """Deliver the outbox through ``channels`` until ``stop`` is set: ``await run(stop)``.

    The channels stay open after :meth:`run` returns; :meth:`aclose` closes them.
    """

    def __init__(self, engine: Engine, channels: Sequence[Channel[Any]],
                 settings: OutboxSettings, *, metrics: OutboxMetrics | None = None,
                 rng: random.Random | None = None) -> None:
        self.engine = engine
        self.channels = {channel.name: channel for channel in channels}
        self.settings = settings
        self.metrics = metrics if metrics is not None else OutboxMetrics()
        self._rng = rng if rng is not None else random.Random()
        self._wakes: list[asyncio.Event] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake_lock = threading.Lock()
        for name in self.channels:  # the gauges show every channel, also at 0
            self.metrics.queued.labels(name).set(0)
            self.metrics.failed_rows.labels(name).set(0)

    # -- waking ---------------------------------------------------------------------------

    def wake(self) -> None:
        """Look for due rows now (the engine calls it after committing new rows). Safe from any
        thread; a no-op before :meth:`run`."""
        with self._wake_lock:
            loop, events = self._loop, list(self._wakes)
        if loop is None or loop.is_closed():
            return
        for event in events:
            loop.call_soon_threadsafe(event.set)

    async def _sleep(self, wake: asyncio.Event, stop: asyncio.Event) -> None:
        """Until woken, stopped or ``poll_interval_s`` passed."""
        waiters = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waiters, timeout=self.settings.poll_interval_s,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        wake.clear()

    # -- the loops ------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """One worker per channel and one housekeeper, until ``stop`` is set."""
        events = [asyncio.Event() for _ in range(len(self.channels) + 1)]
        with self._wake_lock:
            self._loop, self._wakes = asyncio.get_running_loop(), events
        try:
            await asyncio.gather(
                self._housekeeping(events[-1], stop),
                *(self._worker(channel, event, stop)
                  for channel, event in zip(self.channels.values(), events, strict=False)))
        finally:
            with self._wake_lock:
                self._loop, self._wakes = None, []

    async def _housekeeping(self, wake: asyncio.Event, stop: asyncio.Event) -> None:
        """Fail rows of channels no longer configured; refresh the queued/failed gauges."""
        while not stop.is_set():
            try:
                await asyncio.to_thread(self._fail_unknown_channels)
                await asyncio.to_thread(self._refresh_gauges)
            except Exception:  # the database away: the workers report it too; try again
                log.exception("alert outbox: housekeeping failed; trying again")
            await self._sleep(wake, stop)

    async def _worker(self, channel: Channel[Any], wake: asyncio.Event,
                      stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                taken = await self.deliver_due(channel, stop)
                if taken:
                    await asyncio.to_thread(self._refresh_gauges)
            except Exception:
                log.exception("alert outbox: channel %s: reading or marking rows failed; "
                              "trying again in %g s", channel.name, self.settings.poll_interval_s)
                taken = 0
            if taken < self.settings.batch:  # a full batch: more may be due at once
                await self._sleep(wake, stop)

    async def deliver_due(self, channel: Channel[Any], stop: asyncio.Event | None = None) -> int:
        """Send this channel's due rows, oldest first; returns how many rows were taken."""
        rows = await asyncio.to_thread(self._due_rows, channel.name)
        held_back: set[int] = set()   # alerts whose earlier version did not go out this round
        for row in rows:
            if stop is not None and stop.is_set():
                break
            if row.alert_id in held_back:
                continue
            if not await self._deliver(channel, row):
                held_back.add(row.alert_id)
        return len(rows)

    # -- one row --------------------------------------------------------------------------

    async def _deliver(self, channel: Channel[Any], row: _Due) -> bool:
        name = channel.name
        try:
            view = alert_view_from_json(row.payload)
        except (KeyError, TypeError, ValueError) as exc:
            await asyncio.to_thread(self._mark_failed, row, name,
                                    f"payload is not an alert view: {exc!r}", False)
            return False
        try:
            await channel.send(view, row.idempotency_key)
        except DeliveryError as exc:
            await asyncio.to_thread(self._mark_failed, row, name, str(exc), exc.retryable,
                                    exc.retry_after_s)
            return False
        except Exception as exc:  # a bug in a channel: logged, and retried like an outage
            log.exception("alert outbox: channel %s raised on %s", name, row.idempotency_key)
            await asyncio.to_thread(self._mark_failed, row, name,
                                    f"{type(exc).__name__}: {exc}", True)
            return False
        sent_at = await asyncio.to_thread(self._mark_sent, row)
        self.metrics.sent.labels(name).inc()
        self.metrics.latency.labels(name).observe(
            max(0.0, (sent_at - _utc(row.created_at)).total_seconds()))
        return True

    def _due_rows(self, channel: str) -> list[_Due]:
        now = _now()
        with Session(self.engine) as session:
            items = session.scalars(
                select(OutboxItem)
                .where(OutboxItem.channel == channel, OutboxItem.status == "queued",
                       OutboxItem.next_attempt_at <= now)
                .order_by(OutboxItem.created_at, OutboxItem.id)
                .limit(self.settings.batch)).all()
            if not items:
                return []
            # The oldest queued version per alert (due or waiting for its retry): later
            # versions wait for it, so updates arrive in order.
            first_version = {alert_id: version for alert_id, version in session.execute(
                select(OutboxItem.alert_id, func.min(OutboxItem.version))
                .where(OutboxItem.channel == channel, OutboxItem.status == "queued",
                       OutboxItem.alert_id.in_({item.alert_id for item in items}))
                .group_by(OutboxItem.alert_id)).all()}
            return [_Due(item.id, item.alert_id, item.version, item.idempotency_key,
                         item.payload, item.attempts, item.created_at)
                    for item in items if item.version <= first_version[item.alert_id]]

    def _mark_sent(self, row: _Due) -> datetime:
        sent_at = _now()
        with Session(self.engine) as session, session.begin():
            session.execute(update(OutboxItem).where(OutboxItem.id == row.id).values(
                status="sent", sent_at=sent_at, attempts=row.attempts + 1, last_error=None))
        return sent_at

    def _mark_failed(self, row: _Due, channel: str, error: str, retryable: bool,
                     retry_after_s: float | None = None) -> None:
        attempts = row.attempts + 1
        error = error[:_ERROR_CHARS]
        if retryable and attempts < self.settings.max_attempts:
            delay_s = self._delay_s(attempts, retry_after_s)
            with Session(self.engine) as session, session.begin():
                session.execute(update(OutboxItem).where(OutboxItem.id == row.id).values(
                    attempts=attempts, last_error=error,
                    next_attempt_at=_now() + timedelta(seconds=delay_s)))
            self.metrics.retried.labels(channel).inc()
            log.warning("alert outbox: %s to channel %s: try %d of %d failed (%s); next in "
                        "%.1f s", row.idempotency_key, channel, attempts,
                        self.settings.max_attempts, error, delay_s)
            return
        with Session(self.engine) as session, session.begin():
            session.execute(update(OutboxItem).where(OutboxItem.id == row.id).values(
                status="failed", attempts=attempts, last_error=error))
        self.metrics.failed.labels(channel).inc()
        why = (f"after {attempts} tries" if retryable
               else "refused (trying again cannot help)")
        log.error("alert outbox: %s to channel %s failed %s: %s. It will not be sent: fix the "
                  "receiver or the channel's settings (alerts.channels, name %s), then put it "
                  "back in the queue with alerts.outbox.requeue_failed", row.idempotency_key,
                  channel, why, error, channel)

    def _delay_s(self, attempts: int, retry_after_s: float | None) -> float:
        """Jittered exponential backoff for the ``attempts``-th failure; a receiver's
        Retry-After wins (capped at ``backoff_max_s``)."""
        if retry_after_s is not None:
            return min(max(retry_after_s, 0.0), self.settings.backoff_max_s)
        backoff = Backoff(self.settings.backoff_initial_s, self.settings.backoff_max_s,
                          jitter=0.5, rng=self._rng)
        backoff.attempt = attempts - 1
        return backoff.next_delay()

    # -- housekeeping ---------------------------------------------------------------------

    def _fail_unknown_channels(self) -> None:
        with Session(self.engine) as session, session.begin():
            orphans = {channel: count for channel, count in session.execute(
                select(OutboxItem.channel, func.count())
                .where(OutboxItem.status == "queued",
                       OutboxItem.channel.not_in(list(self.channels)))
                .group_by(OutboxItem.channel)).all()}
            for channel in orphans:
                session.execute(
                    update(OutboxItem)
                    .where(OutboxItem.status == "queued", OutboxItem.channel == channel)
                    .values(status="failed",
                            last_error=f"channel {channel!r} is not configured (alerts.channels)"
                                       "; configure it again and requeue to deliver these"))
        for channel, count in orphans.items():
            self.metrics.failed.labels(channel).inc(count)
            log.error("alert outbox: %d notification(s) for channel %r marked failed: no channel "
                      "of that name is configured (alerts.channels). Configure it again and "
                      "requeue them (alerts.outbox.requeue_failed) if they should still go out",
                      count, channel)

    def _refresh_gauges(self) -> None:
        with Session(self.engine) as session:
            counts = session.execute(
                select(OutboxItem.channel, OutboxItem.status, func.count())
                .where(OutboxItem.status.in_(("queued", "failed")))
                .group_by(OutboxItem.channel, OutboxItem.status)).all()
        by_key = {(channel, status): count for channel, status, count in counts}
        for name in set(self.channels) | {channel for channel, _ in by_key}:
            self.metrics.queued.labels(name).set(by_key.get((name, "queued"), 0))
            self.metrics.failed_rows.labels(name).set(by_key.get((name, "failed"), 0))

    async def aclose(self) -> None:
        """Close every channel's connections."""
        for channel in self.channels.values():
            try:
                await channel.close()
            except Exception:
                log.exception("alert outbox: closing channel %s", channel.name)
