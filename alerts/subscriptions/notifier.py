"""Delivery to subscribers: the ``notifications`` rows the fan-out queued, sent per channel.

Per channel (email, webhook, apprise) one taker reads due rows (``queued``, ``next_attempt_at``
≤ now), groups them by subscriber and hands each group to one of ``workers_per_channel``
workers; a subscriber in a worker's hands is not taken again until it is done, so two workers
never send the same rows. For each group a worker decides, in the subscriber's interest:

* **quiet hours** (``quiet_start_h``..``quiet_end_h`` in ``alerts.subscriptions.timezone``):
  held until they end;
* **digest**: a message went out less than ``digest_window_s`` ago: held until the window
  ends, so what arrives meanwhile goes out together;
* **rate**: ``max_per_hour`` messages went out in the last hour: held until the oldest is an
  hour old;

and an Extreme alert is never held (it also takes whatever else is due along). What goes out
together is one message: the first row is ``sent``, the others ``digested`` with its id as
``digest_id``. A failed send is tried again with jittered exponential backoff and the rows are
``failed`` (with ``last_error``: the dead-letter list operators see) after ``max_attempts`` or
at once when trying again cannot help. At least once: a crash between a send and its mark sends
again with the same ``Idempotency-Key``/Message-ID.

Personal data: logs and metrics name subscriber ids only, never an address. Sent, failed and
digested rows are deleted after ``keep_notifications_days``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.orm import Session

from alerts.model import AlertView, alert_view_from_json
from alerts.subscriptions.senders import DeliveryError, Message, Recipient, Sender
from alerts.subscriptions.settings import SubscriptionSettings
from kota.backoff import Backoff
from store.models import utc
from store.subscription_models import SUBSCRIBER_CHANNELS, Notification, Subscriber

__all__ = ["Notifier", "NotifierMetrics", "build_senders", "quiet_until"]

log = logging.getLogger(__name__)

_ERROR_CHARS = 2000
_HOUR = timedelta(hours=1)
_RETENTION_EVERY_S = 3600.0


class NotifierMetrics:
    """Prometheus metrics per channel (no subscriber, no address in any label)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        labels = ["channel"]
        self.sent = Counter("kota_subscriptions_messages_sent",
                            "Messages delivered to subscribers (a digest counts once)",
                            labels, registry=self.registry)
        self.notifications_sent = Counter(
            "kota_subscriptions_notifications_sent",
            "Notifications delivered, alone or in a digest", labels, registry=self.registry)
        self.failed = Counter("kota_subscriptions_notifications_failed",
                              "Notifications given up (max_attempts or refused)", labels,
                              registry=self.registry)
        self.retried = Counter("kota_subscriptions_notifications_retried",
                               "Failed tries that will be tried again", labels,
                               registry=self.registry)
        self.digested = Counter("kota_subscriptions_notifications_digested",
                                "Notifications folded into another's message", labels,
                                registry=self.registry)
        self.held = Counter("kota_subscriptions_notifications_held",
                            "Notifications held back (quiet hours, digest window, rate)",
                            ["channel", "reason"], registry=self.registry)
        self.queued = Gauge("kota_subscriptions_queue_depth",
                            "Notifications waiting to be sent", labels, registry=self.registry)
        self.failed_rows = Gauge("kota_subscriptions_failed",
                                 "Notifications marked failed (dead letters)", labels,
                                 registry=self.registry)
        self.deleted = Counter("kota_subscriptions_notifications_deleted",
                               "Sent/failed notifications deleted after "
                               "keep_notifications_days", registry=self.registry)


def build_senders(settings: SubscriptionSettings) -> list[Sender]:
    """One sender per subscriber channel (imported here: apprise loads its plugins)."""
    from alerts.subscriptions.senders.apprise import AppriseSender
    from alerts.subscriptions.senders.email import EmailSender
    from alerts.subscriptions.senders.webhook import WebhookSender

    return [EmailSender(settings), WebhookSender(settings),
            AppriseSender(settings.delivery.webhook_timeout_s)]


def _in_quiet(hour: int, start: int, end: int) -> bool:
    if start == end:
        return False
    return start <= hour < end if start < end else (hour >= start or hour < end)


def quiet_until(now: datetime, start_h: int | None, end_h: int | None,
                zone: ZoneInfo) -> datetime | None:
    """When the quiet hours around ``now`` end (UTC), or None outside them."""
    if start_h is None or end_h is None:
        return None
    local = now.astimezone(zone)
    if not _in_quiet(local.hour, start_h % 24, end_h % 24):
        return None
    end = local.replace(hour=end_h % 24, minute=0, second=0, microsecond=0)
    if end <= local:
        end += timedelta(days=1)
    return end.astimezone(UTC)


@dataclass(frozen=True)
class _Row:
    id: int
    subscriber_id: int
    severity: str
    payload: dict[str, Any]
    attempts: int
    created_at: datetime


class _GroupCommit:
    """Marks sent messages in shared transactions: while one commit runs, what the other
    workers finish meanwhile waits and goes into the next commit together. A worker returns
    only once its own rows are committed, so a crash still costs at most a send again."""

    def __init__(self, commit: Callable[[Sequence[tuple[int, tuple[_Row, ...]]]], None]
                 ) -> None:
        self._commit = commit
        self._waiting: list[tuple[int, tuple[_Row, ...], asyncio.Future[None]]] = []
        self._lock = asyncio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    async def mark(self, subscriber_id: int, rows: tuple[_Row, ...]) -> None:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:   # a lock belongs to one loop (tests run several)
            self._loop, self._lock, self._waiting = loop, asyncio.Lock(), []
        done: asyncio.Future[None] = loop.create_future()
        self._waiting.append((subscriber_id, rows, done))
        async with self._lock:
            if not done.done():   # no earlier commit took it along: commit all waiting
                batch, self._waiting = self._waiting, []
                try:
                    await asyncio.to_thread(self._commit, [(s, r) for s, r, _ in batch])
                except Exception as exc:
                    for *_, future in batch:
                        future.set_exception(exc)
                else:
                    for *_, future in batch:
                        future.set_result(None)
        await done


@dataclass(frozen=True)
class _Job:
    channel: str
    subscriber_id: int
    rows: tuple[_Row, ...]


class Notifier:
    """Send the queued notifications until ``stop`` is set: ``await run(stop)``."""

    def __init__(self, engine: Engine, settings: SubscriptionSettings,
                 senders: Sequence[Sender] | None = None, *,
                 metrics: NotifierMetrics | None = None, rng: random.Random | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.engine = engine
        self.settings = settings
        self.delivery = settings.delivery
        self.zone = ZoneInfo(settings.timezone)
        self.senders = {sender.channel: sender for sender in (
            senders if senders is not None else build_senders(settings))}
        self.metrics = metrics if metrics is not None else NotifierMetrics()
        self._rng = rng if rng is not None else random.Random()
        self._clock = clock or (lambda: datetime.now(UTC))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakes: list[asyncio.Event] = []
        self._marks = _GroupCommit(self._mark_sent_many)
        for channel in SUBSCRIBER_CHANNELS:
            self.metrics.queued.labels(channel).set(0)
            self.metrics.failed_rows.labels(channel).set(0)

    # -- waking and running ---------------------------------------------------------------

    def wake(self) -> None:
        """Look for due rows now (the fan-out calls it). Safe from any thread."""
        loop, events = self._loop, list(self._wakes)
        if loop is None or loop.is_closed():
            return
        for event in events:
            loop.call_soon_threadsafe(event.set)

    async def _sleep(self, wake: asyncio.Event, stop: asyncio.Event, seconds: float) -> None:
        waiters = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        wake.clear()

    async def run(self, stop: asyncio.Event) -> None:
        """A taker and ``workers_per_channel`` workers per channel, and housekeeping."""
        channels = [channel for channel in SUBSCRIBER_CHANNELS if channel in self.senders]
        events = [asyncio.Event() for _ in channels]
        self._loop, self._wakes = asyncio.get_running_loop(), events
        tasks = [asyncio.create_task(self._housekeeping(stop))]
        for channel, wake in zip(channels, events, strict=True):
            jobs: asyncio.Queue[_Job | None] = asyncio.Queue(
                maxsize=2 * self.delivery.workers_per_channel)
            busy: set[int] = set()
            tasks.append(asyncio.create_task(self._taker(channel, jobs, busy, wake, stop)))
            tasks += [asyncio.create_task(self._worker(jobs, busy, wake))
                      for _ in range(self.delivery.workers_per_channel)]
        try:
            await stop.wait()
        finally:
            await asyncio.wait(tasks, timeout=10)
            for task in tasks:
                task.cancel()
            self._loop, self._wakes = None, []

    async def aclose(self) -> None:
        for sender in self.senders.values():
            try:
                await sender.close()
            except Exception:
                log.exception("subscriptions: closing the %s sender", sender.channel)

    async def _taker(self, channel: str, jobs: asyncio.Queue[_Job | None], busy: set[int],
                     wake: asyncio.Event, stop: asyncio.Event) -> None:
        workers = self.delivery.workers_per_channel
        try:
            while not stop.is_set():
                try:
                    taken = await asyncio.to_thread(self._due, channel, set(busy))
                except Exception:
                    log.exception("subscriptions: reading due %s notifications failed; trying "
                                  "again in %g s", channel, self.delivery.poll_interval_s)
                    taken = []
                for job in taken:
                    busy.add(job.subscriber_id)
                    await jobs.put(job)
                if not taken:
                    await self._sleep(wake, stop, self.delivery.poll_interval_s)
        finally:
            for _ in range(workers):   # each worker ends at its None
                await jobs.put(None)

    async def _worker(self, jobs: asyncio.Queue[_Job | None], busy: set[int],
                      wake: asyncio.Event) -> None:
        while True:
            job = await jobs.get()
            if job is None:
                return
            try:
                await self.handle(job)
            except Exception:
                log.exception("subscriptions: subscriber %d: delivery failed unexpectedly; "
                              "the rows stay queued", job.subscriber_id)
            finally:
                busy.discard(job.subscriber_id)
            wake.set()   # the subscriber's later rows may be due now

    async def deliver_due(self, channel: str) -> int:
        """Handle every due row of ``channel`` once, one subscriber after another (tests, and
        a caller without the loops); returns how many rows were taken."""
        taken = await asyncio.to_thread(self._due, channel, set())
        for job in taken:
            await self.handle(job)
        return sum(len(job.rows) for job in taken)

    # -- one subscriber -------------------------------------------------------------------

    def _due(self, channel: str, busy: set[int]) -> list[_Job]:
        now = self._clock()
        query = (select(Notification.id, Notification.subscriber_id, Notification.severity,
                        Notification.payload, Notification.attempts, Notification.created_at)
                 .where(Notification.channel == channel, Notification.status == "queued",
                        Notification.next_attempt_at <= now)
                 .order_by(Notification.next_attempt_at, Notification.id)
                 .limit(self.delivery.batch))
        if busy:
            query = query.where(Notification.subscriber_id.not_in(busy))
        grouped: dict[int, list[_Row]] = defaultdict(list)
        with Session(self.engine) as session:
            for row in session.execute(query):
                grouped[row.subscriber_id].append(_Row(
                    row.id, row.subscriber_id, row.severity, row.payload, row.attempts,
                    utc(row.created_at) or now))
        return [_Job(channel, subscriber_id, tuple(sorted(rows, key=lambda r: r.id)))
                for subscriber_id, rows in grouped.items()]

    async def handle(self, job: _Job) -> None:
        """Send, hold or drop one subscriber's due rows."""
        now = self._clock()
        found = await asyncio.to_thread(self._subscriber, job.subscriber_id, now)
        if found is None:   # unsubscribed (or deleted) since the fan-out: nothing to send
            await asyncio.to_thread(self._drop, job)
            return
        recipient, hold_until, reason = found
        extreme = any(row.severity == "Extreme" for row in job.rows)
        if hold_until is not None and not extreme:
            await asyncio.to_thread(self._hold, job, hold_until)
            self.metrics.held.labels(job.channel, reason).inc(len(job.rows))
            return
        views: list[AlertView] = []
        bad: list[_Row] = []
        for row in job.rows:
            try:
                views.append(alert_view_from_json(row.payload))
            except (KeyError, TypeError, ValueError):
                bad.append(row)
        if bad:
            await asyncio.to_thread(self._fail, job.channel, tuple(bad),
                                    "payload is not an alert view", False)
        rows = tuple(row for row in job.rows if row not in bad)
        if not rows:
            return
        message = Message(tuple(views), _key(views, recipient.id, rows))
        sender = self.senders[job.channel]
        try:
            await sender.send(recipient, message)
        except DeliveryError as exc:
            await asyncio.to_thread(self._fail, job.channel, rows, str(exc), exc.retryable,
                                    exc.retry_after_s)
            return
        except Exception as exc:   # a bug in a sender: logged, retried like an outage
            log.exception("subscriptions: %s sender raised for subscriber %d", job.channel,
                          recipient.id)
            await asyncio.to_thread(self._fail, job.channel, rows, type(exc).__name__, True)
            return
        await self._marks.mark(recipient.id, rows)
        self.metrics.sent.labels(job.channel).inc()
        self.metrics.notifications_sent.labels(job.channel).inc(len(rows))
        if len(rows) > 1:
            self.metrics.digested.labels(job.channel).inc(len(rows) - 1)
        log.info("subscriptions: %s to subscriber %d (address %s…): %s", job.channel,
                 recipient.id, recipient.address_hash[:12],
                 " ".join(view.identifier for view in views))

    def _subscriber(self, subscriber_id: int, now: datetime
                    ) -> tuple[Recipient, datetime | None, str] | None:
        """The recipient, and until when (and why) its rows are held; None: not active."""
        delivery = self.delivery
        with Session(self.engine) as session:
            row = session.get(Subscriber, subscriber_id)
            if row is None or row.status != "active":
                return None
            recipient = Recipient(row.id, row.channel, row.address, row.address_hash,
                                  row.language)
            holds: list[tuple[datetime, str]] = []
            quiet = quiet_until(now, row.quiet_start_h, row.quiet_end_h, self.zone)
            if quiet is not None:
                holds.append((quiet, "quiet_hours"))
            last_sent = utc(row.last_sent_at)
            window = timedelta(seconds=delivery.digest_window_s)
            if last_sent is not None and window and now < last_sent + window:
                holds.append((last_sent + window, "digest"))
            # Nothing sent within the hour (the usual case): no rate to look up.
            sent_times = [] if last_sent is None or last_sent <= now - _HOUR else \
                session.scalars(
                    select(Notification.sent_at)
                    .where(Notification.subscriber_id == subscriber_id,
                           Notification.status == "sent", Notification.sent_at > now - _HOUR)
                    .order_by(Notification.sent_at)).all()
            if len(sent_times) >= delivery.max_per_hour:
                # Free again when enough of them are an hour old.
                oldest = utc(sent_times[len(sent_times) - delivery.max_per_hour])
                assert oldest is not None
                holds.append((oldest + _HOUR, "rate"))
        if not holds:
            return recipient, None, ""
        until, reason = max(holds)
        return recipient, until, reason

    def _drop(self, job: _Job) -> None:
        with Session(self.engine) as session, session.begin():
            session.execute(delete(Notification).where(
                Notification.id.in_([row.id for row in job.rows]),
                Notification.status == "queued"))

    def _hold(self, job: _Job, until: datetime) -> None:
        with Session(self.engine) as session, session.begin():
            session.execute(update(Notification)
                            .where(Notification.id.in_([row.id for row in job.rows]))
                            .values(next_attempt_at=until))

    def _mark_sent(self, subscriber_id: int, rows: tuple[_Row, ...]) -> None:
        self._mark_sent_many([(subscriber_id, rows)])

    def _mark_sent_many(self, sent: Sequence[tuple[int, tuple[_Row, ...]]]) -> None:
        """Mark several subscribers' sent messages in one transaction (one commit: on SQLite
        a commit per message was what limited delivery, kota bench notify)."""
        now = self._clock()
        carriers: dict[int, list[int]] = defaultdict(list)   # by attempts so far
        with Session(self.engine) as session, session.begin():
            for _subscriber_id, rows in sent:
                carrier, folded = rows[0], [row.id for row in rows[1:]]
                carriers[carrier.attempts].append(carrier.id)
                if folded:
                    session.execute(update(Notification).where(Notification.id.in_(folded))
                                    .values(status="digested", digest_id=carrier.id,
                                            sent_at=now, last_error=None))
            for attempts, ids in carriers.items():
                session.execute(update(Notification).where(Notification.id.in_(ids)).values(
                    status="sent", sent_at=now, attempts=attempts + 1, last_error=None))
            session.execute(update(Subscriber)
                            .where(Subscriber.id.in_([subscriber for subscriber, _ in sent]))
                            .values(last_sent_at=now))

    def _fail(self, channel: str, rows: tuple[_Row, ...], error: str, retryable: bool,
              retry_after_s: float | None = None) -> None:
        attempts = max(row.attempts for row in rows) + 1
        error = error[:_ERROR_CHARS]
        ids = [row.id for row in rows]
        subscriber_id = rows[0].subscriber_id
        if retryable and attempts < self.delivery.max_attempts:
            delay_s = self._delay_s(attempts, retry_after_s)
            with Session(self.engine) as session, session.begin():
                session.execute(update(Notification).where(Notification.id.in_(ids)).values(
                    attempts=attempts, last_error=error,
                    next_attempt_at=self._clock() + timedelta(seconds=delay_s)))
            self.metrics.retried.labels(channel).inc(len(ids))
            log.warning("subscriptions: %s to subscriber %d: try %d of %d failed (%s); next in "
                        "%.1f s", channel, subscriber_id, attempts, self.delivery.max_attempts,
                        error, delay_s)
            return
        with Session(self.engine) as session, session.begin():
            session.execute(update(Notification).where(Notification.id.in_(ids)).values(
                status="failed", attempts=attempts, last_error=error))
        self.metrics.failed.labels(channel).inc(len(ids))
        log.error("subscriptions: %s to subscriber %d failed %s: %s (notifications %s)",
                  channel, subscriber_id,
                  f"after {attempts} tries" if retryable else "(refused)", error,
                  ", ".join(map(str, ids)))

    def _delay_s(self, attempts: int, retry_after_s: float | None) -> float:
        if retry_after_s is not None:
            return min(max(retry_after_s, 0.0), self.delivery.backoff_max_s)
        backoff = Backoff(self.delivery.backoff_initial_s,
                          max(self.delivery.backoff_max_s, self.delivery.backoff_initial_s),
                          jitter=0.5, rng=self._rng)
        backoff.attempt = attempts - 1
        return backoff.next_delay()

    # -- housekeeping ---------------------------------------------------------------------

    async def _housekeeping(self, stop: asyncio.Event) -> None:
        last_retention = float("-inf")
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.refresh_gauges)
                if loop.time() - last_retention >= _RETENTION_EVERY_S:
                    await asyncio.to_thread(self.delete_old)
                    last_retention = loop.time()
            except Exception:
                log.exception("subscriptions: housekeeping failed; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(
                    self.delivery.poll_interval_s, 5.0))

    def refresh_gauges(self) -> None:
        with Session(self.engine) as session:
            counts = session.execute(
                select(Notification.channel, Notification.status, func.count())
                .where(Notification.status.in_(("queued", "failed")))
                .group_by(Notification.channel, Notification.status)).all()
        by_key = {(channel, status): count for channel, status, count in counts}
        for channel in SUBSCRIBER_CHANNELS:
            self.metrics.queued.labels(channel).set(by_key.get((channel, "queued"), 0))
            self.metrics.failed_rows.labels(channel).set(by_key.get((channel, "failed"), 0))

    def delete_old(self, now: datetime | None = None) -> int:
        """Delete sent, digested and failed notifications older than
        ``keep_notifications_days``; returns how many."""
        now = now or self._clock()
        cutoff = now - timedelta(days=self.delivery.keep_notifications_days)
        with Session(self.engine) as session, session.begin():
            result = session.execute(delete(Notification).where(
                Notification.status.in_(("sent", "failed", "digested")),
                Notification.created_at < cutoff))
            count = int(result.rowcount)  # type: ignore[attr-defined]
        if count:
            self.metrics.deleted.inc(count)
            log.info("subscriptions: %d notification(s) older than %g days deleted", count,
                     self.delivery.keep_notifications_days)
        return count


def _key(views: list[AlertView], subscriber_id: int, rows: tuple[_Row, ...]) -> str:
    """Idempotency-Key / Message-ID of one message: the same rows make the same key."""
    if len(views) == 1:
        return f"{views[0].identifier}-subscriber-{subscriber_id}"
    return (f"kota-{views[0].city}-digest-{subscriber_id}-{rows[0].id}-{rows[-1].id}"
            f"-{len(rows)}")
