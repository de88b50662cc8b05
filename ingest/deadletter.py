"""The dead-letter store: every message ingest refused, with its reason and raw payload.

JSON lines, one file per UTC day, fsynced before the broker is acknowledged. ``kota deadletter``
lists and summarises them.
"""

from __future__ import annotations

import base64
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import orjson

log = logging.getLogger("kota.ingest.deadletter")

KEEP_PAYLOAD_BYTES = 65_536  # beyond this only the size is kept (oversized payloads)


@dataclass(slots=True)
class DeadLetter:
    received_ms: int
    topic: str
    reason: str
    detail: str
    payload: bytes
    index: int | None = None

    def record(self) -> dict[str, object]:
        data = self.payload[:KEEP_PAYLOAD_BYTES]
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
        if len(self.payload) > KEEP_PAYLOAD_BYTES:
            record["truncated"] = True
        return record


class DeadLetterStore:
    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder, self.max_bytes = folder, max_bytes
        folder.mkdir(parents=True, exist_ok=True)
        self.dropped_records = 0

    def append(self, letters: list[DeadLetter], day: str) -> None:
        path = self.folder / f"deadletter-{day}.jsonl"
        with path.open("ab") as handle:
            handle.write(b"".join(orjson.dumps(letter.record()) + b"\n" for letter in letters))
            handle.flush()
            os.fsync(handle.fileno())
        self._enforce_limit()

    def _enforce_limit(self) -> None:
        files = sorted(self.folder.glob("deadletter-*.jsonl"))
        total = sum(path.stat().st_size for path in files)
        while total > self.max_bytes and len(files) > 1:
            oldest = files.pop(0)
            size = oldest.stat().st_size
            with oldest.open("rb") as handle:
                count = sum(1 for _ in handle)
            oldest.unlink()
            total -= size
            self.dropped_records += count
            log.error("dead-letter store over deadletter.max_mb: removed %s (%d records)",
                      oldest.name, count)


def read_dead_letters(folder: Path) -> list[dict[str, object]]:
    records: list[dict[str, object]] = []
    for path in sorted(folder.glob("deadletter-*.jsonl")):
        with path.open("rb") as handle:
            for line in handle:
                if line.strip():
                    records.append(orjson.loads(line))
    return records
