"""The email channel: SMTP to operators' on-call lists, one persistent session.

The blocking ``smtplib`` runs in a worker thread (``asyncio.to_thread``) so the event loop never
waits on the mail server. The session is opened at the first mail, reused for the next ones and
opened again when the server has dropped it (servers close idle sessions after a few minutes,
RFC 5321 4.5.3.2). The message itself is built in message.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import smtplib
import threading
from email.message import EmailMessage
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from alerts.channels._contract import Channel, ChannelSettings, DeliveryError
from alerts.channels.email.message import build_message
from alerts.model import AlertView
from alerts.smtp import open_smtp

__all__ = ["EmailChannel", "EmailSettings"]

log = logging.getLogger(__name__)

Language = Literal["id-ID", "en-US"]   # alerts.model.LANGUAGES


def _both_languages() -> list[Language]:
    return ["id-ID", "en-US"]


_ADDRESS = r"^[^@\s<>,]+@[^@\s<>,]+$"


class EmailSettings(ChannelSettings):
    """An SMTP server and the on-call addresses every accepted alert version is mailed to."""

    type: Literal["email"] = "email"
    host: str = Field(min_length=1, description="SMTP server (the city's relay)")
    port: int = Field(default=587, ge=1, le=65535,
                      description="SMTP port: 587 with starttls, 465 with ssl, 25 with none")
    security: Literal["starttls", "ssl", "none"] = Field(
        default="starttls",
        description="starttls (upgrade a plain connection), ssl (TLS from the first byte) or "
                    "none (only to a relay on the same machine or a trusted network)")
    ca_file: Path | None = Field(default=None,
                                 description="CA bundle for the server's certificate; system "
                                             "CAs if unset")
    username: str | None = Field(default=None, description="SMTP login, if the server wants one")
    password: SecretStr | None = Field(default=None, description="SMTP password (with username)")
    password_file: Path | None = Field(
        default=None, description="File holding the SMTP password (instead of password); read "
                                  "at start")
    from_address: str = Field(pattern=_ADDRESS, description="Sender address (From:)")
    to: list[str] = Field(min_length=1, description="Recipients: the on-call list")
    languages: list[Language] = Field(
        default_factory=_both_languages, min_length=1,
        description="Languages in the order they appear; the subject is the first one's "
                    "headline")
    public_url: str | None = Field(
        default=None, pattern=r"^https?://",
        description="Base URL of the read API; the mail links <public_url>/api/v1/alerts/<id>")
    message_id_domain: str | None = Field(
        default=None, description="Right-hand side of Message-IDs; default from_address's domain")
    timeout_s: float = Field(default=30.0, gt=0, le=300,
                             description="Give up on one SMTP command after this many seconds")

    @field_validator("to")
    @classmethod
    def _addresses(cls, to: list[str]) -> list[str]:
        bad = [address for address in to if not re.match(_ADDRESS, address)]
        if bad:
            raise ValueError(f"to: not an email address: {', '.join(bad)}")
        return to

    @model_validator(mode="after")
    def _login(self) -> EmailSettings:
        if self.password is not None and self.password_file is not None:
            raise ValueError("password_file and password are both set: give one of them")
        has_password = self.password is not None or self.password_file is not None
        if (self.username is None) == has_password:
            raise ValueError("username and password (or password_file) go together: give both "
                             "or neither")
        if self.password is not None and "change-me" in self.password.get_secret_value():
            raise ValueError("password is still the change-me placeholder: set a real one")
        return self

    def resolved_password(self) -> str | None:
        """The password, read from ``password_file`` if that is given (``ValueError`` naming
        the setting when it cannot be read)."""
        if self.password_file is None:
            return self.password.get_secret_value() if self.password is not None else None
        try:
            return self.password_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"channels: {self.name}: password_file {self.password_file}: "
                             f"{exc.strerror or exc}") from None

    def domain(self) -> str:
        return self.message_id_domain or self.from_address.rsplit("@", 1)[1]


def _refusal(exc: smtplib.SMTPException) -> DeliveryError:
    """4xx replies are transient (RFC 5321 4.2.1), 5xx permanent: retry only the former."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        detail = "; ".join(f"{address}: {code} {text!r}"
                           for address, (code, text) in exc.recipients.items())
        return DeliveryError(f"every recipient refused: {detail}",
                             retryable=any(code < 500 for code in codes))
    if isinstance(exc, smtplib.SMTPResponseException):
        return DeliveryError(f"SMTP {exc.smtp_code} {exc.smtp_error!r}",
                             retryable=exc.smtp_code < 500)
    return DeliveryError(f"SMTP: {type(exc).__name__}: {exc}")


class EmailChannel(Channel[EmailSettings]):
    """Mails each accepted alert version to ``to``; one SMTP session, reused."""

    type = "email"
    settings_model = EmailSettings

    def __init__(self, settings: EmailSettings) -> None:
        super().__init__(settings)
        self._password = settings.resolved_password()   # a wrong password file fails at start
        self._smtp: smtplib.SMTP | None = None
        self._lock = threading.Lock()   # the session is used by one thread at a time
        self.connections_opened = 0     # how many sessions were opened (tests, logs)

    async def send(self, view: AlertView, idempotency_key: str) -> None:
        settings = self.settings
        message = build_message(view, idempotency_key, channel=settings.name,
                                from_address=settings.from_address, to=settings.to,
                                languages=list(settings.languages), domain=settings.domain(),
                                public_url=settings.public_url)
        await asyncio.to_thread(self._send_blocking, message)

    def _connect(self) -> smtplib.SMTP:
        settings = self.settings
        smtp = open_smtp(settings.host, settings.port, security=settings.security,
                         timeout_s=settings.timeout_s, username=settings.username,
                         password=self._password, ca_file=settings.ca_file)
        self.connections_opened += 1
        return smtp

    def _send_blocking(self, message: EmailMessage) -> None:
        where = f"{self.settings.host}:{self.settings.port}"
        with self._lock:
            # A reused session may have been dropped by the server since the last mail: then
            # the first try fails with a disconnect and one fresh session is tried at once.
            for fresh in (self._smtp is None, True):
                try:
                    if self._smtp is None:
                        self._smtp = self._connect()
                    refused = self._smtp.send_message(message)
                except (smtplib.SMTPServerDisconnected, ConnectionError) as exc:
                    self._drop()
                    if fresh:
                        raise DeliveryError(f"SMTP {where}: {exc or 'disconnected'}") from None
                    continue
                except smtplib.SMTPException as exc:
                    self._reset()
                    raise _refusal(exc) from None
                except OSError as exc:  # refused, unreachable, timed out, TLS failure
                    self._drop()
                    raise DeliveryError(f"SMTP {where}: {type(exc).__name__}: {exc}") from None
                if refused:
                    log.warning("email channel %s: %s refused %s (the others got %s)",
                                self.name, where, ", ".join(sorted(refused)),
                                message["Message-ID"])
                return

    def _reset(self) -> None:
        """After a refused mail: RSET so the session can carry the next one."""
        if self._smtp is None:
            return
        try:
            self._smtp.rset()
        except (smtplib.SMTPException, OSError):
            self._drop()

    def _drop(self) -> None:
        if self._smtp is not None:
            with contextlib.suppress(OSError):
                self._smtp.close()
            self._smtp = None

    def _quit(self) -> None:
        with self._lock:
            if self._smtp is not None:
                with contextlib.suppress(smtplib.SMTPException, OSError):
                    self._smtp.quit()
                self._drop()

    async def close(self) -> None:
        await asyncio.to_thread(self._quit)
