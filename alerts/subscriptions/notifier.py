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
list operators see) after ``max_attempts`` or at once when trying again cannot help.

At least once, and as seldom twice as that allows: each delivered message is first noted in
this process's local journal (``delivery.journal_dir``, alerts/subscriptions/journal.py, one
``os.write`` in the sending thread). A process killed between a send and its mark leaves its
journal unlocked; each channel loop adopts such dead journals before its first claim, and
every few seconds after (well inside ``lease_s``): their rows still ``queued`` are settled as
sent in one transaction before their lease ends. What goes out twice is then only what was in
flight at the kill (at most ``smtp.pool_size`` / ``workers_per_channel`` per channel), with
the same ``Idempotency-Key``/Message-ID. Without a journal: up to about ``mark_every``.

Personal data: logs and metrics name subscriber ids only, never an address. Sent, failed and
digested rows are deleted after ``keep_notifications_days``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy import Engine, bindparam, delete, func, or_, select, update
from sqlalchemy.orm import Session

from alerts.model import AlertView, alert_view_from_json
from alerts.subscriptions.journal import Orphan, SentJournal
from alerts.subscriptions.senders import DeliveryError, Message, OnSent, Recipient, Sender
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
# Dead journals are looked for this often (at most), so a sibling's are settled before the
# lease on its rows ends.
_ADOPT_EVERY_S = 5.0
# A claim's lease end as journaled (milliseconds) against the database's (microseconds).
_LEASE_SLACK = timedelta(milliseconds=2)
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
    process per channel); default every channel. With ``delivery.journal_dir`` set, each
    channel's journal is opened here: ValueError naming the setting and the folder when it
    cannot be (call :meth:`aclose` when done)."""

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
        self.journals = self._open_journals()

    def _open_journals(self) -> dict[str, SentJournal]:
        directory = self.delivery.journal_dir
        if directory is None or not self.senders:
            return {}
        journals: dict[str, SentJournal] = {}
        try:
            for channel in self.senders:
                journals[channel] = SentJournal(directory, channel,
                                                scope=_database_scope(self.engine),
                                                claim_window_s=self.delivery.lease_s)
        except OSError as exc:
            for journal in journals.values():
                journal.close()
            raise ValueError(f"alerts.subscriptions.delivery.journal_dir {directory}: "
                             f"{exc.strerror or exc}") from None
        return journals

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
        if self.journals:
            tasks.append(asyncio.create_task(self._adopting(stop)))
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
        for journal in self.journals.values():
            try:
                journal.close()
            except OSError:
                log.exception("subscriptions: closing the %s journal", journal.channel)

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

        # A dead process's delivered rows are settled before anything is claimed.
        await asyncio.to_thread(self._adopt_logged, channel)
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
        lease_until = now + timedelta(seconds=self.delivery.lease_s)
        claim = (update(Notification).where(Notification.id.in_(due.scalar_subquery()))
                 .values(next_attempt_at=lease_until)
                 .returning(Notification.id, Notification.subscriber_id, Notification.alert_id,
                            Notification.version, Notification.severity,
                            Notification.attempts))
        with self.engine.begin() as connection:
            taken = [_Row(*row) for row in connection.execute(claim)]
        if not taken:
            return None
        journal = self.journals.get(channel)
        if journal is not None:
            journal.record_claim(lease_until.timestamp(), [row.id for row in taken])
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
        journal = self.journals.get(channel)
        marking: asyncio.Future[None] | None = None
        try:
            # Marked every mark_every messages while the next ones go out: a crash sends
            # again at most what was sent and not yet marked, and with a journal only what
            # was in flight.
            for part in _chunks(plan.send, self.delivery.mark_every):
                delivered = [False] * len(part)
                tokens: list[int | None] = [None] * len(part)   # the journal's
                try:
                    outcomes = await sender.send_batch(
                        [(r, m) for r, m, _ in part],
                        self._on_sent(journal, part, delivered, tokens))
                except Exception as exc:   # a bug in a sender: logged, retried like an outage
                    log.exception("subscriptions: the %s sender raised", channel)
                    # What it reported delivered before it raised was delivered.
                    outcomes = [None if done else DeliveryError(type(exc).__name__)
                                for done in delivered]
                if marking is not None:
                    await marking
                marking = asyncio.ensure_future(
                    asyncio.to_thread(self._record, channel, part, outcomes, tokens))
        finally:
            if marking is not None:
                await marking

    @staticmethod
    def _on_sent(journal: SentJournal | None,
                 part: Sequence[tuple[Recipient, Message, tuple[_Row, ...]]],
                 delivered: list[bool], tokens: list[int | None]) -> OnSent:
        """The sender's callback for one part, run in the sending thread: an item delivered,
        journaled first (``tokens``: what the journal returned)."""
        if journal is None:
            def note(index: int) -> None:
                delivered[index] = True
            return note

        def journal_it(index: int) -> None:
            tokens[index] = journal.record([row.id for row in part[index][2]])
            delivered[index] = True
        return journal_it

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
                outcomes: Sequence[DeliveryError | None],
                tokens: Sequence[int | None] = ()) -> None:
        """Mark what was sent and what failed, in one transaction; then tell the journal
        (``tokens``: what it returned for the part's items), metrics and logs."""
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
        journal = self.journals.get(channel)
        if journal is not None:
            journal.marked_many(tokens)
        metrics = self.metrics
        if sent:
            notifications = sum(len(rows) for _r, rows in sent)
            self._count_sent(channel, len(sent), notifications - len(sent))
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

    def _count_sent(self, channel: str, messages: int, digested: int) -> None:
        """The sent metrics: ``messages`` delivered, carrying ``digested`` more notifications."""
        if messages:
            self.metrics.sent.labels(channel).inc(messages)
        if messages or digested:
            self.metrics.notifications_sent.labels(channel).inc(messages + digested)
        if digested:
            self.metrics.digested.labels(channel).inc(digested)

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

    # -- dead journals ----------------------------------------------------------------------

    def adopt(self, channel: str) -> int:
        """Settle what this channel's dead processes journaled as delivered: rows still
        ``queued`` become ``sent`` (the carrier) and ``digested``, one transaction per dead
        journal, which is then deleted; rows in any other status are left as they are, so
        settling twice changes nothing. Returns how many rows were settled."""
        journal = self.journals.get(channel)
        if journal is None:
            return 0
        orphans = journal.adopt_orphans()
        settled = 0
        try:
            while orphans:
                settled += self._settle_orphan(channel, orphans[0])
                journal.forget([orphans.pop(0)])
        finally:
            journal.release(orphans)   # what could not be settled: adopted again later
        return settled

    def _adopt_logged(self, channel: str) -> None:
        try:
            self.adopt(channel)
        except Exception:
            log.exception("subscriptions: settling the dead %s journals failed; trying again "
                          "in %g s", channel, self._adopt_every_s)

    @property
    def _adopt_every_s(self) -> float:
        return min(_ADOPT_EVERY_S, self.delivery.lease_s / 3)

    async def _adopting(self, stop: asyncio.Event) -> None:
        """A sibling process that dies: its journal is settled before its leases end."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._adopt_every_s)
            if stop.is_set():
                return
            for channel in self.journals:
                await asyncio.to_thread(self._adopt_logged, channel)

    def _settle_orphan(self, channel: str, orphan: Orphan) -> int:
        """One dead journal's rows still ``queued``, settled as sent at the journaled times
        in one transaction; returns how many."""
        carriers: dict[int, datetime] = {}
        folded: dict[int, tuple[int, datetime]] = {}   # digested row -> (carrier, sent at)
        for line in orphan.lines:
            sent_at = datetime.fromtimestamp(line.sent_at_s, UTC)
            carrier, *rest = line.row_ids
            carriers[carrier] = sent_at
            folded.update((row_id, (carrier, sent_at)) for row_id in rest)
        queued_carriers: dict[int, int] = {}   # row -> subscriber
        queued_folded: list[int] = []
        with self.engine.begin() as connection:
            for chunk in _chunks(list(carriers), _IN_CHUNK):
                for row_id, subscriber_id in connection.execute(
                        select(Notification.id, Notification.subscriber_id)
                        .where(Notification.id.in_(chunk), Notification.status == "queued")
                        .with_for_update()):
                    queued_carriers[row_id] = subscriber_id
            for chunk in _chunks(list(folded), _IN_CHUNK):
                queued_folded += connection.scalars(
                    select(Notification.id)
                    .where(Notification.id.in_(chunk), Notification.status == "queued")
                    .with_for_update())
            still_queued = Notification.status == "queued"
            if queued_carriers:
                connection.execute(
                    update(Notification)
                    .where(Notification.id == bindparam("row_id"), still_queued)
                    .values(status="sent", sent_at=bindparam("at"), last_error=None,
                            attempts=Notification.attempts + 1),
                    [{"row_id": row_id, "at": carriers[row_id]} for row_id in queued_carriers])
            if queued_folded:
                connection.execute(
                    update(Notification)
                    .where(Notification.id == bindparam("row_id"), still_queued)
                    .values(status="digested", digest_id=bindparam("carrier"),
                            sent_at=bindparam("at"), last_error=None),
                    [{"row_id": row_id, "carrier": folded[row_id][0], "at": folded[row_id][1]}
                     for row_id in queued_folded])
            released = self._release_claims(connection, orphan, set(carriers) | set(folded))
            latest: dict[int, datetime] = {}
            for row_id, subscriber_id in queued_carriers.items():
                latest[subscriber_id] = max(carriers[row_id],
                                            latest.get(subscriber_id, carriers[row_id]))
            if latest:
                connection.execute(
                    update(Subscriber)
                    .where(Subscriber.id == bindparam("subscriber"),
                           or_(Subscriber.last_sent_at.is_(None),
                               Subscriber.last_sent_at < bindparam("at")))
                    .values(last_sent_at=bindparam("at")),
                    [{"subscriber": subscriber_id, "at": at}
                     for subscriber_id, at in latest.items()])
        messages, digested = len(queued_carriers), len(queued_folded)
        self._count_sent(channel, messages, digested)
        log.info("subscriptions: %s: %d message(s) (%d notification(s)) settled as sent from "
                 "the dead journal %s (%d journaled; the others were marked already); %d "
                 "claimed and not sent made due now instead of at the lease's end", channel,
                 messages, messages + digested, orphan.name, len(carriers) + len(folded),
                 released)
        return messages + digested

    def _release_claims(self, connection: Any, orphan: Orphan, sent: set[int]) -> int:
        """Rows the dead process claimed and did not journal as sent, still queued under its
        lease (``next_attempt_at`` within _LEASE_SLACK of the journaled lease end: a row
        another process took since, or held, keeps its own time), made due now."""
        now = self._clock()
        released = 0
        for claim in orphan.claims:
            lease_until = datetime.fromtimestamp(claim.sent_at_s, UTC)
            if lease_until <= now:
                continue   # ended: due already
            unsent = [row_id for row_id in claim.row_ids if row_id not in sent]
            for chunk in _chunks(unsent, _IN_CHUNK):
                result = connection.execute(
                    update(Notification)
                    .where(Notification.id.in_(chunk), Notification.status == "queued",
                           Notification.next_attempt_at.between(
                               lease_until - _LEASE_SLACK, lease_until + _LEASE_SLACK))
                    .values(next_attempt_at=now))
                released += int(result.rowcount)
        return released

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


def _database_scope(engine: Engine) -> str:
    """What a journal's row ids belong to: the database's URL without its password (a SQLite
    file by its absolute path)."""
    url = engine.url
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        url = url.set(database=os.path.abspath(url.database or ""))
    return url.render_as_string(hide_password=True)


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
