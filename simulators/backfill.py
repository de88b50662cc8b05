"""Backfill: write a simulated past window straight into InfluxDB, as ingest would have stored it.

``backfill(simulate, ingest, end_s=..., duration_s=...)`` generates the messages the simulator
would have published for ``[end_s - duration_s, end_s)`` (the same seed-deterministic city
stream as ``kota simulate``), runs each through ingest's own parser (``kota.payload`` with
ingest's parse rules and registry, received at its simulated time) and writes the lines in
large batches over InfluxDB's ``/write``. What ingest would have refused goes to ingest's
dead-letter store and, as ingest does, to ``kota_deadletter`` points. A day of the demo city
takes seconds instead of the 24 minutes of a replay at 60x; ``kota demo`` uses it so the
first page a newcomer opens is current.

No MQTT is involved: this is for filling an empty demo or test database, not for replacing
``kota ingest`` on real devices.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ingest.deadletter import DeadLetter, DeadLetterStore
from ingest.service import DEADLETTER_EXCERPT_CHARS, DEADLETTER_MEASUREMENT, _safe_tag
from ingest.settings import IngestSettings
from kota.influx import InfluxClient, InfluxUnavailable
from kota.lineproto import build_line, series_key
from kota.payload import MessageParser
from kota.registry import Registry
from simulators.generator import SimMessage
from simulators.runner import build_stream
from simulators.settings import SimulateSettings

__all__ = ["BackfillSummary", "backfill", "backfill_lines", "deadletter_line"]

DEFAULT_BATCH_POINTS = 20_000
_WRITE_ATTEMPTS = 5  # a missing database is created on the first 404, then the write is retried


@dataclass
class BackfillSummary:
    start_s: float
    end_s: float
    messages: int = 0
    points: int = 0
    deadletter_points: int = 0
    batches: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    points_by_kind: Counter[str] = field(default_factory=Counter)
    elapsed_s: float = 0.0

    def line(self) -> str:
        kinds = ", ".join(f"{kind} {count}" for kind, count
                          in sorted(self.points_by_kind.items()))
        rejected = ", ".join(f"{reason} {count}" for reason, count
                             in sorted(self.rejected.items()))
        return (f"backfilled {_iso(self.start_s)} .. {_iso(self.end_s)}: {self.messages} "
                f"messages -> {self.points} points [{kinds or 'none'}] in {self.batches} "
                f"batches, {self.elapsed_s:.1f} s; dead letters {sum(self.rejected.values())}"
                f" [{rejected or 'none'}]")


def _iso(time_s: float) -> str:
    return datetime.fromtimestamp(time_s, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def deadletter_line(letter: DeadLetter, count: int, instance: str,
                    last_ms: dict[str, int]) -> str:
    """The ``kota_deadletter`` point ingest writes for a refused message (same tags, fields)."""
    parts = letter.topic.split("/")
    kind = parts[2] if len(parts) == 4 and parts[2] else "unknown"
    device = parts[3] if len(parts) == 4 and parts[3] else "unknown"
    tags = {"reason": letter.reason, "kind": _safe_tag(kind), "device": _safe_tag(device),
            "instance": instance}
    series = series_key(DEADLETTER_MEASUREMENT, tags.items())
    timestamp = max(letter.received_ms, last_ms.get(series, 0) + 1)
    last_ms[series] = timestamp
    excerpt = letter.payload[:DEADLETTER_EXCERPT_CHARS].decode("utf-8", "replace")
    return build_line(series, {"count": float(count), "detail": letter.detail[:500],
                               "payload": excerpt}, timestamp)


def _window_settings(simulate: SimulateSettings, start_s: float,
                     duration_s: float) -> SimulateSettings:
    return simulate.model_copy(update={
        "start": datetime.fromtimestamp(start_s, UTC), "duration_s": duration_s,
        "speed": 0.0, "live_s": 0.0, "max_messages": None})


def backfill_lines(simulate: SimulateSettings, ingest: IngestSettings, start_s: float,
                   duration_s: float, summary: BackfillSummary,
                   letters: list[DeadLetter] | None = None) -> Iterator[str]:
    """Line protocol for the window, message by message, exactly as ingest would write it.

    Refused messages are counted in ``summary.rejected`` and, when ``letters`` is given,
    appended there (received at their simulated time) with their ``kota_deadletter`` line.
    """
    registry = Registry.load(ingest.registry_file) if ingest.registry_file else None
    parser = MessageParser(registry, ingest.parse_rules())
    stream, _window = build_stream(_window_settings(simulate, start_s, duration_s))
    last_ms: dict[str, int] = {}
    message: SimMessage
    for message in stream:
        received_ms = int(message.sim_time_s * 1000)
        parsed = parser.parse(message.topic, message.payload, received_ms)
        summary.messages += 1
        if parsed.lines:
            summary.points += len(parsed.lines)
            summary.points_by_kind[message.kind] += len(parsed.lines)
            yield from parsed.lines
        # As ingest: every rejection is a dead letter; one kota_deadletter point per message
        # and reason, its count the rejected elements.
        grouped: dict[str, list[DeadLetter]] = {}
        for number, rejection in enumerate(parsed.rejections):
            summary.rejected[rejection.reason] += 1
            letter = DeadLetter(received_ms, message.topic, rejection.reason, rejection.detail,
                                message.payload, rejection.index, include_payload=number == 0)
            grouped.setdefault(rejection.reason, []).append(letter)
        if letters is None:
            continue
        for group in grouped.values():
            letters.extend(group)
            if ingest.deadletter.to_influx:
                summary.deadletter_points += 1
                yield deadletter_line(group[0], len(group), ingest.instance, last_ms)


def _batches(lines: Iterator[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for line in lines:
        batch.append(line)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


async def _write(client: InfluxClient, body: bytes) -> None:
    for attempt in range(_WRITE_ATTEMPTS):
        try:
            await client.write(body)
            return
        except InfluxUnavailable:
            if attempt == _WRITE_ATTEMPTS - 1:
                raise
            await asyncio.sleep(0.2 * (attempt + 1))


def backfill(simulate: SimulateSettings, ingest: IngestSettings, *, end_s: float | None = None,
             duration_s: float = 86_400.0, batch_points: int = DEFAULT_BATCH_POINTS,
             deadletters: bool = True,
             on_progress: Callable[[str], None] | None = None) -> BackfillSummary:
    """Generate ``[end_s - duration_s, end_s)`` and write it to ``ingest.influx`` directly.

    Raises InfluxUnavailable / InfluxDataError when InfluxDB cannot take the points.
    """
    end_s = time.time() if end_s is None else end_s
    start_s = end_s - duration_s
    summary = BackfillSummary(start_s, end_s)
    letters: list[DeadLetter] | None = [] if deadletters else None
    started = time.perf_counter()

    async def write_all() -> None:
        client = InfluxClient(ingest.influx)
        try:
            lines = backfill_lines(simulate, ingest, start_s, duration_s, summary, letters)
            batches = _batches(lines, batch_points)
            pending: asyncio.Task[None] | None = None
            while True:
                # Generate the next batch in a thread while the previous one is written.
                batch = await asyncio.to_thread(next, batches, None)
                if pending is not None:
                    await pending
                if batch is None:
                    break
                body = "\n".join(batch).encode("utf-8")
                pending = asyncio.create_task(_write(client, body))
                summary.batches += 1
                if on_progress is not None:
                    on_progress(f"backfill: {summary.points} points "
                                f"({time.perf_counter() - started:.1f} s)")
        finally:
            await client.close()

    asyncio.run(write_all())
    if letters:
        store = DeadLetterStore(ingest.deadletter.dir, int(ingest.deadletter.max_mb * 2**20))
        by_day: dict[str, list[DeadLetter]] = {}
        for letter in letters:
            by_day.setdefault(time.strftime("%Y%m%d", time.gmtime(letter.received_ms / 1000)),
                              []).append(letter)
        for day, group in sorted(by_day.items()):
            store.append(group, day)
    summary.elapsed_s = time.perf_counter() - started
    return summary
