"""Senders: how one message reaches one subscriber on its channel (email, webhook, apprise).

The notifier (alerts/subscriptions/notifier.py) decides *when* and *what* (one alert, or a
digest of several); a sender only delivers, raising :class:`DeliveryError` (retryable or not)
when it could not. Errors and logs never carry the address: only the subscriber's id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol
from zoneinfo import ZoneInfo

from alerts.channels._contract import DeliveryError
from alerts.model import LANGUAGES, AlertView

__all__ = ["WIB", "DeliveryError", "Message", "Recipient", "Sender", "compose", "languages_for",
           "title"]

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


class Sender(Protocol):
    """Delivers a message to a recipient of its channel, or raises :class:`DeliveryError`."""

    channel: str

    async def send(self, recipient: Recipient, message: Message) -> None: ...

    async def close(self) -> None: ...


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
