"""Senders: how one message reaches one subscriber on its channel (email, webhook, apprise).

The notifier (alerts/subscriptions/notifier.py) decides *when* and *what* (one alert, or a
digest of several); a sender only delivers, raising :class:`DeliveryError` (retryable or not)
when it could not, or, for a batch, returning one outcome per message and calling
``on_sent(index)`` in the sending thread as soon as a message was delivered (before that
thread's next send: the notifier journals it there, alerts/subscriptions/journal.py). Errors
and logs never carry the address: only the subscriber's id.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar
from zoneinfo import ZoneInfo

from alerts.channels._contract import DeliveryError
from alerts.model import LANGUAGES, AlertView

__all__ = ["WIB", "DeliveryError", "Feed", "Item", "Message", "OnSent", "Outcome", "Recipient",
           "Sender", "Threads", "compose", "drain_in_threads", "languages_for", "title"]

# Western Indonesia Time (UTC+7): how Jakarta reads a clock.
WIB = ZoneInfo("Asia/Jakarta")

_WORDS = {
    "id-ID": {"todo": "Yang harus dilakukan", "area": "Wilayah", "districts": "Kecamatan",
              "time": "Waktu", "level": "Tingkat", "ended": "SELESAI",
              "digest": "{count} peringatan", "unsubscribe": "Berhenti berlangganan",
              "manage": "Lihat atau hapus data saya"},
    "en-US": {"todo": "What to do", "area": "Area", "districts": "Districts",
              "time": "Time", "level": "Level", "ended": "ENDED",
              "digest": "{count} alerts", "unsubscribe": "Unsubscribe",
              "manage": "See or delete my data"},
}


@dataclass(frozen=True)
class Recipient:
    """One subscriber as a sender needs it. ``address`` is personal data: never log it."""

    id: int
    channel: str
    address: str
    address_hash: str
    language: str


@dataclass(frozen=True)
class Message:
    """One message: one alert version, or a digest of several (oldest first)."""

    views: tuple[AlertView, ...]
    idempotency_key: str

    @property
    def is_digest(self) -> bool:
        return len(self.views) > 1


# What became of one message of a batch: None delivered, else why not.
Outcome = DeliveryError | None
Item = tuple[Recipient, Message]
# Called with an item's index right after it was delivered, in the thread that sent it. Keep it
# cheap (it delays that thread's next send) and never raising.
OnSent = Callable[[int], None]
T = TypeVar("T")


class Sender(Protocol):
    """Delivers a message to a recipient of its channel, or raises :class:`DeliveryError`;
    ``send_batch`` delivers many, calls ``on_sent(index)`` right after each one delivered, and
    returns one outcome per item, in order."""

    channel: str

    async def send(self, recipient: Recipient, message: Message) -> None: ...

    async def send_batch(self, items: Sequence[Item],
                         on_sent: OnSent | None = None) -> list[Outcome]: ...

    async def close(self) -> None: ...


class Feed(Generic[T]):
    """Items handed out one at a time to several threads (a slow receiver holds up only the
    thread it is on)."""

    def __init__(self, items: Sequence[T]) -> None:
        self._items = items
        self._next = 0
        self._lock = threading.Lock()

    def take(self) -> tuple[int, T] | None:
        with self._lock:
            index = self._next
            if index >= len(self._items):
                return None
            self._next = index + 1
        return index, self._items[index]


class Threads:
    """A sender's own threads, as many as it may have messages in flight: batches queue for
    them, so a channel never has more in flight than its setting however many batches are
    being delivered (asyncio's shared pool has min(32, cores + 4) threads for everything)."""

    def __init__(self, count: int, name: str) -> None:
        self.count = count
        self._name = name
        self._pool: ThreadPoolExecutor | None = None

    def pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.count,
                                            thread_name_prefix=f"kota-{self._name}")
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


async def drain_in_threads(items: Sequence[T], threads: Threads,
                           drain: Callable[[Feed[T], list[Outcome], OnSent | None], None],
                           on_sent: OnSent | None = None) -> list[Outcome]:
    """Run ``drain(feed, outcomes, on_sent)`` in up to ``threads.count`` of the sender's
    threads until the feed is empty: one thread hand-off per thread and batch, not per
    message. A drain sets ``outcomes[index]`` and, for a delivered item, calls
    ``on_sent(index)`` before taking the next. An item no thread got to (a drain that raised)
    stays a retryable error."""
    outcomes: list[Outcome] = [DeliveryError("not attempted")] * len(items)
    feed = Feed(items)
    count = max(1, min(threads.count, len(items)))
    loop = asyncio.get_running_loop()
    pool = threads.pool()
    results = await asyncio.gather(*(loop.run_in_executor(pool, drain, feed, outcomes, on_sent)
                                     for _ in range(count)), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, Exception):
            raise result
    return outcomes


def languages_for(language: str) -> list[str]:
    """The subscriber's language first, then the others."""
    return [language, *(other for other in LANGUAGES if other != language)] \
        if language in LANGUAGES else list(LANGUAGES)


def _words(language: str) -> dict[str, str]:
    return _WORDS.get(language, _WORDS["en-US"])


def _block(view: AlertView, language: str) -> str:
    words = _words(language)
    text = view.texts.get(language) or next(iter(view.texts.values()))
    lines = [text.headline, "", text.description]
    if text.instruction:
        lines += ["", f"{words['todo']}: {text.instruction}"]
    lines += ["", f"{words['area']}: {view.area.description}"]
    if view.area.districts:
        lines.append(f"{words['districts']}: {', '.join(view.area.districts)}")
    lines += [f"{words['level']}: {view.level}",
              f"{words['time']}: {view.sent_at.astimezone(WIB):%Y-%m-%d %H:%M} WIB"]
    return "\n".join(lines)


def title(message: Message, language: str) -> str:
    """The subject: the headline, or for a digest the count and the newest headline."""
    newest = message.views[-1]
    text = newest.texts.get(language) or next(iter(newest.texts.values()))
    if not message.is_digest:
        return text.headline
    count = _words(language)["digest"].format(count=len(message.views))
    return f"{count}: {text.headline}"


def compose(message: Message, language: str) -> tuple[str, str]:
    """(title, plain-text body) in the subscriber's language, then the other, for chat
    channels and email alike."""
    parts = []
    for lang in languages_for(language):
        if not any(lang in view.texts for view in message.views):
            continue
        parts.append("\n\n---\n\n".join(_block(view, lang) for view in message.views))
    return title(message, language), "\n\n====\n\n".join(parts)
