"""Delivery to subscribers: the ``notifications`` rows the fan-out queued, sent per channel.

Per channel (email, webhook, apprise) one loop **claims** a batch: up to ``delivery.batch`` due
rows (``queued``, ``next_attempt_at`` ≤ now) in one statement that also moves their
``next_attempt_at`` on by ``delivery.lease_s`` (the lease: a notifier killed before it marked
them leaves them due again then, and PostgreSQL's ``SKIP LOCKED`` keeps two notifiers off the
same rows). The batch's subscribers are read in one query, its alert versions decoded once.
While one batch is being sent the next is claimed; a subscriber in a batch is not claimed
again until that batch is marked. For each subscriber's rows the notifier decides, in the
subscriber's interest:

* **quiet hours** (``quiet_start_h``..``quiet_end_h`` in ``alerts.subscriptions.timezone``):
  held until they end;
* **digest**: a message went out less than ``digest_window_s`` ago: held until the window
  ends, so what arrives meanwhile goes out together;
* **rate**: ``max_per_hour`` messages went out in the last hour: held until the oldest is an
  hour old;

and an Extreme alert is never held (it also takes whatever else is due along). What goes out
together is one message: the first row is ``sent``, the others ``digested`` with its id as
``digest_id``. The messages go to the channel's sender as a batch (pooled SMTP sessions,
keep-alive HTTP clients, several at once) and their outcomes are marked every
``delivery.mark_every`` messages in one transaction. A failed send is tried again with
jittered exponential backoff and the rows are ``failed`` (with ``last_error``: the dead-letter
list operators see) after ``max_attempts`` or at once when trying again cannot help. At least
once: a crash between a send and its mark sends again with the same
``Idempotency-Key``/Message-ID.

Personal data: logs and metrics name subscriber ids only, never an address. Sent, failed and
digested rows are deleted after ``keep_notifications_days``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
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
# Batches of one channel being delivered at once: the next is claimed and read while one is
# being sent, so the database work overlaps the network's.
_BATCHES_IN_FLIGHT = 2
T = TypeVar("T")


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


def build_senders(settings: SubscriptionSettings,
                  channels: Collection[str] | None = None) -> list[Sender]:
    """One sender per subscriber channel, or per one of ``channels`` (imported here: apprise
    loads its plugins)."""
    senders: list[Sender] = []
    if channels is None or "email" in channels:
        from alerts.subscriptions.senders.email import EmailSender

        senders.append(EmailSender(settings))
    if channels is None or "webhook" in channels:
        from alerts.subscriptions.senders.webhook import WebhookSender

        senders.append(WebhookSender(settings))
    if channels is None or "apprise" in channels:
        from alerts.subscriptions.senders.apprise import AppriseSender

        senders.append(AppriseSender(settings.delivery.webhook_timeout_s,
                                     settings.delivery.workers_per_channel))
    return senders


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
    alert_id: int
    version: int
    severity: str
    attempts: int


@dataclass(frozen=True)
class _Who:
    """An active subscriber as the decision needs it."""

    recipient: Recipient
    quiet_start_h: int | None
    quiet_end_h: int | None
    last_sent_at: datetime | None
    sent_in_hour: tuple[datetime, ...]   # oldest first; read only when last_sent_at is recent


@dataclass
class _Batch:
    """Rows one claim took, grouped by subscriber, with what deciding and sending needs."""

    channel: str
    rows: dict[int, tuple[_Row, ...]]
    who: dict[int, _Who]   # active subscribers only
    views: dict[tuple[int, int], AlertView | None]   # None: the payload is not an alert view

    @property
    def count(self) -> int:
        return sum(len(rows) for rows in self.rows.values())


@dataclass
class _Plan:
    send: list[tuple[Recipient, Message, tuple[_Row, ...]]] = field(default_factory=list)
    hold: list[tuple[tuple[_Row, ...], datetime, str]] = field(default_factory=list)
    drop: list[int] = field(default_factory=list)
    bad: list[_Row] = field(default_factory=list)


_VIEWS_KEPT = 256   # decoded alert versions kept (a fan-out is one version for thousands)
_IN_CHUNK = 1000    # ids per IN (...) (SQLite allows 32,766 bound values)


def _chunks(values: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


class Notifier:
    """Send the queued notifications until ``stop`` is set: ``await run(stop)``.

    ``channels``: only these subscriber channels (``kota alerts deliver --channel``: one
    process per channel); default every channel."""

    def __init__(self, engine: Engine, settings: SubscriptionSettings,
                 senders: Sequence[Sender] | None = None, *,
                 channels: Collection[str] | None = None,
                 metrics: NotifierMetrics | None = None, rng: random.Random | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        unknown = sorted(set(channels or ()) - set(SUBSCRIBER_CHANNELS))
        if unknown:
            raise ValueError(f"unknown subscriber channel(s) {', '.join(unknown)}; known: "
                             f"{', '.join(SUBSCRIBER_CHANNELS)}")
        self.engine = engine
        self.settings = settings
        self.delivery = settings.delivery
        self.zone = ZoneInfo(settings.timezone)
        built = senders if senders is not None else build_senders(settings, channels)
        self.senders = {sender.channel: sender for sender in built
                        if channels is None or sender.channel in channels}
        self.metrics = metrics if metrics is not None else NotifierMetrics()
        self._rng = rng if rng is not None else random.Random()
        self._clock = clock or (lambda: datetime.now(UTC))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakes: list[asyncio.Event] = []
        # Decoded once per alert version, and one tuple per combination, so the senders can
        # keep what they build per message (the mail's shared part, the webhook body).
        self._views: OrderedDict[tuple[int, int], AlertView | None] = OrderedDict()
        self._views_lock = threading.Lock()   # claims of several channels run in threads
        self._view_sets: OrderedDict[tuple[tuple[int, int], ...], tuple[AlertView, ...]] = \
            OrderedDict()
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
        """One delivery loop per channel, and housekeeping."""
        channels = [channel for channel in SUBSCRIBER_CHANNELS if channel in self.senders]
        events = [asyncio.Event() for _ in channels]
        self._loop, self._wakes = asyncio.get_running_loop(), events
        tasks = [asyncio.create_task(self._housekeeping(stop))]
        tasks += [asyncio.create_task(self._channel_loop(channel, wake, stop))
                  for channel, wake in zip(channels, events, strict=True)]
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

    async def _channel_loop(self, channel: str, wake: asyncio.Event,
                            stop: asyncio.Event) -> None:
        """Claim a batch, deliver it; the next batch is claimed while one is being sent."""
        busy: set[int] = set()   # subscribers in a batch being delivered
        running: set[asyncio.Task[None]] = set()

        def finished(task: asyncio.Task[None], *, subscribers: frozenset[int]) -> None:
            running.discard(task)
            busy.difference_update(subscribers)
            wake.set()   # their later rows may be due now
            if not task.cancelled() and task.exception() is not None:
                log.error("subscriptions: a %s batch failed unexpectedly; its rows are taken "
                          "again after delivery.lease_s", channel, exc_info=task.exception())

        try:
            while not stop.is_set():
                if len(running) >= _BATCHES_IN_FLIGHT:
                    await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                    continue
                try:
                    batch = await asyncio.to_thread(self._claim, channel, frozenset(busy))
                except Exception:
                    log.exception("subscriptions: claiming due %s notifications failed; trying "
                                  "again in %g s", channel, self.delivery.poll_interval_s)
                    batch = None
                if batch is None:
                    await self._sleep(wake, stop, self.delivery.poll_interval_s)
                    continue
                subscribers = frozenset(batch.rows)
                busy |= subscribers
                task = asyncio.create_task(self._deliver(batch))
                running.add(task)
                task.add_done_callback(functools.partial(finished, subscribers=subscribers))
        finally:
            if running:
                await asyncio.wait(set(running))

    async def deliver_due(self, channel: str) -> int:
        """Claim and deliver one batch of ``channel``'s due rows (tests, and a caller without
        the loops); returns how many rows were taken."""
        batch = await asyncio.to_thread(self._claim, channel, frozenset())
        if batch is None:
            return 0
        await self._deliver(batch)
        return batch.count

    # -- a batch: claim, decide, send, mark -------------------------------------------------

    def _claim(self, channel: str, busy: frozenset[int]) -> _Batch | None:
        """Take up to ``delivery.batch`` due rows in one statement, leased for
        ``delivery.lease_s`` (a notifier killed before marking them leaves them to be taken
        again then), and read their subscribers and alert versions."""
        now = self._clock()
        due = (select(Notification.id)
               .where(Notification.channel == channel, Notification.status == "queued",
                      Notification.next_attempt_at <= now)
               .order_by(Notification.next_attempt_at, Notification.id)
               .limit(self.delivery.batch)
               .with_for_update(skip_locked=True))   # PostgreSQL: two notifiers never share
        if busy:
            due = due.where(Notification.subscriber_id.not_in(busy))
        claim = (update(Notification).where(Notification.id.in_(due.scalar_subquery()))
                 .values(next_attempt_at=now + timedelta(seconds=self.delivery.lease_s))
                 .returning(Notification.id, Notification.subscriber_id, Notification.alert_id,
                            Notification.version, Notification.severity,
                            Notification.attempts))
        with self.engine.begin() as connection:
            taken = [_Row(*row) for row in connection.execute(claim)]
        if not taken:
            return None
        grouped: dict[int, list[_Row]] = defaultdict(list)
        for row in sorted(taken, key=lambda row: row.id):
            grouped[row.subscriber_id].append(row)
        with Session(self.engine) as session:
            who = self._read_subscribers(session, sorted(grouped), now)
            views = self._read_views(session, taken)
        return _Batch(channel, {sid: tuple(rows) for sid, rows in grouped.items()}, who, views)

    def _read_subscribers(self, session: Session, ids: Sequence[int], now: datetime
                          ) -> dict[int, _Who]:
        found: dict[int, Any] = {}
        for chunk in _chunks(ids, _IN_CHUNK):
            for row in session.execute(
                    select(Subscriber.id, Subscriber.channel, Subscriber.address,
                           Subscriber.address_hash, Subscriber.language,
                           Subscriber.quiet_start_h, Subscriber.quiet_end_h,
                           Subscriber.last_sent_at)
                    .where(Subscriber.id.in_(chunk), Subscriber.status == "active")):
                found[row.id] = row
        # Nothing sent within the hour (the usual case): no rate to look up.
        recent = [sid for sid, row in found.items()
                  if (utc(row.last_sent_at) or now - _HOUR) > now - _HOUR]
        sent_times: dict[int, list[datetime]] = defaultdict(list)
        for chunk in _chunks(recent, _IN_CHUNK):
            for sid, sent_at in session.execute(
                    select(Notification.subscriber_id, Notification.sent_at)
                    .where(Notification.subscriber_id.in_(chunk),
                           Notification.status == "sent", Notification.sent_at > now - _HOUR)
                    .order_by(Notification.sent_at)):
                sent_times[sid].append(utc(sent_at) or now)
        return {sid: _Who(Recipient(row.id, row.channel, row.address, row.address_hash,
                                    row.language),
                          row.quiet_start_h, row.quiet_end_h, utc(row.last_sent_at),
                          tuple(sent_times.get(sid, ())))
                for sid, row in found.items()}

    def _read_views(self, session: Session, rows: Sequence[_Row]
                    ) -> dict[tuple[int, int], AlertView | None]:
        """The batch's alert versions, each decoded once per notifier (every row of a version
        carries the same payload: the fan-out's)."""
        wanted: dict[tuple[int, int], AlertView | None] = {}
        one_row: dict[tuple[int, int], int] = {}
        with self._views_lock:
            for row in rows:
                key = (row.alert_id, row.version)
                if key in self._views:
                    wanted[key] = self._views[key]
                else:
                    one_row.setdefault(key, row.id)
        for chunk in _chunks(list(one_row.values()), _IN_CHUNK):
            for alert_id, version, payload in session.execute(
                    select(Notification.alert_id, Notification.version, Notification.payload)
                    .where(Notification.id.in_(chunk))):
                try:
                    view: AlertView | None = alert_view_from_json(payload)
                except (KeyError, TypeError, ValueError):
                    view = None
                wanted[(alert_id, version)] = view
        with self._views_lock:
            self._views.update((key, wanted[key]) for key in one_row if key in wanted)
            while len(self._views) > _VIEWS_KEPT:
                self._views.popitem(last=False)
        return wanted

    def _hold(self, who: _Who, now: datetime) -> tuple[datetime, str] | None:
        """Until when (and why) a subscriber's rows are held; None: send now."""
        delivery = self.delivery
        holds: list[tuple[datetime, str]] = []
        quiet = quiet_until(now, who.quiet_start_h, who.quiet_end_h, self.zone)
        if quiet is not None:
            holds.append((quiet, "quiet_hours"))
        window = timedelta(seconds=delivery.digest_window_s)
        if who.last_sent_at is not None and window and now < who.last_sent_at + window:
            holds.append((who.last_sent_at + window, "digest"))
        sent = who.sent_in_hour
        if len(sent) >= delivery.max_per_hour:
            # Free again when enough of them are an hour old.
            holds.append((sent[len(sent) - delivery.max_per_hour] + _HOUR, "rate"))
        return max(holds) if holds else None

    def _view_set(self, batch: _Batch, keys: tuple[tuple[int, int], ...]
                  ) -> tuple[AlertView, ...]:
        views = self._view_sets.get(keys)
        if views is None or any(view is not batch.views[key]
                                for view, key in zip(views, keys, strict=True)):
            views = tuple(batch.views[key] for key in keys)  # type: ignore[misc]
            self._view_sets[keys] = views
            while len(self._view_sets) > _VIEWS_KEPT:
                self._view_sets.popitem(last=False)
        return views

    def _plan(self, batch: _Batch, now: datetime) -> _Plan:
        """For each subscriber, in their interest: drop, hold, or one message."""
        plan = _Plan()
        for subscriber_id, rows in batch.rows.items():
            who = batch.who.get(subscriber_id)
            if who is None:   # unsubscribed (or deleted) since the fan-out: nothing to send
                plan.drop += [row.id for row in rows]
                continue
            hold = self._hold(who, now)
            if hold is not None and not any(row.severity == "Extreme" for row in rows):
                plan.hold.append((rows, *hold))
                continue
            good = tuple(row for row in rows
                         if batch.views.get((row.alert_id, row.version)) is not None)
            plan.bad += [row for row in rows if row not in good]
            if not good:
                continue
            views = self._view_set(batch, tuple((row.alert_id, row.version) for row in good))
            message = Message(views, _key(views, subscriber_id, good))
            plan.send.append((who.recipient, message, good))
        return plan

    async def _deliver(self, batch: _Batch) -> None:
        channel = batch.channel
        plan = self._plan(batch, self._clock())
        if plan.drop or plan.hold or plan.bad:
            await asyncio.to_thread(self._settle, channel, plan)
        sender = self.senders[channel]
        marking: asyncio.Future[None] | None = None
        try:
            # Marked every mark_every messages while the next ones go out: a crash sends
            # again at most what was sent and not yet marked.
            for part in _chunks(plan.send, self.delivery.mark_every):
                try:
                    outcomes = await sender.send_batch([(r, m) for r, m, _ in part])
                except Exception as exc:   # a bug in a sender: logged, retried like an outage
                    log.exception("subscriptions: the %s sender raised", channel)
                    outcomes = [DeliveryError(type(exc).__name__)] * len(part)
                if marking is not None:
                    await marking
                marking = asyncio.ensure_future(
                    asyncio.to_thread(self._record, channel, part, outcomes))
        finally:
            if marking is not None:
                await marking

    def _settle(self, channel: str, plan: _Plan) -> None:
        """Drop, hold and refuse what will not be sent now, in one transaction."""
        by_until: dict[datetime, list[int]] = defaultdict(list)
        for rows, until, _reason in plan.hold:
            by_until[until] += [row.id for row in rows]
        with Session(self.engine) as session, session.begin():
            for chunk in _chunks(plan.drop, _IN_CHUNK):
                session.execute(delete(Notification).where(Notification.id.in_(chunk),
                                                           Notification.status == "queued"))
            for until, ids in by_until.items():
                for chunk in _chunks(ids, _IN_CHUNK):
                    session.execute(update(Notification).where(Notification.id.in_(chunk))
                                    .values(next_attempt_at=until))
            for row in plan.bad:
                session.execute(update(Notification).where(Notification.id == row.id).values(
                    status="failed", attempts=row.attempts + 1,
                    last_error="payload is not an alert view"))
        for rows, _until, reason in plan.hold:
            self.metrics.held.labels(channel, reason).inc(len(rows))
        if plan.bad:
            self.metrics.failed.labels(channel).inc(len(plan.bad))
            log.error("subscriptions: %s notifications %s failed (refused): payload is not an "
                      "alert view", channel, ", ".join(str(row.id) for row in plan.bad))

    def _record(self, channel: str,
                part: Sequence[tuple[Recipient, Message, tuple[_Row, ...]]],
                outcomes: Sequence[DeliveryError | None]) -> None:
        """Mark what was sent and what failed, in one transaction; then metrics and logs."""
        now = self._clock()
        sent = [(recipient, rows) for (recipient, _m, rows), outcome
                in zip(part, outcomes, strict=True) if outcome is None]
        failed = [(recipient, rows, outcome) for (recipient, _m, rows), outcome
                  in zip(part, outcomes, strict=True) if outcome is not None]
        retries: list[tuple[int, tuple[_Row, ...], int, str, float]] = []
        given_up: list[tuple[int, tuple[_Row, ...], int, str, bool]] = []
        with Session(self.engine) as session, session.begin():
            if sent:
                self._mark_sent(session, [(r.id, rows) for r, rows in sent], now)
            for recipient, rows, error in failed:
                attempts = max(row.attempts for row in rows) + 1
                text = str(error)[:_ERROR_CHARS]
                ids = [row.id for row in rows]
                if error.retryable and attempts < self.delivery.max_attempts:
                    delay_s = self._delay_s(attempts, error.retry_after_s)
                    session.execute(update(Notification).where(Notification.id.in_(ids))
                                    .values(attempts=attempts, last_error=text,
                                            next_attempt_at=now + timedelta(seconds=delay_s)))
                    retries.append((recipient.id, rows, attempts, text, delay_s))
                else:
                    session.execute(update(Notification).where(Notification.id.in_(ids))
                                    .values(status="failed", attempts=attempts,
                                            last_error=text))
                    given_up.append((recipient.id, rows, attempts, text, error.retryable))
        metrics = self.metrics
        if sent:
            notifications = sum(len(rows) for _r, rows in sent)
            metrics.sent.labels(channel).inc(len(sent))
            metrics.notifications_sent.labels(channel).inc(notifications)
            if notifications > len(sent):
                metrics.digested.labels(channel).inc(notifications - len(sent))
            if log.isEnabledFor(logging.DEBUG):
                for (recipient, message, _rows), outcome in zip(part, outcomes, strict=True):
                    if outcome is None:
                        log.debug("subscriptions: %s to subscriber %d (address %s…): %s",
                                  channel, recipient.id, recipient.address_hash[:12],
                                  " ".join(view.identifier for view in message.views))
            log.info("subscriptions: %s: %d message(s) sent (%d notification(s), subscribers "
                     "%s)", channel, len(sent), notifications,
                     _id_ranges(sorted(recipient.id for recipient, _rows in sent)))
        for subscriber_id, rows, attempts, text, delay_s in retries:
            metrics.retried.labels(channel).inc(len(rows))
            log.warning("subscriptions: %s to subscriber %d: try %d of %d failed (%s); next in "
                        "%.1f s", channel, subscriber_id, attempts, self.delivery.max_attempts,
                        text, delay_s)
        for subscriber_id, rows, attempts, text, retryable in given_up:
            metrics.failed.labels(channel).inc(len(rows))
            log.error("subscriptions: %s to subscriber %d failed %s: %s (notifications %s)",
                      channel, subscriber_id,
                      f"after {attempts} tries" if retryable else "(refused)", text,
                      ", ".join(str(row.id) for row in rows))

    def _mark_sent(self, session: Session, sent: Sequence[tuple[int, tuple[_Row, ...]]],
                   now: datetime) -> None:
        """Sent messages: the first row ``sent``, the rest ``digested`` into it."""
        carriers: dict[int, list[int]] = defaultdict(list)   # by attempts so far
        for _subscriber_id, rows in sent:
            carrier, folded = rows[0], [row.id for row in rows[1:]]
            carriers[carrier.attempts].append(carrier.id)
            if folded:
                session.execute(update(Notification).where(Notification.id.in_(folded))
                                .values(status="digested", digest_id=carrier.id,
                                        sent_at=now, last_error=None))
        for attempts, ids in carriers.items():
            for chunk in _chunks(ids, _IN_CHUNK):
                session.execute(update(Notification).where(Notification.id.in_(chunk)).values(
                    status="sent", sent_at=now, attempts=attempts + 1, last_error=None))
        for chunk in _chunks([subscriber for subscriber, _ in sent], _IN_CHUNK):
            session.execute(update(Subscriber).where(Subscriber.id.in_(chunk))
                            .values(last_sent_at=now))

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


def _id_ranges(ids: Sequence[int]) -> str:
    """``3-7, 9``: a batch's subscriber ids, short."""
    parts: list[str] = []
    start = previous = None
    for value in [*ids, None]:
        if value is not None and previous is not None and value == previous + 1:
            previous = value
            continue
        if start is not None:
            parts.append(str(start) if start == previous else f"{start}-{previous}")
        start = previous = value
    return ", ".join(parts)


def _key(views: Sequence[AlertView], subscriber_id: int, rows: tuple[_Row, ...]) -> str:
    """Idempotency-Key / Message-ID of one message: the same rows make the same key."""
    if len(views) == 1:
        return f"{views[0].identifier}-subscriber-{subscriber_id}"
    return (f"kota-{views[0].city}-digest-{subscriber_id}-{rows[0].id}-{rows[-1].id}"
            f"-{len(rows)}")
