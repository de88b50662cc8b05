"""What a subscriber sender delivered, kept on local disk until the database says so too.

A sender delivers a message and only later (every ``delivery.mark_every`` messages) does the
notifier mark it ``sent`` in the database. A process killed in between used to leave those
rows due again after ``delivery.lease_s``: up to ``mark_every`` messages twice. So each
delivered message is first appended to this journal (its row ids: the carrier, then the rows
digested into it); a live process's journal is locked, and a dead process's is *adopted*: its
rows still ``queued`` are settled as sent before their lease ends. What is sent twice after a
SIGKILL is then only what was in flight at that instant.

Files in ``directory``, per process (``<stem>`` = ``<channel>-<database tag>-<pid>-<run>``):

* ``<stem>.lock``: held with ``fcntl.flock`` for the life of the process (the kernel drops the
  lock when the process dies, however it dies). It is locked under a temporary name and then
  renamed, so nobody ever sees it unlocked while its owner lives.
* ``<stem>-<n>.sent``: segments of ``<unix time, 3 decimals> <row id> [<row id> ...]`` lines, one
  ``os.write`` each on an ``O_APPEND`` descriptor. A new segment every ``lines_per_segment``
  lines; a segment is deleted once it is rotated out and every line in it was marked in the
  database, so the journal stays small under continuous load.
* ``<stem>-<w>.claims``: the batches claimed (``<lease end, Unix time> <row id> ...``), one file
  per ``claim_window_s`` of lease ends, deleted once every lease in it has ended and on a clean
  stop: the adopter makes a dead process's claimed and unsent rows due at once instead of at the
  lease's end.

The database tag is a hash of the database's URL: a journal's row ids mean something only in
its own database, so two deployments sharing a folder never settle each other's rows.

Durability: no fsync. A line written is in the kernel's page cache, which survives a SIGKILL
or a crash of the process but not of the machine: after a power cut the journal may miss its
last lines and those messages are sent again after the lease (as without a journal). The
journal is local: a process on another host cannot see it (docs/subscriptions.md).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["LINES_PER_SEGMENT", "Orphan", "SentJournal", "SentLine"]

log = logging.getLogger(__name__)

LINES_PER_SEGMENT = 10_000
# A temporary lock file older than this is from a process that died while opening its journal.
_STALE_NEW_LOCK_S = 60.0
_NAME = re.compile(r"(?P<stem>(?P<channel>[a-z]+)-(?P<tag>[0-9a-f]{8})-(?P<pid>\d+)"
                   r"-(?P<run>[0-9a-f]{6}))(?:-(?P<segment>\d+)\.sent|-(?P<window>\d+)\.claims"
                   r"|\.lock(?P<new>\.new)?)")
# A whole line: the time has ten digits and a point (until 2286) and the ids have no point, so
# a torn line and the line written after it never read as one valid line.
_LINE = re.compile(rb"\d{10}\.\d{3}(?: \d+)+")


@dataclass(frozen=True)
class SentLine:
    """One delivered message: when (Unix seconds) and its rows, the carrier first."""

    sent_at_s: float
    row_ids: tuple[int, ...]


@dataclass
class Orphan:
    """A dead process's journal, locked by the adopter until :meth:`SentJournal.forget` or
    :meth:`SentJournal.release`."""

    name: str
    lines: list[SentLine]
    paths: list[Path] = field(repr=False)   # its segments and claims, then its lock file
    lock_fd: int = field(repr=False)
    # Batches it claimed: (the lease's end, Unix seconds; the rows), so what it had not sent
    # can go again at once instead of after the lease.
    claims: list[SentLine] = field(default_factory=list)


class SentJournal:
    """This process's journal of delivered messages for one channel (thread-safe)."""

    def __init__(self, directory: Path, channel: str, *, scope: str = "",
                 lines_per_segment: int = LINES_PER_SEGMENT,
                 claim_window_s: float = 30.0) -> None:
        """Create ``directory`` (0700) and lock this process's journal in it; OSError when it
        cannot. ``scope`` names what the row ids belong to (the database's URL)."""
        if not re.fullmatch(r"[a-z]+", channel):
            raise ValueError(f"journal channel {channel!r}: lowercase letters only")
        if lines_per_segment < 1:
            raise ValueError("lines_per_segment must be at least 1")
        self.directory = directory
        self.channel = channel
        self.lines_per_segment = lines_per_segment
        self.tag = hashlib.sha256(scope.encode()).hexdigest()[:8]
        self.name = f"{channel}-{self.tag}-{os.getpid()}-{secrets.token_hex(3)}"
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock_fd = _locked_lock_file(directory, self.name)
        # The sending threads never take a lock: a lock taken per message made them queue
        # for each other and for the GIL (17 % fewer notifications per second with kota
        # alerts sending both channels). A line's number comes from an itertools.count (one
        # atomic step under the GIL) and fixes its segment; the lock is taken to open a
        # segment (once per lines_per_segment lines) and to count marks (once per part).
        self._lock = threading.Lock()
        self._numbers = itertools.count()
        self._last_number = -1                 # the newest line number handed out
        self._fds: dict[int, int] = {}         # segment -> its descriptor, while it exists
        self._settled: dict[int, int] = {}     # segment -> lines marked (or never written)
        self._settled_total = 0
        self._closed = False
        self._write_errors = 0
        # Claims: one file per claim_window_s of lease ends, deleted once every lease in it
        # has ended (nothing left to release early).
        self.claim_window_s = max(claim_window_s, 1.0)
        self._claim_fds: dict[int, int] = {}   # window -> descriptor

    def _path(self, segment: int) -> Path:
        return self.directory / f"{self.name}-{segment}.sent"

    def _claims_path(self, window: int) -> Path:
        return self.directory / f"{self.name}-{window}.claims"

    # -- the sender's side ------------------------------------------------------------------

    def record(self, row_ids: Sequence[int]) -> int | None:
        """Journal one delivered message (``row_ids``: the carrier first, then the rows
        digested into it). Returns the token to pass to :meth:`marked` once the database has
        the outcome, or None when it could not be written (logged; the message is then sent
        again after the lease if this process dies before marking it)."""
        if self._closed:
            return None
        line = f"{time.time():.3f} {' '.join(map(str, row_ids))}\n".encode("ascii")
        number = next(self._numbers)
        self._last_number = number
        segment = number // self.lines_per_segment
        try:
            fd = self._fds.get(segment)
            if fd is None:
                fd = self._open(segment)
            written = os.write(fd, line)
        except OSError as exc:
            self._failed(segment, str(exc.strerror or exc))
            return None
        if written != len(line):   # a full disk: end the torn line so the next reads whole
            with contextlib.suppress(OSError):
                os.write(fd, b"\n")
            self._failed(segment, "short write")
            return None
        return segment

    def record_claim(self, lease_until_s: float, row_ids: Sequence[int]) -> None:
        """Note a batch just claimed (leased until ``lease_until_s``), so that, should this
        process die, the next one makes its unsent rows due at once. Best effort: a failure
        only means those rows wait out their lease, as without a journal."""
        if self._closed or not row_ids:
            return
        line = f"{lease_until_s:.3f} {' '.join(map(str, row_ids))}\n".encode("ascii")
        window = int(lease_until_s // self.claim_window_s)
        try:
            with self._lock:   # a claim a batch (hundreds of rows), not a message
                for old in [w for w in self._claim_fds
                            if (w + 1) * self.claim_window_s < time.time()]:
                    self._delete_claims(old)
                fd = self._claim_fds.get(window)
                if fd is None:
                    fd = os.open(self._claims_path(window),
                                 os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
                    self._claim_fds[window] = fd
                os.write(fd, line)
        except OSError as exc:
            log.debug("subscriptions: journal %s: claim not noted: %s", self.name, exc)

    def _delete_claims(self, window: int) -> None:
        fd = self._claim_fds.pop(window, None)
        if fd is not None:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            self._claims_path(window).unlink()

    def _open(self, segment: int) -> int:
        with self._lock:
            fd = self._fds.get(segment)
            if fd is None:
                fd = os.open(self._path(segment),
                             os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
                self._fds[segment] = fd
            return fd

    def _failed(self, segment: int, reason: str) -> None:
        """A line not written: nothing to mark for it, so it counts as settled."""
        with self._lock:
            self._write_errors += 1
            errors = self._write_errors
            self._settle(segment, 1)
        if errors == 1 or errors % 1000 == 0:
            log.warning("subscriptions: journal %s: %s (%d line(s) not written so far; "
                        "those messages are sent again if this process dies before marking "
                        "them)", self._path(segment), reason, errors)

    def _settle(self, segment: int, count: int) -> None:
        """Under the lock: ``count`` more lines of ``segment`` settled; a segment whose every
        line is settled is deleted (then no thread writes to it any more)."""
        settled = self._settled.get(segment, 0) + count
        self._settled[segment] = settled
        self._settled_total += count
        if settled >= self.lines_per_segment:
            self._delete_segment(segment)

    def _delete_segment(self, segment: int) -> None:
        self._settled.pop(segment, None)
        fd = self._fds.pop(segment, None)
        if fd is not None:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            self._path(segment).unlink()

    def marked(self, token: int | None) -> None:
        """The database has the outcome of the message :meth:`record` returned ``token`` for."""
        self.marked_many((token,))

    def marked_many(self, tokens: Sequence[int | None]) -> None:
        """:meth:`marked` for each token, taking the lock once."""
        counts: dict[int, int] = {}
        for token in tokens:
            if token is not None:
                counts[token] = counts.get(token, 0) + 1
        if not counts:
            return
        with self._lock:
            for segment, count in counts.items():
                self._settle(segment, count)

    @property
    def unmarked(self) -> int:
        """Lines written and not yet marked."""
        with self._lock:
            return self._last_number + 1 - self._settled_total

    def _written(self, segment: int) -> int:
        """Lines handed out to ``segment`` so far (all of them once a later one started)."""
        first = segment * self.lines_per_segment
        return max(0, min(self.lines_per_segment, self._last_number + 1 - first))

    def segments(self) -> list[Path]:
        """This journal's segment files on disk, oldest first."""
        return _segments_of(self.directory, self.name)

    def close(self) -> None:
        """Stop journaling (the senders have stopped). Segments whose lines were all marked
        are deleted, and the lock file with them when nothing is left; what is left is
        adopted by the next process."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()
            # A clean stop marked what it sent; its claims' unsent rows wait out the lease.
            for window in list(self._claim_fds):
                self._delete_claims(window)
            left = False
            for path in self.segments():
                segment = int(path.name.rsplit("-", 1)[1].removesuffix(".sent"))
                if self._settled.get(segment, 0) >= self._written(segment):
                    self._delete_segment(segment)   # every line marked (or none written)
                else:
                    left = True
            if not left:
                with contextlib.suppress(FileNotFoundError):
                    (self.directory / f"{self.name}.lock").unlink()
            os.close(self._lock_fd)

    # -- the adopter's side -----------------------------------------------------------------

    def adopt_orphans(self) -> list[Orphan]:
        """Lock and read the journals of this channel's dead processes (their lock can be
        taken) for this database. Each comes back locked: settle its rows, then
        :meth:`forget` it (or :meth:`release` it when settling failed). A dead journal with
        no lines, of any channel or database, is deleted here."""
        stems: dict[str, bool] = {}   # stem of a lock file -> this channel's and database's
        with_segments: set[str] = set()
        now = time.time()
        for entry in os.scandir(self.directory):
            match = _NAME.fullmatch(entry.name)
            if match is None or match["stem"] == self.name:
                continue
            if match["new"]:
                with contextlib.suppress(OSError):
                    if now - entry.stat().st_mtime > _STALE_NEW_LOCK_S:
                        os.unlink(entry.path)
            elif match["segment"] is not None or match["window"] is not None:
                with_segments.add(match["stem"])
            else:
                stems[match["stem"]] = (match["channel"], match["tag"]) == (self.channel,
                                                                           self.tag)
        orphans: list[Orphan] = []
        for stem, mine in sorted(stems.items()):
            if not mine and stem in with_segments:
                continue   # another channel's or database's rows: theirs to settle
            lock_path = self.directory / f"{stem}.lock"
            lock_fd = _try_lock(lock_path)
            if lock_fd is None:
                continue   # alive
            # Listed again now that it is ours: its owner may have written more before dying.
            segments = _segments_of(self.directory, stem)
            claims = _segments_of(self.directory, stem, "window")
            orphan = Orphan(stem, [], [*segments, *claims, lock_path], lock_fd)
            if not mine and (segments or claims):
                self.release([orphan])
                continue
            for path in segments:
                orphan.lines += _read_segment(path)
            for path in claims:
                orphan.claims += _read_segment(path)
            if orphan.lines or orphan.claims:
                orphans.append(orphan)
            else:
                self.forget([orphan])
        return orphans

    @staticmethod
    def forget(orphans: Sequence[Orphan]) -> None:
        """Delete adopted journals (their rows are settled) and drop their locks."""
        for orphan in orphans:
            for path in orphan.paths:   # the lock file last: a crash here leaves it adoptable
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            with contextlib.suppress(OSError):
                os.close(orphan.lock_fd)

    @staticmethod
    def release(orphans: Sequence[Orphan]) -> None:
        """Give adopted journals back untouched (settling them failed; adopted again later)."""
        for orphan in orphans:
            with contextlib.suppress(OSError):
                os.close(orphan.lock_fd)


def _locked_lock_file(directory: Path, name: str) -> int:
    """Create ``<name>.lock`` already locked: locked under a temporary name, then renamed."""
    temporary = directory / f"{name}.lock.new"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        os.replace(temporary, directory / f"{name}.lock")
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    return fd


def _segments_of(directory: Path, stem: str, kind: str = "segment") -> list[Path]:
    """The segment files of the journal ``stem`` (``kind`` "window": its claims files),
    oldest first."""
    found = [(int(match[kind]), directory / name) for name in os.listdir(directory)
             if (match := _NAME.fullmatch(name)) and match["stem"] == stem
             and match[kind] is not None]
    return [path for _segment, path in sorted(found)]


def _try_lock(path: Path) -> int | None:
    """The descriptor of ``path`` with its flock taken, or None (held by a live process, or
    gone). A separate open file description: even this process's own lock conflicts."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read_segment(path: Path) -> list[SentLine]:
    """A segment's lines; a torn last line (the process died mid-write) is ignored, other
    lines that are not records are ignored with one warning naming the file and line."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    raw_lines = data.split(b"\n")
    torn = raw_lines.pop()   # b"" when the file ends with a newline
    if torn:
        log.debug("subscriptions: journal %s: torn last line ignored", path)
    lines: list[SentLine] = []
    bad: list[int] = []
    for number, raw in enumerate(raw_lines, start=1):
        if not _LINE.fullmatch(raw):
            bad.append(number)
            continue
        when, *ids = raw.split(b" ")
        lines.append(SentLine(float(when), tuple(int(row_id) for row_id in ids)))
    if bad:
        log.warning("subscriptions: journal %s line %d: not a sent record, ignored%s", path,
                    bad[0], f" (and {len(bad) - 1} more line(s))" if len(bad) > 1 else "")
    return lines
