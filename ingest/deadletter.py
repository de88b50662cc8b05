"""The dead-letter store: every message ingest refused, with its reason and raw payload.

JSON lines in part files ``deadletter-YYYYMMDD-NNN.jsonl`` (UTC day, then a number), fsynced
before the broker is acknowledged. ``kota deadletter`` lists and summarises them.

A payload is kept whole unless the message was larger than ``max_payload_bytes`` (refused as
``oversized``, or refused for its topic before its size was looked at): only those keep their
first 64 KiB. The files together never exceed ``max_bytes``: parts are small (a sixteenth of the
limit, at most 4 MiB) and, before a write would go past the limit, the oldest parts are removed
— counted in ``dropped_records`` and logged — so the newest records always stay.
"""

from __future__ import annotations

import base64
import logging
import os
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import orjson

from ingest.buffer import fsync_dir

# Reasons the store holds besides the parser's (kota.formats REASONS), written by ingest itself.
INFLUX_REFUSED = "influx_refused"
STORE_REASONS: dict[str, str] = {
    INFLUX_REFUSED: "InfluxDB refused a validated batch (HTTP 400)",
}

log = logging.getLogger("kota.ingest.deadletter")

KEEP_PAYLOAD_BYTES = 65_536  # what an oversized payload keeps; below max_payload_bytes: all
MAX_PART_BYTES = 4 * 2**20


@dataclass(slots=True)
class DeadLetter:
    received_ms: int
    topic: str
    reason: str
    detail: str
    payload: bytes
    index: int | None = None
    # Later rejections of one array payload point back instead of copying it again.
    include_payload: bool = True
    # A batch InfluxDB refused is kept whole: it was acknowledged, so this is its only copy.
    keep_whole: bool = False

    def record(self, max_payload_bytes: int | None = None,
               keep_bytes: int = KEEP_PAYLOAD_BYTES) -> dict[str, object]:
        """The JSON record. The payload is cut to ``keep_bytes`` only when it is larger than
        ``max_payload_bytes`` (None: never) and not ``keep_whole``."""
        if not self.include_payload:
            record_: dict[str, object] = {
                "received_ms": self.received_ms, "topic": self.topic, "reason": self.reason,
                "detail": self.detail, "payload_bytes": len(self.payload),
                "payload_in_previous_record": True}
            if self.index is not None:
                record_["index"] = self.index
            return record_
        data = self.payload
        if (not self.keep_whole and max_payload_bytes is not None
                and len(data) > max_payload_bytes):
            data = data[:keep_bytes]
        try:
            text: str | None = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        record: dict[str, object] = {
            "received_ms": self.received_ms, "topic": self.topic, "reason": self.reason,
            "detail": self.detail, "payload_bytes": len(self.payload),
        }
        if self.index is not None:
            record["index"] = self.index
        if text is not None:
            record["payload"] = text
        else:
            record["payload_b64"] = base64.b64encode(data).decode("ascii")
        if len(data) < len(self.payload):
            record["truncated"] = True
        return record


def _part_key(path: Path) -> tuple[str, int]:
    """Order of parts: by day, then by number as a number (``-1000`` after ``-999``)."""
    _, day, number = path.stem.split("-", 2)
    try:
        return day, int(number)
    except ValueError:
        return day, -1


def _parts(folder: Path) -> list[Path]:
    return sorted(folder.glob("deadletter-*-*.jsonl"), key=_part_key)


@dataclass(slots=True)
class _Part:
    path: Path
    size: int
    records: int | None  # None: written by an earlier process, counted when removed


class DeadLetterStore:
    """The part files of one folder, oldest first, and their sizes (kept in memory)."""

    def __init__(self, folder: Path, max_bytes: int,
                 max_payload_bytes: int | None = 262_144) -> None:
        self.folder, self.max_bytes = folder, max(1, max_bytes)
        self.max_payload_bytes = max_payload_bytes
        self.part_bytes = max(1, min(self.max_bytes // 16, MAX_PART_BYTES))
        folder.mkdir(parents=True, exist_ok=True)
        self._parts = [_Part(path, path.stat().st_size, None) for path in _parts(folder)]
        self.dropped_records = 0
        # The flush loop and the replay loop (influx_refused) append from worker threads.
        self._lock = threading.Lock()

    @property
    def size_bytes(self) -> int:
        return sum(part.size for part in self._parts)

    def append(self, letters: list[DeadLetter], day: str) -> None:
        encoded = [self._encode(letter) for letter in letters]
        with self._lock:
            self._append(encoded, day)

    def _encode(self, letter: DeadLetter) -> bytes:
        line = orjson.dumps(letter.record(self.max_payload_bytes)) + b"\n"
        if len(line) <= self.max_bytes:
            return line
        # Only when one record is larger than the whole store (a tiny max_mb, or a huge batch
        # InfluxDB refused): keep as much of the payload as fits, marked truncated.
        keep, cut = len(letter.payload), replace(letter, keep_whole=False)
        while len(line) > self.max_bytes and keep:
            keep //= 2
            line = orjson.dumps(cut.record(-1, keep)) + b"\n"
        if len(line) > self.max_bytes:  # even without its payload: keep nothing but count
            line = b""
        log.error("a %s dead letter of %d bytes is larger than deadletter.max_mb; kept its "
                  "first %d payload bytes", letter.reason, len(letter.payload), keep)
        return line

    def _append(self, encoded: list[bytes], day: str) -> None:
        # The newest records that fit: a burst larger than the store keeps its newest part.
        room, first = self.max_bytes, len(encoded)
        while first > 0 and len(encoded[first - 1]) <= room:
            first -= 1
            room -= len(encoded[first])
        skipped = first + sum(1 for line in encoded[first:] if not line)
        encoded = [line for line in encoded[first:] if line]
        # Make room first: the folder never holds more than max_bytes, not even for a moment.
        incoming = sum(map(len, encoded))
        total = self.size_bytes
        while self._parts and total + incoming > self.max_bytes:
            total -= self._remove_oldest()
        if skipped:
            self.dropped_records += skipped
            log.error("dead-letter burst larger than deadletter.max_mb: %d oldest records of "
                      "it not stored", skipped)
        # Fill the newest part of the day up to part_bytes, then start new parts.
        groups: list[tuple[_Part, list[bytes]]] = []
        current = self._parts[-1] if self._parts else None
        if current is not None and _part_key(current.path)[0] != day:
            current = None
        for line in encoded:
            if current is None or (current.size and current.size + len(line) > self.part_bytes):
                current = self._new_part(day)
                groups.append((current, []))
            elif not groups or groups[-1][0] is not current:
                groups.append((current, []))
            groups[-1][1].append(line)
            current.size += len(line)
            if current.records is not None:
                current.records += 1
        created = False
        for part, lines in groups:
            created = created or not part.path.exists()
            with part.path.open("ab") as handle:
                handle.write(b"".join(lines))
                handle.flush()
                os.fsync(handle.fileno())
        if created:
            fsync_dir(self.folder)

    def _new_part(self, day: str) -> _Part:
        numbers = [_part_key(part.path)[1] for part in self._parts
                   if _part_key(part.path)[0] == day]
        number = max(numbers, default=0) + 1
        part = _Part(self.folder / f"deadletter-{day}-{number:03d}.jsonl", 0, 0)
        self._parts.append(part)
        return part

    def _remove_oldest(self) -> int:
        part = self._parts.pop(0)
        count = part.records
        if count is None:
            with part.path.open("rb") as handle:
                count = sum(1 for line in handle if line.strip())
        part.path.unlink(missing_ok=True)
        self.dropped_records += count
        log.error("dead-letter store at deadletter.max_mb (%d bytes): removed the oldest part "
                  "%s (%d records)", self.max_bytes, part.path.name, count)
        return part.size


def read_dead_letters(folder: Path) -> list[dict[str, object]]:
    records: list[dict[str, object]] = []
    for path in _parts(folder):
        with path.open("rb") as handle:
            for line in handle:
                if line.strip():
                    records.append(orjson.loads(line))
    return records
