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
    # Later rejections of one array payload point back instead of copying it again.
    include_payload: bool = True
    # A batch InfluxDB refused is kept whole: it was acknowledged, so this is its only copy.
    keep_whole: bool = False

    def record(self) -> dict[str, object]:
        if not self.include_payload:
            record_: dict[str, object] = {
                "received_ms": self.received_ms, "topic": self.topic, "reason": self.reason,
                "detail": self.detail, "payload_bytes": len(self.payload),
                "payload_in_previous_record": True}
            if self.index is not None:
                record_["index"] = self.index
            return record_
        data = self.payload if self.keep_whole else self.payload[:KEEP_PAYLOAD_BYTES]
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


class DeadLetterStore:
    """Files ``deadletter-YYYYMMDD-NNN.jsonl``; a new part starts at an eighth of the limit,
    so the oldest part can be removed when the store is over ``max_bytes`` (counted, logged)."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder, self.max_bytes = folder, max_bytes
        self.part_bytes = max(1, max_bytes // 8)
        folder.mkdir(parents=True, exist_ok=True)
        self.dropped_records = 0

    def _current_file(self, day: str) -> Path:
        parts = sorted(self.folder.glob(f"deadletter-{day}-*.jsonl"))
        if parts and parts[-1].stat().st_size < self.part_bytes:
            return parts[-1]
        number = int(parts[-1].stem.rsplit("-", 1)[1]) + 1 if parts else 1
        return self.folder / f"deadletter-{day}-{number:03d}.jsonl"

    def append(self, letters: list[DeadLetter], day: str) -> None:
        path = self._current_file(day)
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
