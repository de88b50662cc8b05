"""``kota ingest``: MQTT in, validated line protocol out, acknowledged only once stored.

Flow: the subscriber hands bursts of messages to ``_on_messages``; the flush loop takes up to
``batch_max_points`` every ``batch_max_wait_ms``, parses them (kota.payload), stores the dead
letters (fsync), then stores the points (InfluxDB, or the disk buffer while InfluxDB is away or
while older batches wait there), and only then sends the PUBACKs. A crash at any point before the
PUBACK leaves the message with the broker, which redelivers it to our persistent session; a
redelivered message overwrites its own point (same series and timestamp), so nothing doubles.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from ingest.buffer import DiskBuffer
from ingest.deadletter import INFLUX_REFUSED, DeadLetter, DeadLetterStore
from ingest.metrics import IngestCounters, serve_metrics
from ingest.settings import IngestSettings
from kota.aio import sleep_or_stop
from kota.backoff import Backoff
from kota.influx import InfluxClient, InfluxDataError, InfluxUnavailable
from kota.lineproto import build_line, series_key
from kota.mqtt import Message, Subscriber
from kota.payload import MessageParser
from kota.registry import Registry, RegistryWatcher

log = logging.getLogger("kota.ingest")

Burst = tuple[int, int, list[Message]]  # (connection generation, received ms, messages)

DEADLETTER_MEASUREMENT = "kota_deadletter"
STATS_MEASUREMENT = "kota_ingest"
DEADLETTER_EXCERPT_CHARS = 512
# Stop reading from the broker while this much payload waits (besides four batches' count).
PAUSE_ABOVE_BYTES = 64 * 2**20


@dataclass
class _Batch:
    oldest_ms: int
    lines: list[str] = field(default_factory=list)
    letters: list[DeadLetter] = field(default_factory=list)
    acks: dict[int, list[int]] = field(default_factory=dict)  # generation -> packet ids


class IngestService:
    def __init__(self, settings: IngestSettings, registry: Registry | None = None) -> None:
        self.settings = settings
        if registry is None and settings.registry_file is not None:
            registry = Registry.load(settings.registry_file)
        self.parser = MessageParser(registry, settings.parse_rules())
        # `kota devices` rewrites the file; a changed one is reloaded here, no restart.
        self.registry_watcher = (
            RegistryWatcher(settings.registry_file, self.parser.registry,
                            settings.registry_reload_s, self._registry_changed)
            if settings.registry_file is not None else None)
        self.counters = IngestCounters()
        self.influx = InfluxClient(settings.influx)
        self.buffer = DiskBuffer(settings.buffer.dir, int(settings.buffer.max_mb * 2**20),
                                 drop_oldest=settings.buffer.when_full == "drop_oldest")
        self.deadletters = DeadLetterStore(settings.deadletter.dir,
                                           int(settings.deadletter.max_mb * 2**20),
                                           settings.max_payload_bytes)
        mqtt = settings.mqtt
        self.subscriber = Subscriber(
            host=mqtt.host, port=mqtt.port, client_id=mqtt.client_id,
            topics=mqtt.subscriptions(), on_messages=self._on_messages,
            username=mqtt.username, password=mqtt.resolved_password(), tls=mqtt.ssl_context(),
            keepalive_s=mqtt.keepalive_s, session_expiry_s=mqtt.session_expiry_s,
            receive_maximum=mqtt.receive_maximum, on_state=self._on_mqtt_state)
        self._pending: list[Burst] = []
        self._pending_count = 0
        self._pending_bytes = 0
        self._stopping = False
        # Read from the broker only while at most a few batches wait: bounded memory.
        self._pause_above = settings.batch_max_points * 4
        self._wakeup = asyncio.Event()
        self._replay_wakeup = asyncio.Event()
        self._last_deadletter_ms: dict[str, int] = {}
        self.counters.buffer_bytes = self.buffer.size_bytes

    # -- receive -----------------------------------------------------------------------------
    def _on_messages(self, generation: int, messages: list[Message]) -> None:
        was_empty = not self._pending_count
        self._pending.append((generation, time.time_ns() // 1_000_000, messages))
        self._pending_count += len(messages)
        self._pending_bytes += sum(len(payload) for _, _, payload in messages)
        self.counters.received += len(messages)
        self.counters.pending = self._pending_count
        # Wake the flush loop to start the batch timer, and again when a batch is full.
        if was_empty or self._pending_count >= self.settings.batch_max_points:
            self._wakeup.set()
        if ((self._pending_count >= self._pause_above
             or self._pending_bytes >= PAUSE_ABOVE_BYTES) and not self.subscriber.paused):
            self.subscriber.pause()

    def _registry_changed(self, registry: Registry) -> None:
        # The parser caches each topic's tags from the registry: a fresh parser forgets them
        # (the registry object itself was updated in place). Parsing runs on this loop, so the
        # swap falls between two batches.
        self.parser = MessageParser(registry, self.settings.parse_rules())

    def _on_mqtt_state(self, connected: bool) -> None:
        self.counters.mqtt_connected = connected
        if not connected and self._pending:
            # Packet ids of a closed connection cannot be acknowledged; the broker will
            # redeliver these messages to the resumed session, so drop our copies.
            dropped = sum(len(messages) for _, _, messages in self._pending)
            self._pending, self._pending_count, self._pending_bytes = [], 0, 0
            self.counters.pending = 0
            log.info("connection lost with %d messages not yet stored; the broker redelivers "
                     "them", dropped)

    # -- main --------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set; then store what was received, acknowledge, disconnect."""
        serve_metrics(self.counters, self.settings.metrics_host, self.settings.metrics_port)
        if self.settings.metrics_port:
            log.info("metrics on http://%s:%d/metrics", self.settings.metrics_host,
                     self.settings.metrics_port)
        if self.settings.influx.version == 1 and self.settings.influx.create_database:
            try:
                await self.influx.create_database()
            except (InfluxUnavailable, InfluxDataError) as exc:
                log.warning("could not make sure database %r exists (%s); will retry on write",
                            self.settings.influx.database, exc)
        if len(self.buffer):
            log.info("disk buffer holds %d batches from an earlier run; replaying them first",
                     len(self.buffer))
            self._replay_wakeup.set()
        disconnect = asyncio.Event()
        tasks = [asyncio.create_task(self.subscriber.run(disconnect), name="mqtt"),
                 asyncio.create_task(self._replay_loop(disconnect), name="replay"),
                 asyncio.create_task(self._stats_loop(disconnect), name="stats")]
        if self.registry_watcher is not None:
            tasks.append(asyncio.create_task(self.registry_watcher.run(disconnect),
                                             name="registry"))
        try:
            await self._flush_loop(stop)
        finally:
            disconnect.set()
            self._replay_wakeup.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.influx.close()
            log.info("ingest stopped: received %d, written %d, rejected %d, buffered %d "
                     "(%d still on disk), replayed %d, dropped %d", self.counters.received,
                     self.counters.written, self.counters.rejected, self.counters.buffered,
                     self.buffer.lines, self.counters.replayed, self.counters.dropped)

    async def _flush_loop(self, stop: asyncio.Event) -> None:
        # Two stages overlap: while batch N is being stored (InfluxDB works on the other core),
        # batch N+1 is parsed here. Commits run one at a time, in order.
        wait_s = self.settings.batch_max_wait_ms / 1000
        in_flight: asyncio.Task[None] | None = None
        try:
            while True:
                if stop.is_set() and not self._stopping:
                    # Store what has arrived, but stop reading: a resumed backlog is left with
                    # the broker instead of being drained before we may exit.
                    self._stopping = True
                    self.subscriber.pause()
                if not self._pending_count:
                    self._wakeup.clear()
                    if stop.is_set():
                        return
                    stop_wait = asyncio.ensure_future(stop.wait())
                    wake_wait = asyncio.ensure_future(self._wakeup.wait())
                    await asyncio.wait({stop_wait, wake_wait},
                                       return_when=asyncio.FIRST_COMPLETED)
                    stop_wait.cancel()
                    wake_wait.cancel()
                    continue
                if self._pending_count < self.settings.batch_max_points and not stop.is_set():
                    # Let the batch fill up, at most batch_max_wait_ms after its first message.
                    first_ms = self._pending[0][1]
                    remaining = wait_s - (time.time_ns() // 1_000_000 - first_ms) / 1000
                    if remaining > 0:
                        self._wakeup.clear()
                        await sleep_or_stop(self._wakeup, remaining)
                batch = self._prepare()
                if batch is None:
                    continue  # the connection dropped meanwhile; the broker redelivers
                if in_flight is not None:
                    await self._finish(in_flight)
                in_flight = asyncio.create_task(self._commit(batch, stop))
        finally:
            if in_flight is not None:
                await self._finish(in_flight)

    async def _finish(self, commit: asyncio.Task[None]) -> None:
        try:
            await commit
        except Exception:
            # A bug must not stop the consumer nor lose the batch: it was not acknowledged,
            # so reconnecting makes the broker deliver it again.
            log.exception("unexpected error while storing a batch; reconnecting so the "
                          "broker redelivers it. Please report this with the log above")
            self.subscriber.reconnect()

    def _take_batch(self) -> list[Burst]:
        taken: list[Burst] = []
        count = 0
        limit = self.settings.batch_max_points
        while self._pending and count < limit:
            generation, received_ms, messages = self._pending[0]
            room = limit - count
            if len(messages) <= room:
                taken.append(self._pending.pop(0))
                count += len(messages)
            else:
                taken.append((generation, received_ms, messages[:room]))
                self._pending[0] = (generation, received_ms, messages[room:])
                count += room
        self._pending_count -= count
        self._pending_bytes -= sum(len(payload) for _, _, messages in taken
                                   for _, _, payload in messages)
        self.counters.pending = self._pending_count
        if (self.subscriber.paused and not self._stopping
                and self._pending_count < self._pause_above // 2
                and self._pending_bytes < PAUSE_ABOVE_BYTES // 2):
            self.subscriber.resume()
        return taken

    def _prepare(self) -> _Batch | None:
        """Take up to batch_max_points messages and parse them (no I/O)."""
        bursts = self._take_batch()
        if not bursts:
            return None
        batch = _Batch(oldest_ms=bursts[0][1])
        lines, letters, acks = batch.lines, batch.letters, batch.acks
        parse = self.parser.parse
        for generation, received_ms, messages in bursts:
            ack_list = acks.setdefault(generation, [])
            for packet_id, topic, payload in messages:
                parsed = parse(topic, payload, received_ms)
                if parsed.lines:
                    lines.extend(parsed.lines)
                for number, rejection in enumerate(parsed.rejections):
                    letters.append(DeadLetter(received_ms, topic, rejection.reason,
                                              rejection.detail, payload, rejection.index,
                                              include_payload=number == 0))
                ack_list.append(packet_id)
        return batch

    async def _commit(self, batch: _Batch, stop: asyncio.Event) -> None:
        """Store dead letters and points durably, then acknowledge the batch's messages."""
        if batch.letters:
            await self._store_deadletters(batch.letters, batch.lines)
        if batch.lines and not await self._store(batch.lines, stop):
            return  # stopping while nothing would take the batch: not acknowledged
        for generation, packet_ids in batch.acks.items():
            self.subscriber.ack(generation, packet_ids)
        self.counters.lag_s = time.time() - batch.oldest_ms / 1000

    async def _store_deadletters(self, letters: list[DeadLetter], lines: list[str]) -> None:
        day = time.strftime("%Y%m%d", time.gmtime(letters[0].received_ms / 1000))
        await asyncio.to_thread(self.deadletters.append, letters, day)
        self.counters.deadletters_dropped = self.deadletters.dropped_records
        # One kota_deadletter point per message and reason (count = rejected elements), so a
        # 1,000-element array of garbage is one point, not a thousand.
        grouped: dict[tuple[str, int, int, str], list[DeadLetter]] = {}
        for letter in letters:
            self.counters.reject(letter.reason)
            key = (letter.topic, letter.received_ms, id(letter.payload), letter.reason)
            grouped.setdefault(key, []).append(letter)
        if self.settings.deadletter.to_influx:
            for group in grouped.values():
                lines.append(self._deadletter_line(group[0], len(group)))
        log.debug("dead-lettered %d messages", len(letters))

    def _deadletter_line(self, letter: DeadLetter, count: int = 1) -> str:
        parts = letter.topic.split("/")
        kind = parts[2] if len(parts) == 4 and parts[2] else "unknown"
        device = parts[3] if len(parts) == 4 and parts[3] else "unknown"
        tags = {"reason": letter.reason, "kind": _safe_tag(kind), "device": _safe_tag(device),
                "instance": self.settings.instance}
        series = series_key(DEADLETTER_MEASUREMENT, tags.items())
        # Distinct timestamps per series so that two letters in one millisecond both count.
        timestamp = max(letter.received_ms, self._last_deadletter_ms.get(series, 0) + 1)
        self._last_deadletter_ms[series] = timestamp
        if len(self._last_deadletter_ms) > 10_000:
            self._last_deadletter_ms.clear()
        excerpt = letter.payload[:DEADLETTER_EXCERPT_CHARS].decode("utf-8", "replace")
        return build_line(series, {"count": float(count), "detail": letter.detail[:500],
                                   "payload": excerpt}, timestamp)

    async def _store(self, lines: list[str], stop: asyncio.Event) -> bool:
        """Store a batch durably; retry until it is stored or we are stopping."""
        body = "\n".join(lines).encode("utf-8")
        backoff = Backoff(0.2, 5.0)
        while True:
            if not len(self.buffer) and self.counters.influx_up:
                try:
                    await self._write(body, len(lines))
                    self.counters.written += len(lines)
                    self._set_data_lag(lines)
                    return True
                except InfluxUnavailable as exc:
                    self.counters.influx_up = False
                    log.warning("%s; buffering on disk in %s and retrying in the background",
                                exc, self.settings.buffer.dir)
            stored = await asyncio.to_thread(self.buffer.append, body, len(lines))
            self.counters.dropped = self.buffer.dropped_lines
            self.counters.buffer_bytes = self.buffer.size_bytes
            if stored:
                self.counters.buffered += len(lines)
                self._replay_wakeup.set()
                return True
            log.error("disk buffer full (buffer.max_mb=%g) and when_full=backpressure: holding "
                      "acknowledgements so the broker keeps the messages",
                      self.settings.buffer.max_mb)
            if stop.is_set():
                return False
            await sleep_or_stop(stop, backoff.next_delay())

    async def _write(self, body: bytes, count: int) -> None:
        try:
            await self.influx.write(body)
        except InfluxDataError as exc:
            # Validated points are never refused, unless something else wrote a field with
            # another type. Keep the refused batch as a dead letter; retrying cannot help.
            self.counters.influx_refused += count
            log.error("InfluxDB refused points: %s. The batch is kept in the dead-letter store",
                      exc)
            letter = DeadLetter(time.time_ns() // 1_000_000, "", INFLUX_REFUSED, str(exc),
                                body, keep_whole=True)
            await asyncio.to_thread(self.deadletters.append, [letter],
                                    time.strftime("%Y%m%d", time.gmtime()))
            self.counters.deadletters_dropped = self.deadletters.dropped_records

    # -- background --------------------------------------------------------------------------
    async def _replay_loop(self, stop: asyncio.Event) -> None:
        backoff = Backoff(0.5, 10.0)
        while not stop.is_set():
            batch = self.buffer.oldest()
            if batch is None:
                self._replay_wakeup.clear()
                await self._replay_wakeup.wait()
                continue
            try:
                body = await asyncio.to_thread(batch.read)
            except FileNotFoundError:
                continue  # dropped meanwhile (buffer.when_full: drop_oldest), counted there
            try:
                await self._write(body, batch.lines)
            except InfluxUnavailable as exc:
                self.counters.influx_up = False
                delay = backoff.next_delay()
                log.info("InfluxDB still unavailable (%s); %d batches wait on disk; next try in "
                         "%.1f s", exc, len(self.buffer), delay)
                await sleep_or_stop(stop, delay)
                continue
            except Exception:
                # The replay task must outlive any error, or nothing would be written directly
                # again: log, wait, try the same batch again.
                delay = backoff.next_delay()
                log.exception("unexpected error while replaying %s; next try in %.1f s",
                              batch.path.name, delay)
                await sleep_or_stop(stop, delay)
                continue
            backoff.reset()
            self._set_data_lag(body.decode("utf-8", "replace").split("\n"))
            await asyncio.to_thread(self.buffer.remove, batch)
            self.counters.replayed += batch.lines
            self.counters.written += batch.lines
            self.counters.buffer_bytes = self.buffer.size_bytes
            if not len(self.buffer):
                self.counters.influx_up = True
                log.info("disk buffer replayed; writing to InfluxDB directly again")

    def _set_data_lag(self, lines: list[str]) -> None:
        """``kota_ingest_data_lag_seconds``: now minus the newest reading timestamp of the
        batch just written to InfluxDB (dead-letter points, stamped on receipt, not counted)."""
        newest = _newest_ms(lines)
        if newest is not None:
            self.counters.data_lag_s = max(0.0, time.time() - newest / 1000)

    async def _stats_loop(self, stop: asyncio.Event) -> None:
        series = series_key(STATS_MEASUREMENT, [("instance", self.settings.instance)])
        while not stop.is_set():
            if await sleep_or_stop(stop, self.settings.stats_interval_s):
                return
            if not self.counters.influx_up:
                continue
            line = build_line(series, self.counters.fields(), time.time_ns() // 1_000_000)
            try:
                await self.influx.write(line.encode())
            except (InfluxUnavailable, InfluxDataError) as exc:
                log.debug("could not write ingest statistics: %s", exc)


def _safe_tag(text: str) -> str:
    cleaned = "".join(ch if ch.isprintable() and ch != "\\" else "_" for ch in text)
    return cleaned[:64] or "unknown"


def _newest_ms(lines: list[str]) -> int | None:
    """The largest millisecond timestamp (last word) of the readings' lines, or None."""
    newest: int | None = None
    for line in lines:
        if line.startswith(DEADLETTER_MEASUREMENT):
            continue
        try:
            stamp = int(line[line.rindex(" ") + 1:])
        except ValueError:  # no timestamp, or a piece of a string field split at a newline
            continue
        if newest is None or stamp > newest:
            newest = stamp
    return newest
