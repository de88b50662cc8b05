"""An exclusive lock shared by every process on this machine: for what only one test at a time
may use, whichever pytest worker (``-n``) or pytest run it is in.

``flock`` on a file in the system's temp folder: the kernel releases it when its holder exits,
even by SIGKILL, so a crashed run never leaves it taken. The wait is bounded.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def lock_path(name: str) -> Path:
    return Path(tempfile.gettempdir()) / f"{name}.lock"


@contextlib.contextmanager
def machine_lock(name: str, timeout_s: float, poll_s: float = 0.2) -> Iterator[float]:
    """Hold the lock ``name``; yields the seconds waited for it. TimeoutError after
    ``timeout_s`` (another holder that long is stuck, or slower than any test should be)."""
    path = lock_path(name)
    # Read-only is enough for flock: a file another user made stays usable.
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        started = time.monotonic()
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() - started > timeout_s:
                    raise TimeoutError(f"{path} still held by another process after "
                                       f"{timeout_s:.0f} s") from None
                time.sleep(poll_s)
        try:
            yield time.monotonic() - started
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
