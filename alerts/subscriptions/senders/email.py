"""Email to subscribers: one pool of persistent SMTP sessions, each mail with its one-click
unsubscribe (RFC 8058) and a "see or delete my data" link.

``alerts.subscriptions.smtp.pool_size`` sessions are opened as they are first needed and
reused for every later mail (a mail server counts sessions, and a fresh TLS session per mail
would cost more than the mail); a session the server dropped is replaced at once. The blocking
``smtplib`` runs in worker threads, one session per thread at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import smtplib
import threading
from email.message import EmailMessage
from email.utils import format_datetime

from alerts.channels.email.message import message_id
from alerts.smtp import open_smtp
from alerts.subscriptions.senders import (
    WIB,
    DeliveryError,
    Message,
    Recipient,
    compose,
    languages_for,
)
from alerts.subscriptions.settings import SmtpSettings, SubscriptionSettings
from alerts.subscriptions.tokens import manage_url, unsubscribe_url

__all__ = ["EmailSender", "SmtpPool", "build_email"]

log = logging.getLogger(__name__)

_FOOTER = {
    "id-ID": ("Berhenti berlangganan", "Lihat atau hapus data saya"),
    "en-US": ("Unsubscribe", "See or delete my data"),
}


def build_email(settings: SubscriptionSettings, recipient: Recipient,
                message: Message) -> EmailMessage:
    """The mail: subscriber's language first, the links in the body and the headers."""
    subject, body = compose(message, recipient.language)
    unsubscribe = unsubscribe_url(settings, recipient.id)
    manage = manage_url(settings, recipient.id)
    footer = []
    for language in languages_for(recipient.language):
        stop_words, data_words = _FOOTER.get(language, _FOOTER["en-US"])
        footer += [f"{stop_words}: {unsubscribe}", f"{data_words}: {manage}"]
    mail = EmailMessage()
    mail["Subject"] = subject
    mail["From"] = settings.smtp.from_address
    mail["To"] = recipient.address
    mail["Date"] = format_datetime(message.views[-1].sent_at.astimezone(WIB))
    mail["Message-ID"] = message_id(message.idempotency_key,
                                    settings.smtp.from_address.rsplit("@", 1)[-1])
    # RFC 8058: mail clients show one "Unsubscribe" button that POSTs to the link.
    mail["List-Unsubscribe"] = f"<{unsubscribe}>"
    mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    mail["Auto-Submitted"] = "auto-generated"   # RFC 3834: no vacation replies
    mail["X-Kota-Alert"] = " ".join(view.identifier for view in message.views)
    mail.set_content(f"{body}\n\n----\n" + "\n".join(footer) + "\n")
    return mail


def _refusal(exc: smtplib.SMTPException) -> DeliveryError:
    """4xx transient, 5xx permanent (RFC 5321 4.2.1); the address is left out."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return DeliveryError(f"SMTP: recipient refused ({', '.join(map(str, codes))})",
                             retryable=any(code < 500 for code in codes))
    if isinstance(exc, smtplib.SMTPResponseException):
        return DeliveryError(f"SMTP {exc.smtp_code}", retryable=exc.smtp_code < 500)
    return DeliveryError(f"SMTP: {type(exc).__name__}")


class SmtpPool:
    """At most ``pool_size`` SMTP sessions, kept open and reused (blocking: call from
    threads)."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._password = self._read_password()
        self._idle: list[smtplib.SMTP] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(settings.pool_size)
        self.connections_opened = 0   # sessions opened in all (tests, logs)

    def _read_password(self) -> str | None:
        settings = self.settings
        if settings.password_file is not None:
            try:
                return settings.password_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ValueError(f"alerts.subscriptions.smtp.password_file "
                                 f"{settings.password_file}: {exc.strerror or exc}") from None
        return settings.password.get_secret_value() if settings.password is not None else None

    def _connect(self) -> smtplib.SMTP:
        settings = self.settings
        smtp = open_smtp(settings.host, settings.port, security=settings.security,
                         timeout_s=settings.timeout_s, username=settings.username,
                         password=self._password)
        with self._lock:
            self.connections_opened += 1
        return smtp

    def _take(self) -> smtplib.SMTP | None:
        with self._lock:
            return self._idle.pop() if self._idle else None

    def _give_back(self, smtp: smtplib.SMTP) -> None:
        with self._lock:
            self._idle.append(smtp)

    @staticmethod
    def _close(smtp: smtplib.SMTP | None) -> None:
        if smtp is not None:
            with contextlib.suppress(OSError):
                smtp.close()

    def send(self, mail: EmailMessage) -> None:
        where = f"{self.settings.host}:{self.settings.port}"
        with self._slots:
            smtp = self._take()
            # A reused session may have been dropped since: one fresh session is tried at once.
            for fresh in (smtp is None, True):
                try:
                    if smtp is None:
                        smtp = self._connect()
                    smtp.send_message(mail)
                except (smtplib.SMTPServerDisconnected, ConnectionError) as exc:
                    self._close(smtp)
                    smtp = None
                    if fresh:
                        raise DeliveryError(f"SMTP {where}: {type(exc).__name__}") from None
                    continue
                except smtplib.SMTPException as exc:
                    assert smtp is not None
                    try:
                        smtp.rset()
                        self._give_back(smtp)
                    except (smtplib.SMTPException, OSError):
                        self._close(smtp)
                    raise _refusal(exc) from None
                except OSError as exc:  # refused, unreachable, timed out, TLS
                    self._close(smtp)
                    raise DeliveryError(f"SMTP {where}: {type(exc).__name__}: "
                                        f"{exc.strerror or exc}") from None
                self._give_back(smtp)
                return

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for smtp in idle:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                smtp.quit()
            self._close(smtp)


class EmailSender:
    """Subscribers' mail through one :class:`SmtpPool`."""

    channel = "email"

    def __init__(self, settings: SubscriptionSettings) -> None:
        self.settings = settings
        self.pool = SmtpPool(settings.smtp)

    async def send(self, recipient: Recipient, message: Message) -> None:
        try:
            mail = build_email(self.settings, recipient, message)
        except RuntimeError as exc:   # no secret: no unsubscribe link, so no mail
            raise DeliveryError(str(exc), retryable=False) from None
        await asyncio.to_thread(self.pool.send, mail)

    async def close(self) -> None:
        await asyncio.to_thread(self.pool.close)
