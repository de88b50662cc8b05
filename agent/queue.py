"""Store-and-forward: every reading is written here before anything tries to send it.

One SQLite file in WAL mode with ``synchronous=FULL``: a reading is on disk when ``put`` returns,
so a kill or a power cut at any later moment cannot lose it. ``put`` assigns the reading's
``seq`` (per device, persisted, so it keeps counting across restarts) and stores the finished
JSON payload, ``ts`` included: whatever is resent later is byte-for-byte what was first sent,
and the platform (which identifies a point by device and ``ts``) stores it once.

Rows are deleted only by ``delete(ids)``, which the publisher calls when the broker has
acknowledged the message carrying them (QoS 1 PUBACK). The queue is bounded by
``max_readings``: when full, the oldest rows are dropped (the newest data is the most useful to
a city operations room) and counted in ``dropped``, which the heartbeat reports.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["QueuedRow", "ReadingQueue"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS seq (device TEXT PRIMARY KEY, next INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class QueuedRow:
    id: int
    topic: str
    payload: str


class ReadingQueue:
    """A bounded, durable FIFO of finished MQTT payloads. Safe to share between threads."""

    def __init__(self, path: str | Path, max_readings: int = 200_000) -> None:
        if max_readings < 1:
            raise ValueError("max_readings must be at least 1")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_readings = max_readings
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._depth = int(self._db.execute("SELECT count(*) FROM outbox").fetchone()[0])
        self.dropped = 0  # since this process started (the heartbeat's `dropped`)

    # -- writing ---------------------------------------------------------------------------
    def put(self, topic: str, device: str, fields: Mapping[str, object], ts: float) -> int:
        """Queue one reading; returns its ``seq``. Durable when this returns."""
        with self._lock:
            cursor = self._db.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                row = cursor.execute("SELECT next FROM seq WHERE device = ?", (device,)).fetchone()
                seq = int(row[0]) if row else 0
                payload = json.dumps({"ts": round(ts, 3), "seq": seq, **fields},
                                     separators=(",", ":"), ensure_ascii=False)
                cursor.execute("INSERT INTO outbox (topic, payload) VALUES (?, ?)",
                               (topic, payload))
                cursor.execute("INSERT INTO seq (device, next) VALUES (?, ?) ON CONFLICT(device) "
                               "DO UPDATE SET next = excluded.next", (device, seq + 1))
                overflow = self._depth + 1 - self.max_readings
                if overflow > 0:
                    cursor.execute("DELETE FROM outbox WHERE id IN (SELECT id FROM outbox "
                                   "ORDER BY id LIMIT ?)", (overflow,))
                    cursor.execute("INSERT INTO counters (name, value) VALUES ('dropped', ?) "
                                   "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                                   (overflow,))
                cursor.execute("COMMIT")
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            self._depth += 1
            if overflow > 0:
                self._depth -= overflow
                self.dropped += overflow
            return seq

    def delete(self, ids: list[int]) -> int:
        """Forget rows the broker acknowledged. Returns how many were still there."""
        if not ids:
            return 0
        with self._lock:
            deleted = 0
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for start in range(0, len(ids), 500):
                    chunk = ids[start:start + 500]
                    marks = ",".join("?" * len(chunk))
                    deleted += self._db.execute(f"DELETE FROM outbox WHERE id IN ({marks})",
                                                chunk).rowcount
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._depth -= deleted
            return deleted

    # -- reading ---------------------------------------------------------------------------
    def after(self, last_id: int, limit: int) -> list[QueuedRow]:
        """The oldest rows with an id above ``last_id`` (what this connection has not sent)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, payload FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
                (last_id, limit)).fetchall()
        return [QueuedRow(int(i), str(t), str(p)) for i, t, p in rows]

    @property
    def depth(self) -> int:
        """Readings waiting for the broker's acknowledgement."""
        return self._depth

    @property
    def dropped_total(self) -> int:
        """Readings dropped because the queue was full, over the life of this queue file."""
        with self._lock:
            row = self._db.execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()
        return int(row[0]) if row else 0

    def next_seq(self, device: str) -> int:
        """The seq the next reading of ``device`` will get (= readings ever queued for it)."""
        with self._lock:
            row = self._db.execute("SELECT next FROM seq WHERE device = ?", (device,)).fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        with self._lock:
            self._db.close()
