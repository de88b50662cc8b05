"""The on-disk buffer: batches kept while InfluxDB is down, replayed oldest first.

Each batch is one file written to a temporary name, fsynced, then renamed, so a crash leaves
either the whole batch or none of it. The broker is acknowledged only after the rename.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("kota.ingest.buffer")


@dataclass
class BufferedBatch:
    path: Path
    lines: int

    def read(self) -> bytes:
        return self.path.read_bytes()


class DiskBuffer:
    def __init__(self, folder: Path, max_bytes: int, drop_oldest: bool) -> None:
        self.folder, self.max_bytes, self.drop_oldest = folder, max_bytes, drop_oldest
        folder.mkdir(parents=True, exist_ok=True)
        for leftover in folder.glob("*.tmp"):
            leftover.unlink()  # a crash mid-write: never acknowledged, the broker redelivers
        self._files = sorted(folder.glob("*.lp"))
        self.size_bytes = sum(path.stat().st_size for path in self._files)
        self._next = int(self._files[-1].stem.split("-")[0]) + 1 if self._files else 1
        self.dropped_lines = 0
        # append (flush loop) and remove (replay loop) run in worker threads at the same time.
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._files)

    @property
    def lines(self) -> int:
        return sum(_lines_in(path) for path in self._files)

    def append(self, body: bytes, lines: int) -> bool:
        """Store a batch durably; False when full and configured for backpressure."""
        with self._lock:
            return self._append(body, lines)

    def _append(self, body: bytes, lines: int) -> bool:
        while self.size_bytes + len(body) > self.max_bytes and self._files:
            if not self.drop_oldest:
                return False
            oldest = self._files.pop(0)
            lost = _lines_in(oldest)
            self.size_bytes -= oldest.stat().st_size
            oldest.unlink()
            self.dropped_lines += lost
            log.error("buffer full (%d MB): dropped the oldest batch of %d points (%s). Raise "
                      "buffer.max_mb or bring InfluxDB back", self.max_bytes // 2**20, lost,
                      oldest.name)
        if self.size_bytes + len(body) > self.max_bytes and not self.drop_oldest:
            return False
        final = self.folder / f"{self._next:012d}-{lines}.lp"
        temporary = final.with_suffix(".tmp")
        with temporary.open("wb") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.rename(final)
        fsync_dir(self.folder)
        self._next += 1
        self._files.append(final)
        self.size_bytes += len(body)
        return True

    def oldest(self) -> BufferedBatch | None:
        with self._lock:
            if not self._files:
                return None
            return BufferedBatch(self._files[0], _lines_in(self._files[0]))

    def remove(self, batch: BufferedBatch) -> None:
        with self._lock:
            if batch.path in self._files:  # drop_oldest may have removed it meanwhile
                self._files.remove(batch.path)
                self.size_bytes -= batch.path.stat().st_size
                batch.path.unlink()


def _lines_in(path: Path) -> int:
    try:
        return int(path.stem.split("-")[1])
    except (IndexError, ValueError):
        return 0


def fsync_dir(folder: Path) -> None:
    """Make a file's creation or removal in ``folder`` survive a power cut."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
