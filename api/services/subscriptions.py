"""Subscriptions for the API: the sign-up's limits, the confirmation mail and the webhook
challenge around the subscriber registry (alerts/subscriptions/registry.py).

What is sent before a subscription is confirmed is the confirmation itself and nothing else:
one mail with the link (email), or one POST of a challenge the receiver must echo (webhook).
Both go out after the API has answered, so how long the answer takes says nothing about whether
the address was known. Addresses never reach a log line: a subscriber is logged by id or a
prefix of its keyed address hash.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
import secrets
import smtplib
import time
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from alerts.smtp import open_smtp
from alerts.subscriptions import tokens
from alerts.subscriptions.registry import Areas, SubscriptionRegistry, Wanted, known_areas
from alerts.subscriptions.settings import SmtpSettings, SubscriptionSettings
from indicators.settings import DATA_DIR
from kota.registry import Registry

__all__ = ["SlidingLimiter", "SubscriptionsService", "confirmation_mail", "html_page"]

log = logging.getLogger("kota.api.subscriptions")
CHALLENGE_TIMEOUT_S = 10.0
# Limiter memory: at most this many client addresses are tracked at once (the oldest go first),
# so a flood from many addresses cannot grow it without bound.
MAX_TRACKED_CLIENTS = 100_000
# Unconfirmed sign-ups must be gone within signup.confirm_ttl_h (at least 1 h): an hourly look
# keeps them at most an hour past it.
PURGE_INTERVAL_S = 3600.0


@dataclass
class SlidingLimiter:
    """At most ``per_window`` events per key within a sliding window: sign-ups per client
    (``signup.per_client_per_hour``) and confirmations per address hash
    (``signup.per_address_per_day``). In memory, per API process: the registry also counts an
    address's pending sign-ups in the database, which a restart keeps."""

    per_window: int
    window_s: float
    _seen: dict[str, deque[float]] = field(default_factory=dict)

    def allow(self, client: str, now_s: float | None = None) -> float | None:
        """None: allowed (and counted); otherwise the seconds until the next is allowed."""
        now_s = time.monotonic() if now_s is None else now_s
        stamps = self._seen.pop(client, deque())
        while stamps and stamps[0] <= now_s - self.window_s:
            stamps.popleft()
        self._seen[client] = stamps      # re-inserted: the dict's order is least recent first
        if len(stamps) >= self.per_window:
            return max(1.0, stamps[0] + self.window_s - now_s)
        stamps.append(now_s)
        while len(self._seen) > MAX_TRACKED_CLIENTS:
            self._seen.pop(next(iter(self._seen)))
        return None


_CONFIRM_TEXT = {
    "id-ID": {
        "subject": "Konfirmasi langganan peringatan dini",
        "body": ("Halo,\n\nAda permintaan untuk mengirim peringatan dini (banjir, kualitas udara, "
                 "hujan, keselamatan) ke alamat ini. Untuk mulai menerimanya, buka tautan "
                 "berikut:\n\n{url}\n\nTautan berlaku {hours:g} jam. Jika Anda tidak meminta ini, "
                 "abaikan surel ini: tidak ada yang akan dikirim dan permintaan ini dihapus "
                 "setelah {hours:g} jam.\n\n— Peringatan dini {city}\n"),
    },
    "en-US": {
        "subject": "Confirm your early-warning subscription",
        "body": ("Hello,\n\nSomeone asked for early warnings (floods, air quality, rain, "
                 "safety) to be sent to this address. To start receiving them, open this "
                 "link:\n\n{url}\n\nThe link works for {hours:g} hours. If you did not ask "
                 "for this, ignore this mail: nothing will be sent and the request is deleted "
                 "after {hours:g} hours.\n\n— {city} early warnings\n"),
    },
}


def confirmation_mail(settings: SubscriptionSettings, address: str, language: str, url: str,
                      city: str) -> EmailMessage:
    words = _CONFIRM_TEXT.get(language, _CONFIRM_TEXT["id-ID"])
    message = EmailMessage()
    message["From"] = settings.smtp.from_address
    message["To"] = address
    message["Subject"] = words["subject"]
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=settings.smtp.from_address.rpartition("@")[2]
                                       or None)
    message["Content-Language"] = language
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(words["body"].format(url=url, hours=settings.signup.confirm_ttl_h,
                                             city=city.title()))
    return message


def _send_mail(smtp: SmtpSettings, message: EmailMessage) -> None:
    """One mail over its own SMTP session: confirmations are rare next to alerts (the alert
    service keeps the pooled connections)."""
    password = (smtp.password.get_secret_value() if smtp.password is not None
                else smtp.password_file.read_text(encoding="utf-8").strip()
                if smtp.password_file is not None else None)
    with open_smtp(smtp.host, smtp.port, security=smtp.security, timeout_s=smtp.timeout_s,
                   username=smtp.username, password=password) as client:
        client.send_message(message)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None      # a redirect is an answer that does not echo: no confirmation


def _challenge(url: str, timeout_s: float) -> bool:
    """POST a fresh challenge to the webhook; True when it answers 2xx with it. urllib, not
    httpx: httpx logs every request's URL at INFO, and a webhook URL is a subscriber's
    address."""
    challenge = secrets.token_urlsafe(24)
    body = json.dumps({"type": "kota.subscription.challenge",
                       "challenge": challenge}).encode()
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": "kota-cerdas-subscriptions"})
    opener = urllib.request.build_opener(_NoRedirects)
    try:
        with opener.open(request, timeout=timeout_s) as answer:
            if not 200 <= answer.status < 300:
                return False
            text = answer.read(64 * 1024).decode("utf-8", "replace").strip()
    except (OSError, ValueError):   # URLError and HTTPError are OSErrors
        return False
    try:
        found = json.loads(text)
    except ValueError:
        return text == challenge
    return isinstance(found, dict) and found.get("challenge") == challenge


@dataclass(frozen=True)
class Page:
    title: str
    text: str
    form_action: str | None = None
    button: str | None = None


def html_page(language: str, page: Page) -> str:
    """A small page for a link opened from a mail: no script, the sign-up page's style."""
    form = ""
    if page.form_action is not None:
        form = (f'<form method="post" action="{html.escape(page.form_action)}">'
                f'<button type="submit">{html.escape(page.button or "OK")}</button></form>')
    back = "Kembali ke halaman langganan" if language == "id-ID" else "Back to subscriptions"
    return (f'<!doctype html><html lang="{language[:2]}"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(page.title)}</title>"
            '<link rel="stylesheet" href="../../../langganan/langganan.css"></head>'
            f'<body><main class="card"><h1>{html.escape(page.title)}</h1>'
            f"<p>{html.escape(page.text)}</p>{form}"
            f'<p><a href="../../../langganan/">{back}</a></p></main></body></html>')


class SubscriptionsService:
    """What the subscription routes need: the registry, the limits, mail and challenges."""

    def __init__(self, engine: Engine, settings: SubscriptionSettings,
                 device_registry: Registry) -> None:
        self.settings = settings
        self.registry = SubscriptionRegistry(engine, settings)
        self.device_registry = device_registry
        self.limiter = SlidingLimiter(settings.signup.per_client_per_hour, 3600.0)
        self.address_limiter = SlidingLimiter(settings.signup.per_address_per_day, 86_400.0)
        self._background: set[asyncio.Task[None]] = set()
        self._purging: asyncio.Task[None] | None = None

    @property
    def signing_on(self) -> bool:
        return self.settings.secret_bytes() is not None

    def areas(self) -> Areas:
        # Read each time: the device registry reloads in place, and the table is 45 lines.
        return known_areas(self.device_registry, DATA_DIR)

    def sign_up_blocking(self, wanted: Wanted) -> tuple[int, str] | None:
        """Record a public sign-up: (subscriber id, confirmation token) to send, or None when
        the address has had its confirmations for the day (the caller answers the same)."""
        digest = tokens.address_hash(self.settings, wanted.address)
        created = None
        if self.address_limiter.allow(digest) is None:
            created = self.registry.create(wanted, created_by="public")
        if created is None or created.subscriber_id is None or created.confirm_token is None:
            log.info("sign-up for address %s: its mails for today are used up; none sent",
                     digest[:12])
            return None
        log.info("sign-up %d (%s) pending its confirmation", created.subscriber_id,
                 wanted.channel)
        return created.subscriber_id, created.confirm_token

    async def confirm_out_of_band(self, wanted: Wanted, subscriber_id: int, token: str) -> None:
        """Send the confirmation mail, or challenge the webhook and activate it on an echo."""
        try:
            if wanted.channel == "email":
                message = confirmation_mail(self.settings, wanted.address, wanted.language,
                                            tokens.confirm_url(self.settings, token),
                                            self.areas().city)
                await asyncio.to_thread(_send_mail, self.settings.smtp, message)
                log.info("confirmation mail sent for subscriber %d", subscriber_id)
            elif await self._challenge(wanted.address):
                await asyncio.to_thread(self.registry.confirm, token)
                log.info("webhook subscriber %d echoed its challenge: active", subscriber_id)
            else:
                log.info("webhook subscriber %d did not echo its challenge: stays pending "
                         "until it is purged", subscriber_id)
        except (OSError, smtplib.SMTPException) as exc:
            # The error text of an SMTP server may quote the recipient: only its kind is kept.
            log.warning("confirmation for subscriber %d not sent: %s", subscriber_id,
                        type(exc).__name__)

    async def _challenge(self, url: str) -> bool:
        return await asyncio.to_thread(_challenge, url, CHALLENGE_TIMEOUT_S)

    def dispatch(self, wanted: Wanted, subscriber_id: int, token: str) -> None:
        """Run the confirmation in the background; kept referenced until it ends."""
        task = asyncio.get_running_loop().create_task(
            self.confirm_out_of_band(wanted, subscriber_id, token),
            name=f"subscription-confirm-{subscriber_id}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def start(self) -> None:
        """Purge what is no longer needed, now and every hour (registry.purge)."""
        self._purging = asyncio.get_running_loop().create_task(self._purge_loop(),
                                                                name="subscription-purge")

    async def _purge_loop(self) -> None:
        while True:
            try:
                counts = await asyncio.to_thread(self.registry.purge)
                if any(counts.values()):
                    log.info("purged subscribers: %d unconfirmed, %d unsubscribed",
                             counts["unconfirmed"], counts["unsubscribed"])
            except SQLAlchemyError as exc:
                log.warning("purging subscribers failed (retried in %g s): %s",
                            PURGE_INTERVAL_S, type(exc).__name__)
            await asyncio.sleep(PURGE_INTERVAL_S)

    async def close(self) -> None:
        """Stop purging; let confirmations under way finish (bounded by their timeouts)."""
        if self._purging is not None:
            self._purging.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._purging
            self._purging = None
        if self._background:
            await asyncio.wait(set(self._background), timeout=CHALLENGE_TIMEOUT_S + 5)
