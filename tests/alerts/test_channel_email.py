"""The email channel against a real SMTP server (aiosmtpd on loopback): one session for several
mails, a fresh one after the server dropped it, Message-ID/References, refusals, the words."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from alert_samples import flood_view, resolved
from pydantic import ValidationError

from alerts.channels import DeliveryError
from alerts.channels.email import EmailChannel, EmailSettings
from alerts.model import AlertView
from alerts.outbox import idempotency_key
from devstack.localstack import free_port


@dataclass
class Mail:
    peer: tuple[str, int]       # the client's address and port: one per SMTP session
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


@dataclass
class Sink:
    """aiosmtpd handler: keeps every mail; refuses recipients listed in ``refuse``."""

    mails: list[Mail] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)

    async def handle_RCPT(self, _server: Any, _session: Any, envelope: Any, address: str,
                          _options: list[str]) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, _server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.mails.append(Mail(tuple(session.peer), envelope.mail_from, list(envelope.rcpt_tos),
                               message))
        return "250 Message accepted"


@pytest.fixture
def smtp() -> Iterator[tuple[Controller, Sink]]:
    sink = Sink()
    # timeout: the server drops a session idle this long (as real servers do after minutes).
    controller = Controller(sink, hostname="127.0.0.1", port=free_port(), timeout=1)
    controller.start()
    yield controller, sink
    controller.stop()


def _channel(port: int, **extra: Any) -> EmailChannel:
    values: dict[str, Any] = {
        "name": "oncall-mail", "host": "127.0.0.1", "port": port, "security": "none",
        "from_address": "alerts@kota.example.id",
        "to": ["piket@bpbd.example.id", "ops@kota.example.id"],
        "public_url": "https://kota.example.id", **extra}
    return EmailChannel(EmailSettings.model_validate(values))


def _send(channel: EmailChannel, *views: AlertView, pause_s: float = 0.0) -> None:
    async def go() -> None:
        try:
            for index, view in enumerate(views):
                if index and pause_s:
                    await asyncio.sleep(pause_s)
                await channel.send(view, idempotency_key(view, channel.name))
        finally:
            await channel.close()

    asyncio.run(go())


def test_one_session_carries_several_mails_threaded(smtp: tuple[Controller, Sink]) -> None:
    controller, sink = smtp
    channel = _channel(controller.port)
    first, update = flood_view(version=1), flood_view(version=2, level="Siaga 1 (Awas)")
    _send(channel, first, update, resolved(first, 3))
    assert len(sink.mails) == 3
    assert len({mail.peer for mail in sink.mails}) == 1, "one SMTP session for all three"
    assert channel.connections_opened == 1
    root = "<kota-jakarta-alert-1-v1-oncall-mail@kota.example.id>"
    assert sink.mails[0].message["Message-ID"] == root
    assert sink.mails[0].message["References"] is None
    for version, mail in enumerate(sink.mails[1:], start=2):
        assert mail.message["Message-ID"] == \
            f"<kota-jakarta-alert-1-v{version}-oncall-mail@kota.example.id>"
        assert mail.message["In-Reply-To"] == root
        assert mail.message["References"] == root
    assert sink.mails[0].rcpt_tos == ["piket@bpbd.example.id", "ops@kota.example.id"]
    assert sink.mails[0].mail_from == "alerts@kota.example.id"


@pytest.mark.slow
def test_a_dropped_session_is_opened_again(smtp: tuple[Controller, Sink]) -> None:
    controller, sink = smtp
    channel = _channel(controller.port)
    # The server times the idle session out after 1 s; the second mail finds it closed.
    _send(channel, flood_view(version=1), flood_view(version=2), pause_s=2.0)
    assert [mail.message["Message-ID"] for mail in sink.mails] == [
        "<kota-jakarta-alert-1-v1-oncall-mail@kota.example.id>",
        "<kota-jakarta-alert-1-v2-oncall-mail@kota.example.id>"]
    assert len({mail.peer for mail in sink.mails}) == 2
    assert channel.connections_opened == 2


def test_the_words_subject_languages_time_link(smtp: tuple[Controller, Sink]) -> None:
    controller, sink = smtp
    _send(_channel(controller.port), flood_view())
    message = sink.mails[0].message
    assert message["Subject"] == "Pintu Air Manggarai Siaga 2"
    assert message["Auto-Submitted"] == "auto-generated"
    body = message.get_content()
    indonesian, english = body.index("Tinggi muka air 850 cm"), body.index("Water level 850 cm")
    assert indonesian < english
    for words in ("Yang harus dilakukan:", "Siapkan evakuasi", "What to do:",
                  "Wilayah: Ciliwung downstream of Manggarai", "Kecamatan: Tebet, Matraman",
                  # 03:20 UTC is 10:20 in Jakarta (UTC+7)
                  "Waktu: 2026-01-15 10:20 WIB", "Time: 2026-01-15 10:20 WIB",
                  "https://kota.example.id/api/v1/alerts/1"):
        assert words in body


def test_english_first_and_a_drill_says_so(smtp: tuple[Controller, Sink]) -> None:
    controller, sink = smtp
    _send(_channel(controller.port, languages=["en-US", "id-ID"], exercises=True),
          flood_view(cap_status="Exercise"))
    message = sink.mails[0].message
    assert message["Subject"] == "[EXERCISE] Manggarai floodgate at Siaga 2"
    body = message.get_content()
    assert body.index("Water level") < body.index("Tinggi muka air")
    assert "LATIHAN — bukan kejadian nyata" in body


@pytest.mark.parametrize(("reply", "retryable"), [("550 5.1.1 no such user", False),
                                                  ("450 4.2.1 mailbox busy", True)])
def test_a_refused_recipient(smtp: tuple[Controller, Sink], reply: str, retryable: bool) -> None:
    controller, sink = smtp
    sink.refuse = {"piket@bpbd.example.id": reply}
    channel = _channel(controller.port, to=["piket@bpbd.example.id"])
    with pytest.raises(DeliveryError) as failure:
        _send(channel, flood_view())
    assert failure.value.retryable is retryable
    assert reply.split()[0] in str(failure.value)


def test_server_down_is_retryable_then_delivered_when_up() -> None:
    port = free_port()
    channel = _channel(port)
    with pytest.raises(DeliveryError) as failure:
        _send(channel, flood_view())
    assert failure.value.retryable
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        deadline = time.monotonic() + 10
        _send(channel, flood_view())
        assert time.monotonic() < deadline
    finally:
        controller.stop()
    assert len(sink.mails) == 1


@pytest.mark.parametrize(("extra", "words"), [
    ({"to": []}, "to"),
    ({"to": ["not an address"]}, "not an email address"),
    ({"username": "kota"}, "username and password (or password_file) go together"),
    ({"password": "x", "password_file": "/p"}, "both set"),
    ({"security": "tls"}, "security"),
    ({"public_url": "kota.example.id"}, "public_url"),
])
def test_bad_settings_name_the_setting(extra: dict[str, Any], words: str) -> None:
    values: dict[str, Any] = {"name": "m", "host": "smtp.example.id",
                              "from_address": "a@example.id", "to": ["b@example.id"], **extra}
    with pytest.raises(ValidationError) as error:
        EmailSettings.model_validate(values)
    assert words in str(error.value)


def test_starttls_and_login(certificates: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """The settings a city relay needs: STARTTLS verified against a CA, then a login whose
    password comes from a file."""
    ca_file, cert_file, key_file = certificates
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(str(cert_file), str(key_file))
    logins: list[tuple[str, str]] = []

    def authenticator(_server: Any, _session: Any, _envelope: Any, _mechanism: str,
                      auth_data: Any) -> AuthResult:
        login, password = auth_data.login.decode(), auth_data.password.decode()
        logins.append((login, password))
        return AuthResult(success=(login, password) == ("kota-alerts", "s3cret-relay"),
                          handled=False)   # aiosmtpd then answers 535 itself

    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port(),
                            tls_context=server_tls, require_starttls=True,
                            authenticator=authenticator, auth_required=True)
    controller.start()
    password_file = tmp_path / "smtp-password"
    password_file.write_text("s3cret-relay\n", encoding="utf-8")
    try:
        _send(_channel(controller.port, security="starttls", ca_file=str(ca_file),
                       username="kota-alerts", password_file=str(password_file)),
              flood_view())
        wrong = tmp_path / "wrong"
        wrong.write_text("not-it", encoding="utf-8")
        with pytest.raises(DeliveryError) as failure:
            _send(_channel(controller.port, security="starttls", ca_file=str(ca_file),
                           username="kota-alerts", password_file=str(wrong), timeout_s=5),
                  flood_view())
    finally:
        controller.stop()
    assert len(sink.mails) == 1
    assert logins[0] == ("kota-alerts", "s3cret-relay")
    assert "535" in str(failure.value) and not failure.value.retryable
