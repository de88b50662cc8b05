"""Optional sampling profile of ingest while it drains (``kota bench ingest --profile DIR``).

Runs ``py-spy record`` (pip install py-spy; it needs ptrace permission) on the ingest PID and
stops it with SIGINT by its PID; then ranks functions by samples from the collapsed stacks.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

__all__ = ["PySpy", "top_functions"]


class PySpy:
    def __init__(self, pid: int, output: Path, subprocesses: bool = False) -> None:
        self.output = output
        binary = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        self.command = [binary, "record", "--pid", str(pid), "--format", "raw", "--idle",
                        "--rate", "200", "--output", str(output)]
        if subprocesses:
            self.command.append("--subprocesses")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> PySpy:
        output = self.output.with_suffix(".log").open("wb")
        self.process = subprocess.Popen(self.command, stdout=output, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
        output.close()
        return self

    def stop(self, timeout_s: float = 20.0) -> Path | None:
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        return self.output if self.output.exists() else None


# Leaf frames that mean "waiting" (py-spy --idle): the event loop's epoll, lock waits.
_IDLE_LEAVES = ("select (selectors.py", "wait (threading.py", "accept (socket.py")
_LINE = re.compile(r":\d+\)$")


def top_functions(raw: Path, limit: int = 15) -> dict[str, Any]:
    """From py-spy's collapsed stacks of the main thread: the shares of samples spent waiting
    (idle) and importing (start-up), and the other (busy) samples ranked by leaf function
    (self) and by any function on the stack (total)."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = idle = importing = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        # Only the main thread (the asyncio loop) is ingest's work; other threads' stacks
        # (/metrics server, to_thread workers) start at threading's _bootstrap.
        if not frames or "_bootstrap (threading.py" in frames[0]:
            continue
        samples += count
        # One entry per function: py-spy names frames "function (file:line)".
        frames = [_LINE.sub(")", frame) for frame in frames]
        leaf = frames[-1]
        if any(name in leaf for name in _IDLE_LEAVES):
            idle += count
            continue
        if any("importlib._bootstrap" in frame for frame in frames):
            importing += count
            continue
        own[leaf] += count
        for frame in set(frames):
            total[frame] += count
    busy = samples - idle - importing
    return {
        "samples": samples,
        "idle_share": round(idle / samples, 3) if samples else None,
        "import_share": round(importing / samples, 3) if samples else None,
        "busy_self": [(name, round(n / busy, 3)) for name, n in own.most_common(limit)]
        if busy else [],
        "busy_total": [(name, round(n / busy, 3)) for name, n in total.most_common(limit)]
        if busy else [],
    }
