"""Subscriptions through the API against real services: a real SQLite database, a real SMTP
server (aiosmtpd on loopback) for the confirmation mail, a real HTTP receiver for the webhook
challenge. Double opt-in, the same answer for a known address, the limits, one-click
unsubscribe, a subscriber's own data and its deletion, operators' agency groups, masked lists,
the dead-letter list, and no address in any log line."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from aiosmtpd.controller import Controller
from alert_samples import flood_view, insert_alert
from api_data import api_registry, make_settings
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.settings import AlertsSettings
from alerts.subscriptions import tokens
from alerts.subscriptions.registry import SubscriptionRegistry
from alerts.subscriptions.settings import SubscriptionSettings
from api.main import create_app
from devstack.localstack import LocalService, free_port
from store.db import ensure_schema, make_engine
from store.keys import KeyStore
from store.settings import DatabaseSettings
from store.subscription_models import Notification, Subscriber

SECRET = "x" * 48
SITI = "Siti.Rahma@Example.org"
WAIT_S = 10


@dataclass
class MailSink:
    """aiosmtpd handler keeping every mail."""

    mails: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.mails.append(message)
        return "250 Message accepted"

    def wait_for(self, count: int) -> list[EmailMessage]:
        deadline = time.monotonic() + WAIT_S
        while len(self.mails) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.mails) >= count, f"{len(self.mails)} mails, expected {count}"
        return self.mails


class Echo:
    """An HTTP receiver on loopback that answers a challenge (or, with ``echo`` False, does
    not)."""

    def __init__(self, echo: bool) -> None:
        self.port = free_port()
        self.bodies: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.bodies.append(body)
                answer = json.dumps({"challenge": body["challenge"] if echo else "no"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/Hook"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@dataclass
class Env:
    client: TestClient
    sink: MailSink
    registry: SubscriptionRegistry
    url: str
    keys: dict[str, str]

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}

    def row(self, subscriber_id: int) -> Subscriber | None:
        with Session(self.registry.engine, expire_on_commit=False) as session:
            return session.get(Subscriber, subscriber_id)

    def rows(self) -> list[Subscriber]:
        with Session(self.registry.engine, expire_on_commit=False) as session:
            return list(session.scalars(select(Subscriber).order_by(Subscriber.id)))


def _subscription_settings(smtp_port: int, **signup: Any) -> SubscriptionSettings:
    return SubscriptionSettings.model_validate({
        "secret": SECRET, "public_url": "http://testserver",
        "smtp": {"host": "127.0.0.1", "port": smtp_port, "timeout_s": 5},
        "signup": {"per_client_per_hour": 1000, "per_address_per_day": 2, **signup}})


@pytest.fixture(name="env")
def env_fixture(influxdb: LocalService, database: str, tmp_path: Path) -> Iterator[Env]:
    sink = MailSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    url = f"sqlite:///{tmp_path / 'kota.db'}"
    engine = make_engine(url)
    ensure_schema(engine, migrate=True)
    store = KeyStore(engine)
    keys = {role: store.create(role, role, expires_in=None, created_by="test")[1]
            for role in ("operator", "admin")}
    subscriptions = _subscription_settings(controller.port)
    alerts_settings = AlertsSettings.model_validate(
        {"database": {"url": url}, "subscriptions": subscriptions.model_dump(mode="json")
         | {"secret": SECRET}})
    settings = make_settings(influxdb, database).model_copy(
        update={"database": DatabaseSettings(url=url, migrate_on_start=False)})
    try:
        with TestClient(create_app(settings, registry=api_registry(),
                                   alerts_settings=alerts_settings)) as client:
            yield Env(client, sink, SubscriptionRegistry(engine, subscriptions), url, keys)
    finally:
        controller.stop()
        engine.dispose()


def _sign_up(env: Env, **changes: Any) -> Any:
    body = {"address": SITI, "districts": ["Jatinegara"], "hazards": ["flood", "air"],
            "min_severity": "Severe", "language": "id-ID", **changes}
    return env.client.post("/api/v1/subscriptions", json=body)


def _link(mail: EmailMessage) -> str:
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    found = re.search(r"http://testserver(/api/v1/subscriptions/confirm\?token=\S+)", text)
    assert found, text
    return found.group(1)


def _wait(condition: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert condition(), what


def test_email_double_opt_in(env: Env) -> None:
    answer = _sign_up(env)
    assert answer.status_code == 202, answer.text
    [mail] = env.sink.wait_for(1)
    assert mail["To"] == SITI.lower() and "Konfirmasi" in mail["Subject"]
    [row] = env.rows()
    assert row.status == "pending" and row.address == SITI.lower()
    assert row.districts == ["Jatinegara"] and row.confirm_hash
    confirmed = env.client.get(_link(mail), headers={"Accept": "text/html"})
    assert confirmed.status_code == 200 and "Langganan dikonfirmasi" in confirmed.text
    assert "script" not in confirmed.text
    row2 = env.row(row.id)
    assert row2 is not None and row2.status == "active" and row2.confirm_hash is None
    # The link works once more (a second click) but says nothing new; nothing else was mailed.
    assert env.client.get(_link(mail)).json() == {"status": "active", "language": "id-ID"}
    time.sleep(0.3)
    assert len(env.sink.mails) == 1


def test_english_confirmation(env: Env) -> None:
    assert _sign_up(env, language="en-US").status_code == 202
    [mail] = env.sink.wait_for(1)
    assert "Confirm" in mail["Subject"]
    page = env.client.get(_link(mail), headers={"Accept": "text/html"})
    assert "Subscription confirmed" in page.text and 'lang="en"' in page.text


def test_a_known_address_gets_the_same_answer_and_a_daily_limit(env: Env) -> None:
    first = _sign_up(env)
    env.client.get(_link(env.sink.wait_for(1)[0]))     # now active
    again = _sign_up(env, districts=["Tebet"])
    assert again.status_code == first.status_code == 202
    assert again.content == first.content
    mails = env.sink.wait_for(2)
    # A stranger's sign-up of a known address changes nothing until it is confirmed.
    active = [r for r in env.rows() if r.status == "active"]
    assert [r.districts for r in active] == [["Jatinegara"]]
    env.client.get(_link(mails[1]))
    [only] = env.rows()
    assert only.status == "active" and only.districts == ["Tebet"]
    # per_address_per_day is 2: a third sign-up today is answered the same, and mails nothing.
    third = _sign_up(env, districts=["Menteng"])
    assert third.content == first.content
    time.sleep(0.5)
    assert len(env.sink.mails) == 2
    assert len(env.rows()) == 1


def test_per_client_limit(influxdb: LocalService, database: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'kota.db'}"
    ensure_schema(make_engine(url), migrate=True)
    subscriptions = _subscription_settings(free_port(), per_client_per_hour=2)
    alerts_settings = AlertsSettings.model_validate(
        {"database": {"url": url},
         "subscriptions": subscriptions.model_dump(mode="json") | {"secret": SECRET}})
    settings = make_settings(influxdb, database).model_copy(
        update={"database": DatabaseSettings(url=url, migrate_on_start=False)})
    with TestClient(create_app(settings, registry=api_registry(),
                               alerts_settings=alerts_settings)) as client:
        body = {"address": "a@example.org", "districts": ["Tebet"], "hazards": ["rain"]}
        statuses = [client.post("/api/v1/subscriptions", json=body).status_code
                    for _ in range(3)]
        assert statuses == [202, 202, 429]
        refused = client.post("/api/v1/subscriptions", json=body)
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert "per_client_per_hour" in refused.json()["detail"]
        assert int(refused.headers["retry-after"]) > 0


@pytest.mark.parametrize(("changes", "words"), [
    ({"districts": ["Atlantis"]}, "districts: unknown kecamatan 'Atlantis'"),
    ({"districts": [], "kelurahan": ["Nowhere"]}, "kelurahan: unknown kelurahan"),
    ({"districts": []}, "choose a kecamatan or kelurahan, or a point"),
    ({"districts": [], "lat": -6.2, "lon": 106.8, "radius_km": 11}, "radius_km"),
    ({"districts": [], "lat": -6.2, "lon": 106.8}, "radius_km: a point needs"),
    ({"hazards": ["device"]}, "hazards"),
    ({"min_severity": "Awful"}, "min_severity"),
    ({"language": "fr-FR"}, "language"),
    ({"address": "not-an-email"}, "address: not an email address"),
    ({"channel": "webhook", "address": "ftp://example.org/x"}, "http:// or https://"),
    ({"channel": "apprise", "address": "tgram://123:abc/-100"}, "channel"),
    ({"quiet_start_h": 22}, "quiet hours need a start and an end"),
])
def test_bad_sign_ups_name_the_field(env: Env, changes: dict[str, Any], words: str) -> None:
    answer = _sign_up(env, **changes)
    assert answer.status_code == 422, answer.text
    assert words in answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert env.rows() == []


def test_point_and_radius_and_kelurahan(env: Env) -> None:
    assert _sign_up(env, districts=[], kelurahan=["Tebet"], lat=-6.23, lon=106.85,
                    radius_km=2.5, quiet_start_h=22, quiet_end_h=6).status_code == 202
    _wait(lambda: len(env.rows()) == 1, "a row")
    [row] = env.rows()
    assert (row.kelurahan, row.lat, row.lon, row.radius_km) == (["Tebet"], -6.23, 106.85, 2.5)
    assert (row.quiet_start_h, row.quiet_end_h) == (22, 6)


def test_webhook_is_active_only_after_it_echoes_the_challenge(env: Env) -> None:
    echo, silent = Echo(echo=True), Echo(echo=False)
    try:
        assert _sign_up(env, channel="webhook", address=echo.url).status_code == 202
        assert _sign_up(env, channel="webhook", address=silent.url).status_code == 202
        _wait(lambda: len(echo.bodies) == 1 and len(silent.bodies) == 1, "two challenges")
        assert echo.bodies[0]["type"] == "kota.subscription.challenge"
        by_address = {}
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            by_address = {r.address: r.status for r in env.rows()}
            if by_address.get(echo.url) == "active":
                break
            time.sleep(0.05)
        assert by_address == {echo.url: "active", silent.url: "pending"}
        assert env.sink.mails == []     # a webhook gets no mail
    finally:
        echo.stop()
        silent.stop()


def _active(env: Env) -> int:
    _sign_up(env)
    env.client.get(_link(env.sink.wait_for(1)[0]))
    [row] = env.rows()
    return row.id


def test_one_click_unsubscribe(env: Env) -> None:
    subscriber_id = _active(env)
    link = tokens.unsubscribe_url(env.registry.settings, subscriber_id)
    path = link.removeprefix("http://testserver")
    page = env.client.get(path, headers={"Accept": "text/html"})
    assert page.status_code == 200 and "<form method=\"post\"" in page.text
    row = env.row(subscriber_id)
    assert row is not None and row.status == "active"      # GET changes nothing
    # RFC 8058: the mail provider POSTs List-Unsubscribe=One-Click.
    done = env.client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200 and done.json() == {"status": "unsubscribed"}
    row = env.row(subscriber_id)
    assert row is not None and row.status == "unsubscribed"
    assert row.address == "" and row.address_hash == ""    # erased at once
    assert env.client.post(path).status_code == 200         # idempotent
    html = env.client.post(path, headers={"Accept": "text/html"})
    assert "Berhenti berlangganan" in html.text


def test_bad_links_are_refused(env: Env) -> None:
    subscriber_id = _active(env)
    unsubscribe = tokens.unsubscribe_token(env.registry.settings, subscriber_id)
    for path, purpose in (("/api/v1/subscriptions/confirm", "confirm"),
                          ("/api/v1/subscriptions/me", "manage")):
        answer = env.client.get(path, params={"token": unsubscribe})
        assert answer.status_code == 400 and f"not '{purpose}'" in answer.text
    forged = unsubscribe[:-3] + ("AAA" if not unsubscribe.endswith("AAA") else "BBB")
    refused = env.client.post("/api/v1/subscriptions/unsubscribe", params={"token": forged})
    assert refused.status_code == 400 and "signature" in refused.json()["detail"]
    row = env.row(subscriber_id)
    assert row is not None and row.status == "active"


def test_see_and_delete_my_data(env: Env) -> None:
    subscriber_id = _active(env)
    alert = flood_view(alert_id=41)
    insert_alert(env.registry.engine, alert)
    now = datetime.now(UTC)
    with Session(env.registry.engine) as session, session.begin():
        session.add(Notification(subscriber_id=subscriber_id, alert_id=41, version=1,
                                 channel="email", severity="Severe", payload={}, status="sent",
                                 attempts=1, next_attempt_at=now, created_at=now, sent_at=now))
    token = parse_qs(urlsplit(tokens.manage_url(env.registry.settings, subscriber_id))
                     .fragment.replace("kelola", "token"))["token"][0]
    mine = env.client.get("/api/v1/subscriptions/me", params={"token": token})
    assert mine.status_code == 200, mine.text
    data = mine.json()
    assert data["address"] == SITI.lower() and data["districts"] == ["Jatinegara"]
    assert data["hazards"] == ["flood", "air"] and data["status"] == "active"
    assert [n["alert_id"] for n in data["notifications"]] == [41]
    assert any("address_hash" in line for line in data["stored_also"])
    gone = env.client.delete("/api/v1/subscriptions/me", params={"token": token})
    assert gone.status_code == 204
    assert env.rows() == []
    with Session(env.registry.engine) as session:
        assert session.scalars(select(Notification)).all() == []
    assert env.client.get("/api/v1/subscriptions/me", params={"token": token}).status_code == 404


def test_a_token_for_an_earlier_subscriber_with_the_same_id_is_refused(env: Env) -> None:
    subscriber_id = _active(env)
    old = tokens.manage_token(env.registry.settings, subscriber_id,
                              now=datetime.now(UTC) - timedelta(hours=1))
    assert env.client.get("/api/v1/subscriptions/me", params={"token": old}).status_code == 404


def test_operators_agency_groups_masked_lists_and_dead_letters(env: Env) -> None:
    _active(env)
    operator, admin = env.headers("operator"), env.headers("admin")
    group = {"channel": "apprise", "address": "json://127.0.0.1:9/bpbd-jaktim",
             "label": "BPBD Jakarta Timur", "districts": ["Jatinegara", "Kramat Jati"],
             "hazards": ["flood"], "min_severity": "Moderate"}
    assert env.client.post("/api/v1/subscriptions/agency", json=group).status_code == 401
    made = env.client.post("/api/v1/subscriptions/agency", json=group, headers=operator)
    assert made.status_code == 201, made.text
    assert made.json()["status"] == "active" and made.json()["label"] == "BPBD Jakarta Timur"
    assert made.json()["address"] == "json://***" and made.json()["created_by"] == "key 1 " \
        "(operator)"
    bad = env.client.post("/api/v1/subscriptions/agency", headers=operator,
                          json={**group, "address": "nonsense://x"})
    assert bad.status_code == 422 and "apprise" in bad.json()["detail"]
    listed = env.client.get("/api/v1/subscriptions", headers=operator).json()["subscribers"]
    assert [s["address"] for s in listed] == ["s***@example.org", "json://***"]
    assert SITI.lower() not in env.client.get("/api/v1/subscriptions", headers=operator).text
    full = env.client.get("/api/v1/subscriptions", headers=admin).json()["subscribers"]
    assert [s["address"] for s in full] == [SITI.lower(), group["address"]]
    assert env.client.get("/api/v1/subscriptions").status_code == 401
    # The dead-letter list: failed notifications, the address in an SMTP error masked.
    insert_alert(env.registry.engine, flood_view(alert_id=7))
    now = datetime.now(UTC)
    with Session(env.registry.engine) as session, session.begin():
        session.add(Notification(subscriber_id=listed[0]["id"], alert_id=7, version=1,
                                 channel="email", severity="Severe", payload={},
                                 status="failed", attempts=8, next_attempt_at=now,
                                 created_at=now,
                                 last_error=f"550 <{SITI.lower()}>: no such user"))
    dead = env.client.get("/api/v1/subscriptions/notifications",
                          params={"status": "failed"}, headers=operator).json()
    [item] = dead["notifications"]
    assert item["status"] == "failed" and item["attempts"] == 8
    assert item["last_error"] == "550 <s***@example.org>: no such user"
    assert env.client.get("/api/v1/subscriptions/notifications", headers=admin).json()[
        "notifications"][0]["last_error"].startswith(f"550 <{SITI.lower()}>")
    # Removing a subscriber removes its notifications.
    assert env.client.delete(f"/api/v1/subscriptions/{listed[0]['id']}",
                             headers=operator).status_code == 204
    assert env.client.delete(f"/api/v1/subscriptions/{listed[0]['id']}",
                             headers=operator).status_code == 404
    assert env.client.get("/api/v1/subscriptions/notifications",
                          headers=operator).json()["notifications"] == []


def test_areas_list_the_44_kecamatan_and_the_registry_kelurahan(env: Env) -> None:
    areas = env.client.get("/api/v1/subscriptions/areas").json()
    assert areas["city"] == "jakarta"
    names = [d["name"] for d in areas["districts"]]
    assert len(names) == 44 and "Jatinegara" in names and "Tebet" in names
    assert {"name": "Jatinegara", "kota": "Jakarta Timur"} in areas["districts"]
    assert {"name": "Tebet", "district": "Tebet"} in areas["kelurahan"]
    assert areas["hazards"] == ["flood", "air", "rain", "safety"]
    assert areas["max_radius_km"] == 10


def test_unconfirmed_sign_ups_are_purged(env: Env) -> None:
    _sign_up(env)
    _wait(lambda: len(env.rows()) == 1, "a pending row")
    later = datetime.now(UTC) + timedelta(hours=env.registry.settings.signup.confirm_ttl_h + 1)
    assert env.registry.purge(now=later) == {"unconfirmed": 1, "unsubscribed": 0}
    assert env.rows() == []


def test_no_address_in_any_log_line(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    echo = Echo(echo=True)
    try:
        subscriber_id = _active(env)
        _sign_up(env, channel="webhook", address=echo.url)
        _wait(lambda: len(echo.bodies) == 1, "the challenge")
        env.client.post(tokens.unsubscribe_url(env.registry.settings, subscriber_id)
                        .removeprefix("http://testserver"))
    finally:
        echo.stop()
    # Everything the API's process logged; mail.log is the test's own SMTP server.
    logged = "\n".join(record.getMessage() for record in caplog.records
                       if not record.name.startswith("mail.log"))
    assert "subscriber" in logged     # it did log what happened, by id
    for address in (SITI, SITI.lower(), "Rahma", echo.url, f"127.0.0.1:{echo.port}"):
        assert address.lower() not in logged.lower(), address


def test_public_sign_up_can_be_turned_off_alone(influxdb: LocalService, database: str,
                                                 tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'kota.db'}"
    alerts_settings = AlertsSettings.model_validate({"database": {"url": url}, "subscriptions": {
        "secret": SECRET, "signup": {"enabled": False}}})
    settings = make_settings(influxdb, database).model_copy(
        update={"database": DatabaseSettings(url=url, migrate_on_start=True)})
    keys = KeyStore(make_engine(url))
    with TestClient(create_app(settings, registry=api_registry(),
                               alerts_settings=alerts_settings)) as client:
        answer = client.post("/api/v1/subscriptions", json={
            "address": "a@example.org", "districts": ["Tebet"], "hazards": ["rain"]})
        assert answer.status_code == 503 and "signup.enabled" in answer.json()["detail"]
        operator = keys.create("op", "operator", expires_in=None, created_by="test")[1]
        agency = client.post("/api/v1/subscriptions/agency", headers={
            "Authorization": f"Bearer {operator}"}, json={
            "channel": "webhook", "address": "https://bpbd.example.org/hook", "label": "BPBD",
            "districts": ["Tebet"], "hazards": ["flood"]})
        assert agency.status_code == 201, agency.text
        assert agency.json()["address"] == "https://bpbd.example.org/***"


def test_sign_up_is_off_without_a_secret(influxdb: LocalService, database: str,
                                         tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'kota.db'}"
    settings = make_settings(influxdb, database).model_copy(
        update={"database": DatabaseSettings(url=url, migrate_on_start=True)})
    with TestClient(create_app(settings, registry=api_registry())) as client:
        answer = client.post("/api/v1/subscriptions", json={
            "address": "a@example.org", "districts": ["Tebet"], "hazards": ["rain"]})
        assert answer.status_code == 503
        assert "alerts.subscriptions.secret" in answer.json()["detail"]
        assert client.get("/api/v1/subscriptions/areas").status_code == 200


def test_the_api_purges_unconfirmed_sign_ups_when_it_starts(env: Env) -> None:
    # A sign-up made long ago (written straight to the database), then a new API on it.
    long_ago = datetime.now(UTC) - timedelta(hours=49)
    with Session(env.registry.engine) as session, session.begin():
        session.add(Subscriber(channel="email", address="old@example.org", address_hash="0" * 64,
                               status="pending", language="id-ID", districts=["Tebet"],
                               kelurahan=[], hazards=["rain"], min_severity="Moderate",
                               created_by="public", created_at=long_ago, updated_at=long_ago))
    assert len(env.rows()) == 1
    app: Any = env.client.app
    with TestClient(create_app(app.state.kota.settings, registry=api_registry(),
                               alerts_settings=AlertsSettings.model_validate(
                                   {"database": {"url": env.url},
                                    "subscriptions": {"secret": SECRET}}))):
        _wait(lambda: env.rows() == [], "the old sign-up purged")


def test_the_page_is_served_at_langganan(env: Env) -> None:
    page = env.client.get("/langganan", follow_redirects=True)
    assert page.status_code == 200 and "Langganan peringatan dini" in page.text
    assert "<script>" not in page.text and 'src="langganan.js"' in page.text


@pytest.mark.slow
def test_kota_api_logs_no_address_at_debug(influxdb: LocalService, database: str,
                                           tmp_path: Path) -> None:
    """The real `kota api` at log level debug (access log on): sign up, confirm, unsubscribe,
    then search everything it printed for the address."""
    sink = MailSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    port = free_port()
    url = f"sqlite:///{tmp_path / 'kota.db'}"
    config = tmp_path / "kota.yaml"
    config.write_text(json.dumps({
        "api": {"log_level": "debug", "database": {"url": url},
                "influx": {"url": f"http://127.0.0.1:{influxdb.port}", "database": database}},
        "alerts": {"database": {"url": url}, "subscriptions": {
            "secret": SECRET, "public_url": f"http://127.0.0.1:{port}",
            "smtp": {"host": "127.0.0.1", "port": controller.port, "timeout_s": 5}}}}),
        encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOTA_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "kota", "api", "--config", str(config), "--port", str(port),
         "--workers", "1"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: _answers(f"{base}/readyz") or process.poll() is not None, "kota api up")
        signed = httpx.post(f"{base}/api/v1/subscriptions", timeout=10, json={
            "address": SITI, "districts": ["Jatinegara"], "hazards": ["flood"]})
        assert signed.status_code == 202, signed.text
        link = re.search(r"(http://127\.0\.0\.1:\d+/api/v1/subscriptions/confirm\?token=\S+)",
                         sink.wait_for(1)[0].get_body(("plain",))  # type: ignore[union-attr]
                         .get_content())
        assert link is not None
        assert httpx.get(link.group(1), timeout=10).json()["status"] == "active"
        assert httpx.get(f"{base}/api/v1/subscriptions/areas", timeout=10).status_code == 200
        settings = SubscriptionSettings.model_validate({"secret": SECRET, "public_url": base})
        assert httpx.post(tokens.unsubscribe_url(settings, 1), timeout=10).status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            output = process.communicate(timeout=15)[0].decode()
        except subprocess.TimeoutExpired:
            process.kill()
            output = process.communicate(timeout=5)[0].decode()
        controller.stop()
    assert "confirmation mail sent for subscriber 1" in output, output   # it did log, by id
    assert "subscriber 1 unsubscribed" in output
    assert "GET /api/v1/subscriptions/confirm" in output                # the access log is on
    for address in (SITI, SITI.lower(), "rahma"):
        assert address.lower() not in output.lower(), address


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
