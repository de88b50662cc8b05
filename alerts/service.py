"""``kota alerts``: evaluate the rules continuously, keep every alert's state in the database and
deliver through the outbox.

Three inputs, one evaluation path (:meth:`AlertService._evaluate`):

* the MQTT stream (its own persistent session): each message is decoded and validated like
  ingest does, handed to the rules that watch its kind, and **acknowledged only after** the
  state changes it caused are committed; a crash before that and the broker sends it again;
* a poll of the indicator service's outputs in InfluxDB (ISPU, rain) every ``poll_interval_s``;
* a tick every ``tick_interval_s`` for what time alone decides (pending durations, repeats,
  devices that fell silent, silences that ended).

The database is the truth: at start the active alerts are read back, so a pending duration
continues where it was and nothing fires twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from alerts.channels import Channel
from alerts.channels.registry import build_channels
from alerts.engine import AlertState, Decision, decide
from alerts.model import AlertView
from alerts.outbox import Dispatcher, OutboxMetrics
from alerts.outputs import ALERT_EVENTS, alert_event_line
from alerts.rules import Finding, Reading, RuleContext, RuleKind, RulesError, load_rules
from alerts.settings import AlertsSettings
from alerts.state import AlertStore, RuleInfo
from alerts.subscriptions.fanout import FanoutChannel
from alerts.subscriptions.notifier import Notifier, NotifierMetrics
from kota.aio import sleep_or_stop
from kota.formats import DEFAULT_FORMAT, FORMATS, Refusal
from kota.influx import InfluxClient, InfluxUnavailable
from kota.kinds import KINDS
from kota.kinds.validation import KindRules, validate
from kota.mqtt import Message, Subscriber
from kota.payload import ParseRules
from kota.registry import Registry, RegistryWatcher
from store.db import ensure_schema, make_engine

__all__ = ["ALERT_EVENTS", "AlertService", "Rules"]

log = logging.getLogger("kota.alerts")


class Rules:
    """The loaded rules and the file they came from; reloaded when the file changes, keeping
    the last good set when the new one is wrong."""

    def __init__(self, path: Path, context: RuleContext) -> None:
        self.path, self.context = path, context
        self.rules: list[RuleKind[Any]] = load_rules(path, context)
        self._signature = self._stat()
        self.reloads = 0

    def _stat(self) -> tuple[int, int] | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def check(self) -> bool:
        signature = self._stat()
        if signature is None or signature == self._signature:
            return False
        self._signature = signature
        try:
            fresh = load_rules(self.path, self.context)
        except RulesError as exc:
            log.error("rules not reloaded, keeping the last good %d rules: %s",
                      len(self.rules), exc)
            return False
        self.rules = fresh
        self.reloads += 1
        log.info("rules %s reloaded: %d rules", self.path, len(fresh))
        return True

    def by_id(self) -> dict[str, RuleKind[Any]]:
        return {rule.id: rule for rule in self.rules}


@dataclass
class _Change:
    rule: RuleKind[Any]
    scope: str
    decision: Decision
    finding: Finding | None
    now: datetime


class _Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.readings = Counter("kota_alerts_readings",
                                "Stream messages evaluated (decoded, or only heard for kinds "
                                "whose values no rule reads)",
                                registry=registry)
        self.refused = Counter("kota_alerts_readings_refused",
                               "Stream messages not evaluated (not decodable or invalid)",
                               registry=registry)
        self.events = Counter("kota_alerts_events", "Alert lifecycle events",
                              ["rule", "kind"], registry=registry)
        self.active = Gauge("kota_alerts_active", "Active alerts", ["status"],
                            registry=registry)
        self.commit_failures = Counter("kota_alerts_commit_failures",
                                       "State changes the database refused (retried)",
                                       registry=registry)
        self.polls_failed = Counter("kota_alerts_polls_failed",
                                    "Polls of InfluxDB that failed", registry=registry)


class AlertService:
    def __init__(self, settings: AlertsSettings, *, engine: Engine | None = None,
                 channels: Sequence[Channel[Any]] | None = None) -> None:
        self.settings = settings
        self.registry = (Registry.load(settings.registry_file) if settings.registry_file
                         else Registry())
        self.context = RuleContext(self.registry, settings.city)
        self.rules = Rules(settings.rules_file, self.context)
        self.engine = engine or make_engine(settings.database.url)
        ensure_schema(self.engine, settings.database.migrate_on_start)
        self.channels = list(channels) if channels is not None else build_channels(
            settings.channels)
        self.metrics_registry = CollectorRegistry()
        # Subscribers: one outbox channel fans each public version out, the notifier delivers
        # (here, or in `kota alerts deliver` processes when delivery.in_process is false).
        self.notifier: Notifier | None = None
        if settings.subscriptions.enabled and settings.subscriptions.delivery.in_process:
            self.notifier = Notifier(self.engine, settings.subscriptions,
                                     metrics=NotifierMetrics(self.metrics_registry))
            self.channels.append(FanoutChannel(self.engine, on_queued=self.notifier.wake))
        elif settings.subscriptions.enabled:
            self.channels.append(FanoutChannel(self.engine))
        self.store = AlertStore(self.engine, self.channels)
        self.metrics = _Metrics(self.metrics_registry)
        self.dispatcher = Dispatcher(self.engine, self.channels, settings.outbox,
                                     metrics=OutboxMetrics(self.metrics_registry))
        self.states: dict[tuple[str, str], AlertState] = self.store.active()
        self._restore_rules()
        self.parse_rules = ParseRules(max_future_s=10 * 365 * 86400, min_timestamp_s=0)
        self.decoder = FORMATS[DEFAULT_FORMAT](self.parse_rules)
        self.kind_rules = {name: KindRules.of(kind, unknown_fields="ignore",
                                              max_future_s=10 * 365 * 86400, min_timestamp_s=0)
                           for name, kind in KINDS.items()}
        self.influx = InfluxClient(settings.influx)
        self._events: list[str] = []
        self._queue: asyncio.Queue[tuple[int, list[Message]]] = asyncio.Queue()
        mqtt = settings.mqtt
        self.subscriber = Subscriber(
            host=mqtt.host, port=mqtt.port, client_id=mqtt.client_id, topics=list(mqtt.topics),
            on_messages=lambda generation, messages: self._queue.put_nowait(
                (generation, messages)),
            username=mqtt.username, password=mqtt.resolved_password(), tls=mqtt.ssl_context(),
            keepalive_s=mqtt.keepalive_s, session_expiry_s=mqtt.session_expiry_s,
            receive_maximum=mqtt.receive_maximum)
        self.last_commit_at: float | None = None
        self._kinds_for: list[RuleKind[Any]] | None = None
        self._kinds: tuple[frozenset[str], list[RuleKind[Any]]] = (frozenset(), [])
        # One evaluation at a time: the stream, the poll and the tick share the memory.
        self._lock = asyncio.Lock()

    def _restore_rules(self) -> None:
        """Give rule kinds their memory back from the stored alerts (hysteresis per gauge)."""
        rules = self.rules.by_id()
        for (rule_id, scope), state in self.states.items():
            rule = rules.get(rule_id)
            if rule is not None and state.status != "pending":
                rule.restore(scope, state.grade)

    # -- running -------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        settings = self.settings
        if settings.metrics_port:
            start_http_server(settings.metrics_port, addr=settings.metrics_host,
                              registry=self.metrics_registry)
            log.info("metrics on http://%s:%d/metrics", settings.metrics_host,
                     settings.metrics_port)
        log.info("alerts: %d rules from %s, %d channels (%s), %d active alerts, database %s",
                 len(self.rules.rules), self.rules.path, len(self.channels),
                 ", ".join(c.name for c in self.channels) or "none",
                 len(self.states), self.engine.url.render_as_string(hide_password=True))
        tasks = [asyncio.create_task(coroutine) for coroutine in (
            self.subscriber.run(stop), self._consume(stop), self._poll_loop(stop),
            self._tick_loop(stop), self.dispatcher.run(stop), self._reload_loop(stop))]
        if settings.registry_file:
            watcher = RegistryWatcher(settings.registry_file, self.registry,
                                      settings.registry_reload_s)
            tasks.append(asyncio.create_task(watcher.run(stop)))
        if self.notifier is not None:
            tasks.append(asyncio.create_task(self.notifier.run(stop)))
        try:
            await stop.wait()
        finally:
            self._queue.put_nowait((-1, []))
            await asyncio.wait(tasks, timeout=10)
            for task in tasks:
                task.cancel()
            await self._flush_events()
            await self.dispatcher.aclose()
            if self.notifier is not None:
                await self.notifier.aclose()
            await self.influx.close()

    async def _reload_loop(self, stop: asyncio.Event) -> None:
        interval = self.settings.rules_reload_s
        if interval <= 0:
            return
        while not await sleep_or_stop(stop, interval):
            if self.rules.check():
                self._restore_rules()

    # -- the stream ----------------------------------------------------------------------------
    async def _consume(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            generation, messages = await self._queue.get()
            if generation < 0:
                return
            # Everything that arrived meanwhile is one batch: one commit, one acknowledgement.
            batch = [(generation, messages)]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            async with self._lock:
                changes: list[_Change] = []
                for _generation, burst in batch:
                    for message in burst:
                        changes.extend(self._on_message(message))
                    # Let the dispatcher and the broker connection run between bursts: a long
                    # batch must not hold back the delivery of what was already decided.
                    await asyncio.sleep(0)
                if not await self._commit(changes, stop):
                    continue
            for gen, burst in batch:
                self.subscriber.ack(gen, [message[0] for message in burst])

    def _payload_kinds(self) -> tuple[frozenset[str], list[RuleKind[Any]]]:
        """The kinds some rule reads the payload of, and the rules that only need to hear
        from every device ("*"), for the current rules (they may be reloaded)."""
        rules = self.rules.rules
        if self._kinds_for is not rules:
            self._kinds_for = rules
            self._kinds = (frozenset(kind for rule in rules for kind in rule.reading_kinds
                                     if kind != "*"),
                           [rule for rule in rules if "*" in rule.reading_kinds])
        return self._kinds

    def _on_message(self, message: Message) -> list[_Change]:
        _packet_id, topic, payload = message[0], message[1], message[2]
        received = datetime.now(UTC)
        payload_kinds, hearing = self._payload_kinds()
        parts = topic.split("/")
        if len(parts) == 4 and parts[2] not in payload_kinds:
            # No rule reads this kind's values (air, noise, ... at thousands a second): that
            # the device spoke is all that matters, and decoding it would cost the most.
            self.metrics.readings.inc()
            changes: list[_Change] = []
            for rule in hearing:
                for finding in rule.heard(parts[1], parts[2], parts[3], received):
                    change = self._evaluate(rule, finding, finding.at)
                    if change is not None:
                        changes.append(change)
            return changes
        decoded = self.decoder.decode(topic, payload)
        if isinstance(decoded, Refusal):
            self.metrics.refused.inc()
            return []
        source = decoded.source
        kind_rules = self.kind_rules.get(source.kind)
        if kind_rules is None:
            return []
        device = self.registry.get(source.device_id)
        params = device.params if device else {}
        changes = []
        received_ms = int(received.timestamp() * 1000)
        for reading in decoded.readings:
            if isinstance(reading, Refusal):
                self.metrics.refused.inc()
                continue
            valid = validate(kind_rules, reading, params, received_ms)
            if isinstance(valid, Refusal):
                self.metrics.refused.inc()
                continue
            values, tags = valid
            ts_ms = reading[1]
            device_at = (datetime.fromtimestamp(ts_ms / 1000, UTC) if ts_ms is not None
                         else None)
            at = device_at if device_at is not None and abs(
                (device_at - received).total_seconds()) <= self.settings.max_clock_skew_s \
                else received
            self.metrics.readings.inc()
            item = Reading(city=source.city, kind=source.kind, device_id=source.device_id,
                           fields={**values, **(tags or {})}, at=at, received_at=received,
                           device_at=device_at, device=device)
            for rule in self.rules.rules:
                if source.kind in rule.reading_kinds or "*" in rule.reading_kinds:
                    for finding in rule.on_reading(item):
                        change = self._evaluate(rule, finding, finding.at)
                        if change is not None:
                            changes.append(change)
        return changes

    # -- polls and ticks -----------------------------------------------------------------------
    async def _poll_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.poll_once(stop)
            if await sleep_or_stop(stop, self.settings.poll_interval_s):
                return

    async def poll_once(self, stop: asyncio.Event | None = None) -> int:
        """Run every polling rule's queries once; returns the number of changes committed."""
        now = datetime.now(UTC)
        answered: list[tuple[RuleKind[Any], list[Any]]] = []
        for rule in self.rules.rules:
            queries = rule.queries(now)
            if not queries:
                continue
            try:
                answered.append((rule, [await self.influx.query(query) for query in queries]))
            except InfluxUnavailable as exc:
                self.metrics.polls_failed.inc()
                log.warning("rule %s: InfluxDB did not answer (%s); trying again in %g s",
                            rule.id, exc, self.settings.poll_interval_s)
        async with self._lock:
            changes: list[_Change] = []
            for rule, answers in answered:
                for finding in rule.findings(answers, now):
                    change = self._evaluate(rule, finding, now)
                    if change is not None:
                        changes.append(change)
            committed = await self._commit(changes, stop)
        return len(changes) if committed else 0

    async def _tick_loop(self, stop: asyncio.Event) -> None:
        while not await sleep_or_stop(stop, self.settings.tick_interval_s):
            await self.tick_once(stop)

    async def tick_once(self, stop: asyncio.Event | None = None,
                        now: datetime | None = None) -> int:
        now = now or datetime.now(UTC)
        async with self._lock:
            committed, count = await self._tick_locked(now, stop)
        try:
            queued = await asyncio.to_thread(self.store.catch_up, now)
        except SQLAlchemyError as exc:
            log.warning("could not look for alerts held by silences: %s", exc)
            queued = 0
        if queued:
            self.dispatcher.wake()
        await self._flush_events()
        self._refresh_gauges()
        return count if committed else 0

    async def _tick_locked(self, now: datetime, stop: asyncio.Event | None) -> tuple[bool, int]:
        try:
            # Operators acknowledge and resolve through the API: the database is the truth.
            self.states = await asyncio.to_thread(self.store.active)
        except SQLAlchemyError as exc:
            log.warning("could not read the active alerts (%s); using the last known", exc)
        changes: list[_Change] = []
        rules = self.rules.by_id()
        for rule in rules.values():
            for finding in rule.on_tick(now):
                change = self._evaluate(rule, finding, now)
                if change is not None:
                    changes.append(change)
        touched = {(c.rule.id, c.scope) for c in changes}
        for key, state in list(self.states.items()):
            found = rules.get(key[0])
            if found is None or key in touched:
                continue
            decision = decide(found.timing(), state, None, now)
            if decision.state != state:
                changes.append(self._remember(_Change(found, key[1], decision, None, now)))
        return await self._commit(changes, stop), len(changes)

    # -- deciding and committing ---------------------------------------------------------------
    def _evaluate(self, rule: RuleKind[Any], finding: Finding,
                  now: datetime) -> _Change | None:
        key = (rule.id, finding.scope)
        state = self.states.get(key)
        decision = decide(rule.timing(), state, finding.observation(), now)
        if decision.state == state and decision.event is None:
            return None
        if decision.state is None and state is None:
            return None
        finding = replace(finding, texts=rule.texts(finding))
        return self._remember(_Change(rule, finding.scope, decision, finding, now))

    def _remember(self, change: _Change) -> _Change:
        key = (change.rule.id, change.scope)
        state = change.decision.state
        if state is None or state.status == "resolved":
            self.states.pop(key, None)
        else:
            self.states[key] = state
        return change

    async def _commit(self, changes: list[_Change], stop: asyncio.Event | None) -> bool:
        """Commit every change (in order); True when all are committed. On a database failure
        the memory is read back from the database and the caller does not acknowledge: the
        broker sends the messages again."""
        if not changes:
            return True
        attempt = 0
        while True:
            try:
                notified = await asyncio.to_thread(self._apply_all, changes)
                break
            except SQLAlchemyError as exc:
                attempt += 1
                self.metrics.commit_failures.inc()
                log.error("could not commit %d alert change(s) to %s (%s); retrying, the "
                          "readings stay unacknowledged", len(changes),
                          self.engine.url.render_as_string(hide_password=True),
                          str(exc).splitlines()[0])
                if stop is None or attempt >= 3:
                    self.states = await asyncio.to_thread(self.store.active)
                    self.subscriber.reconnect()  # the broker redelivers what was not acked
                    return False
                if await sleep_or_stop(stop, min(30.0, 2.0 ** attempt)):
                    return False
        self.last_commit_at = time.monotonic()
        for change in changes:
            if change.decision.event:
                self.metrics.events.labels(change.rule.id, change.decision.event).inc()
                log.info("alert %s %s: %s %s", change.rule.id, change.scope,
                         change.decision.event,
                         change.finding.level if change.finding else "")
        for view in notified:
            self._record_event(view)
        if notified:
            self.dispatcher.wake()
        return True

    def _apply_all(self, changes: list[_Change]) -> list[AlertView]:
        views = []
        for change in changes:
            rule = change.rule
            info = RuleInfo(rule.id, rule.hazard, rule.audience, rule.settings.exercise)
            view = self.store.apply(info, change.scope, change.decision, change.finding,
                                    change.now)
            if view is not None:
                views.append(view)
        return views

    # -- InfluxDB annotations ------------------------------------------------------------------
    def _record_event(self, view: AlertView) -> None:
        if not self.settings.influx_events:
            return
        self._events.append(alert_event_line(view))

    async def _flush_events(self) -> None:
        if not self._events:
            return
        body, self._events = "\n".join(self._events).encode(), []
        try:
            await self.influx.write(body)
        except InfluxUnavailable as exc:
            # Annotations only: the database keeps the history. Keep them for the next try,
            # bounded so an InfluxDB outage cannot grow memory.
            lines = body.decode().splitlines()
            self._events = (lines + self._events)[-10_000:]
            log.warning("alert events not written to InfluxDB (%s); %d kept for the next try",
                        exc, len(self._events))

    def _refresh_gauges(self) -> None:
        counts: dict[str, int] = {"pending": 0, "firing": 0, "acknowledged": 0}
        for state in self.states.values():
            counts[state.status] = counts.get(state.status, 0) + 1
        for status, count in counts.items():
            self.metrics.active.labels(status).set(count)

