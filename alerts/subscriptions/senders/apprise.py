"""Chat channels of agencies' groups (Telegram, WhatsApp, Slack, ntfy ...) through apprise URLs.

An operator sets the subscription up with an apprise URL (``tgram://<bot token>/<chat id>``,
``slack://...``, ``ntfys://...``); the `apprise` library speaks each service's API. The URL
holds the service's credentials: it is never logged, and errors name only the subscriber and
the URL's scheme.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import apprise

from alerts.subscriptions.senders import (
    DeliveryError,
    Item,
    Message,
    OnSent,
    Outcome,
    Recipient,
    compose,
)

__all__ = ["AppriseSender"]

# apprise logs the services it talks to (hosts, sometimes more); ours name subscriber ids only.
logging.getLogger("apprise").setLevel(logging.CRITICAL)


def _scheme(url: str) -> str:
    return url.split("://", 1)[0] if "://" in url else "?"


class AppriseSender:
    """One apprise notification per message (apprise keeps no connection between calls)."""

    channel = "apprise"

    def __init__(self, timeout_s: float = 10.0, concurrency: int = 4) -> None:
        self.timeout_s = timeout_s
        self.concurrency = concurrency

    def _notify(self, recipient: Recipient, title: str, body: str) -> None:
        where = f"subscriber {recipient.id} ({_scheme(recipient.address)}://)"
        target = apprise.Apprise()
        if not target.add(recipient.address):
            raise DeliveryError(f"{where}: not an apprise URL apprise knows", retryable=False)
        errors: list[str] = []

        def keep(entry: Any, _plugin: Any) -> None:
            if getattr(entry, "level", 0) >= logging.WARNING:
                errors.append(str(getattr(entry, "message", entry)))

        result = target.notify(body=body, title=title, log_callback=keep,
                               log_level=logging.WARNING)
        if not result:
            # Keep the shape of apprise's reason, not the address it may contain.
            detail = "; ".join(error.replace(recipient.address, "<url>") for error in errors)
            raise DeliveryError(f"{where}: not delivered"
                                + (f" (HTTP status in: {_status_words(detail)})" if detail
                                   else ""))

    async def send(self, recipient: Recipient, message: Message) -> None:
        title, body = compose(message, recipient.language)
        try:
            await asyncio.wait_for(asyncio.to_thread(self._notify, recipient, title, body),
                                   timeout=self.timeout_s)
        except TimeoutError:
            raise DeliveryError(f"subscriber {recipient.id} ({_scheme(recipient.address)}://)"
                                f": no answer within {self.timeout_s:g} s") from None

    async def send_batch(self, items: Sequence[Item],
                         on_sent: OnSent | None = None) -> list[Outcome]:
        """Agencies' groups are few: one send each, ``concurrency`` at a time; ``on_sent`` is
        called in the event loop's thread after each one delivered."""
        slots = asyncio.Semaphore(self.concurrency)

        async def one(index: int, recipient: Recipient, message: Message) -> Outcome:
            async with slots:
                try:
                    await self.send(recipient, message)
                except DeliveryError as exc:
                    return exc
                if on_sent is not None:
                    on_sent(index)
                return None

        return list(await asyncio.gather(*(one(index, r, m)
                                           for index, (r, m) in enumerate(items))))

    async def close(self) -> None:
        return None


def _status_words(detail: str) -> str:
    """The numbers and words of apprise's reason, without hosts (they may be personal)."""
    words = [word for word in detail.replace(":", " ").split()
             if word.isdigit() or (word.isalpha() and "." not in word)]
    return " ".join(words[:20])
