"""Email to subscribers: one pool of persistent SMTP sessions, each mail with its one-click
unsubscribe (RFC 8058) and a "see or delete my data" link.

``alerts.subscriptions.smtp.pool_size`` sessions are opened as they are first needed and
reused for every later mail (a mail server counts sessions, and a fresh TLS session per mail
would cost more than the mail); a session the server dropped is replaced at once. The blocking
``smtplib`` runs in worker threads: a batch is drained by up to ``pool_size`` threads, each
holding one session for the whole batch (one thread hand-off per session, not per mail).

Building a mail with the ``email`` package's header registry cost about 2.5 ms of CPU (kota
bench notify), more than sending it; so the part every recipient of a message shares (subject,
date, the body in both languages) is built and encoded once per message and language, and each
recipient's mail is that plus its own headers (To, Message-ID, List-Unsubscribe) and its
quoted-printable footer with its links. An address that is not plain ASCII takes the slow,
general path (``build_email``, SMTPUTF8 when the server offers it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import smtplib
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from email import policy, quoprimime
from email.message import EmailMessage
from email.utils import format_datetime

from alerts.channels.email.message import message_id
from alerts.smtp import open_smtp
from alerts.subscriptions.senders import (
    WIB,
    DeliveryError,
    Feed,
    Item,
    Message,
    OnSent,
    Outcome,
    Recipient,
    Threads,
    compose,
    drain_in_threads,
    languages_for,
)
from alerts.subscriptions.settings import SmtpSettings, SubscriptionSettings
from alerts.subscriptions.tokens import manage_url, unsubscribe_url

__all__ = ["EmailSender", "RawMail", "SmtpPool", "build_email", "fast_mail"]

log = logging.getLogger(__name__)

_FOOTER = {
    "id-ID": ("Berhenti berlangganan", "Lihat atau hapus data saya"),
    "en-US": ("Unsubscribe", "See or delete my data"),
}


def _footer(settings: SubscriptionSettings, recipient: Recipient) -> tuple[str, str]:
    """(the unsubscribe link, the footer's lines with both links in every language)."""
    unsubscribe = unsubscribe_url(settings, recipient.id)
    manage = manage_url(settings, recipient.id)
    footer = []
    for language in languages_for(recipient.language):
        stop_words, data_words = _FOOTER.get(language, _FOOTER["en-US"])
        footer += [f"{stop_words}: {unsubscribe}", f"{data_words}: {manage}"]
    return unsubscribe, "\n".join(footer) + "\n"


def build_email(settings: SubscriptionSettings, recipient: Recipient,
                message: Message) -> EmailMessage:
    """The mail: subscriber's language first, the links in the body and the headers (the
    general path; :func:`fast_mail` builds the same mail from a shared part)."""
    subject, body = compose(message, recipient.language)
    unsubscribe, footer = _footer(settings, recipient)
    mail = EmailMessage()
    mail["Subject"] = subject
    mail["From"] = settings.smtp.from_address
    mail["To"] = recipient.address
    mail["Date"] = format_datetime(message.views[-1].sent_at.astimezone(WIB))
    mail["Message-ID"] = message_id(message.idempotency_key, _domain(settings))
    # RFC 8058: mail clients show one "Unsubscribe" button that POSTs to the link.
    mail["List-Unsubscribe"] = f"<{unsubscribe}>"
    mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    mail["Auto-Submitted"] = "auto-generated"   # RFC 3834: no vacation replies
    mail["X-Kota-Alert"] = " ".join(view.identifier for view in message.views)
    mail.set_content(f"{body}\n\n----\n{footer}")
    return mail


@dataclass(frozen=True)
class RawMail:
    """A mail ready for ``SMTP.sendmail``: envelope and CRLF bytes."""

    sender: str
    recipient: str
    data: bytes


@dataclass(frozen=True)
class _Shared:
    """What every recipient of one message in one language gets: the headers but theirs, and
    the body up to the footer, quoted-printable, CRLF."""

    views: tuple[object, ...]   # kept so the ids in the cache key stay theirs
    head: bytes
    body: bytes


def _shared(settings: SubscriptionSettings, message: Message, language: str) -> _Shared:
    subject, body = compose(message, language)
    part = EmailMessage()
    part["Subject"] = subject
    part["From"] = settings.smtp.from_address
    part["Date"] = format_datetime(message.views[-1].sent_at.astimezone(WIB))
    part["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    part["Auto-Submitted"] = "auto-generated"   # RFC 3834: no vacation replies
    part["X-Kota-Alert"] = " ".join(view.identifier for view in message.views)
    # Quoted-printable always: each recipient's footer is encoded alone and appended, which
    # QP allows (it encodes line by line); the body's own lines are over 78 characters.
    part.set_content(f"{body}\n\n----\n", cte="quoted-printable")
    head, _, encoded = part.as_bytes(policy=policy.SMTP).partition(b"\r\n\r\n")
    return _Shared(message.views, head + b"\r\n", encoded)


def fast_mail(settings: SubscriptionSettings, shared: _Shared, recipient: Recipient,
              message: Message) -> RawMail:
    """One recipient's mail from the shared part (ASCII addresses only)."""
    unsubscribe, footer = _footer(settings, recipient)
    mine = (f"To: {recipient.address}\r\n"
            f"Message-ID: {message_id(message.idempotency_key, _domain(settings))}\r\n"
            # RFC 2369/8058: the URL in angle brackets, never an encoded-word.
            f"List-Unsubscribe: <{unsubscribe}>\r\n").encode("ascii")
    tail = quoprimime.body_encode(footer, 76, eol="\r\n").encode("ascii")
    return RawMail(settings.smtp.from_address, recipient.address,
                   mine + shared.head + b"\r\n" + shared.body + tail)


def _domain(settings: SubscriptionSettings) -> str:
    return settings.smtp.from_address.rsplit("@", 1)[-1]


def _plain(address: str) -> bool:
    """An address the fast path may write into a header as it is."""
    return address.isascii() and all(32 < ord(char) < 127 for char in address)


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

    @contextlib.contextmanager
    def session(self) -> Iterator[_Session]:
        """One slot of the pool, held while many mails go out (blocking)."""
        with self._slots:
            session = _Session(self, self._take())
            try:
                yield session
            finally:
                if session.smtp is not None:
                    self._give_back(session.smtp)

    def send(self, mail: EmailMessage | RawMail) -> None:
        with self.session() as session:
            session.send(mail)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for smtp in idle:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                smtp.quit()
            self._close(smtp)


class _Session:
    """A pooled SMTP session in one thread's hands (opened at its first mail)."""

    def __init__(self, pool: SmtpPool, smtp: smtplib.SMTP | None) -> None:
        self.pool = pool
        self.smtp = smtp

    def send(self, mail: EmailMessage | RawMail) -> None:
        pool = self.pool
        where = f"{pool.settings.host}:{pool.settings.port}"
        smtp, self.smtp = self.smtp, None
        # A reused session may have been dropped since: one fresh session is tried at once.
        for fresh in (smtp is None, True):
            try:
                if smtp is None:
                    smtp = pool._connect()
                if isinstance(mail, RawMail):
                    smtp.sendmail(mail.sender, [mail.recipient], mail.data)
                else:
                    smtp.send_message(mail)
            except (smtplib.SMTPServerDisconnected, ConnectionError) as exc:
                pool._close(smtp)
                smtp = None
                if fresh:
                    raise DeliveryError(f"SMTP {where}: {type(exc).__name__}") from None
                continue
            except smtplib.SMTPException as exc:
                assert smtp is not None
                try:
                    smtp.rset()
                    self.smtp = smtp
                except (smtplib.SMTPException, OSError):
                    pool._close(smtp)
                raise _refusal(exc) from None
            except OSError as exc:  # refused, unreachable, timed out, TLS
                pool._close(smtp)
                raise DeliveryError(f"SMTP {where}: {type(exc).__name__}: "
                                    f"{exc.strerror or exc}") from None
            self.smtp = smtp
            return


_SHARED_KEPT = 64   # messages × languages whose shared part is kept


class EmailSender:
    """Subscribers' mail through one :class:`SmtpPool`."""

    channel = "email"

    def __init__(self, settings: SubscriptionSettings) -> None:
        self.settings = settings
        self.pool = SmtpPool(settings.smtp)
        self.threads = Threads(settings.smtp.pool_size, "smtp")
        self._shared: OrderedDict[tuple[tuple[int, ...], str], _Shared] = OrderedDict()
        self._shared_lock = threading.Lock()

    def mail(self, recipient: Recipient, message: Message) -> EmailMessage | RawMail:
        """The mail for one recipient (DeliveryError if it cannot be made)."""
        try:
            if not _plain(recipient.address):
                return build_email(self.settings, recipient, message)
            key = (tuple(id(view) for view in message.views), recipient.language)
            with self._shared_lock:
                shared = self._shared.get(key)
            if shared is None or any(a is not b for a, b in zip(shared.views, message.views,
                                                                strict=True)):
                shared = _shared(self.settings, message, recipient.language)
                with self._shared_lock:
                    self._shared[key] = shared
                    while len(self._shared) > _SHARED_KEPT:
                        self._shared.popitem(last=False)
            return fast_mail(self.settings, shared, recipient, message)
        except RuntimeError as exc:   # no secret: no unsubscribe link, so no mail
            raise DeliveryError(str(exc), retryable=False) from None

    def _drain(self, feed: Feed[Item], outcomes: list[Outcome],
               on_sent: OnSent | None) -> None:
        with self.pool.session() as session:
            while (taken := feed.take()) is not None:
                index, (recipient, message) = taken
                try:
                    session.send(self.mail(recipient, message))
                except DeliveryError as exc:
                    outcomes[index] = exc
                else:
                    outcomes[index] = None
                    if on_sent is not None:
                        on_sent(index)

    async def send(self, recipient: Recipient, message: Message) -> None:
        mail = self.mail(recipient, message)
        await asyncio.to_thread(self.pool.send, mail)

    async def send_batch(self, items: Sequence[Item],
                         on_sent: OnSent | None = None) -> list[Outcome]:
        """Up to ``smtp.pool_size`` sessions at once, each sending its share in turn."""
        return await drain_in_threads(items, self.threads, self._drain, on_sent)

    async def close(self) -> None:
        await asyncio.to_thread(self.threads.close)
        await asyncio.to_thread(self.pool.close)
