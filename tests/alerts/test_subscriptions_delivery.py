"""Subscriptions, fan-out to delivery, against real services: SQLite and PostgreSQL, aiosmtpd, a
local HTTP receiver (webhooks, apprise's json:// and form://).

Alert versions come from the engine's own path (alerts.engine.decide → AlertStore.apply, as
AlertService._apply_all does) with the fan-out channel among the store's channels, so the
outbox row is written in the decision's transaction; the real outbox Dispatcher then calls the
fan-out. Subscribers are rows as the registry writes them. The notifier runs with a clock the
test sets, so quiet hours, digests and rate limits are decided at known times.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller
from alert_samples import Clock, WebhookReceiver, insert_alert
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.orm import Session

from alerts.engine import Timing, decide
from alerts.model import AlertText, AlertView, Area, alert_view_from_json
from alerts.outbox import Dispatcher, OutboxSettings
from alerts.rules import Finding
from alerts.settings import AlertsSettings
from alerts.state import AlertStore, RuleInfo
from alerts.subscriptions.fanout import FANOUT_CHANNEL, FanoutChannel, fan_out, with_fanout
from alerts.subscriptions.notifier import Notifier, NotifierMetrics, build_senders
from alerts.subscriptions.senders.apprise import AppriseSender
from alerts.subscriptions.senders.email import EmailSender
from alerts.subscriptions.senders.webhook import WebhookSender, webhook_signing_key
from alerts.subscriptions.settings import SubscriptionSettings
from devstack.localstack import free_port
from store.db import ensure_schema, make_engine
from store.subscription_models import Notification, Subscriber

SECRET = "s" * 16 + "-delivery-test-secret-0123456789"
WIB = ZoneInfo("Asia/Jakarta")
# 10:00 WIB on a weekday: outside everyone's quiet hours.
MORNING = datetime(2026, 1, 15, 3, 0, tzinfo=UTC)
TEBET_CIRCLE = (-6.2086, 106.8497, 3.0)


# -- helpers ---------------------------------------------------------------------------------

def settings(**delivery: Any) -> SubscriptionSettings:
    values: dict[str, Any] = {"poll_interval_s": 0.05, "backoff_initial_s": 0.05,
                              "backoff_max_s": 0.2, "digest_window_s": 0, "max_per_hour": 100,
                              **delivery}
    smtp = values.pop("smtp", {})
    return SubscriptionSettings.model_validate({
        "secret": SECRET, "public_url": "https://peringatan.example.go.id",
        "smtp": {"from_address": "peringatan@kota.example.go.id", "timeout_s": 5, **smtp},
        "delivery": values})


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    made = make_engine(f"sqlite:///{tmp_path / 'kota.db'}")
    ensure_schema(made, migrate=True)
    yield made
    made.dispose()


def subscriber(engine: Engine, address: str, *, channel: str = "email", status: str = "active",
               language: str = "id-ID", districts: tuple[str, ...] = ("Tebet",),
               hazards: tuple[str, ...] = (), min_severity: str = "Minor",
               quiet: tuple[int, int] | None = None, **extra: Any) -> int:
    now = datetime.now(UTC)
    with Session(engine) as session, session.begin():
        row = Subscriber(
            channel=channel, address=address,
            address_hash=hashlib.sha256(address.encode()).hexdigest(), status=status,
            language=language, districts=list(districts), kelurahan=[], hazards=list(hazards),
            min_severity=min_severity, quiet_start_h=quiet[0] if quiet else None,
            quiet_end_h=quiet[1] if quiet else None, created_by="public", created_at=now,
            updated_at=now, **extra)
        session.add(row)
        session.flush()
        return row.id


def texts(headline: str) -> dict[str, AlertText]:
    return {"id-ID": AlertText(headline=f"ID {headline}", description=f"Uraian {headline}.",
                               instruction="Ikuti arahan BPBD."),
            "en-US": AlertText(headline=f"EN {headline}", description=f"About {headline}.",
                               instruction="Follow BPBD's advice.")}


def observe(store: AlertStore, rule_id: str, scope: str, *, grade: int, severity: str,
            at: datetime, hazard: str = "flood", audience: str = "public",
            exercise: bool = False, districts: tuple[str, ...] = ("Tebet",)) -> AlertView | None:
    """One observation through the engine and the store, as the alert service applies it."""
    finding = Finding(scope=scope, at=at, grade=grade, level=f"grade {grade}",
                      severity=severity,  # type: ignore[arg-type]
                      urgency="Expected", certainty="Observed",
                      area=Area(description=f"around {scope}", districts=districts,
                                circle_km=TEBET_CIRCLE),
                      city="jakarta", details={}, texts=texts(f"{rule_id} {grade}"))
    timing = Timing(fire_grade=1, pending_s=0, clear_after_s=0)
    decision = decide(timing, store.active().get((rule_id, scope)), finding.observation(), at)
    return store.apply(RuleInfo(rule_id, hazard, audience, exercise), scope, decision, finding,
                       at)


def dispatch(engine: Engine, fanout: FanoutChannel) -> None:
    """The real outbox dispatcher delivers the fan-out's outbox rows once."""
    dispatcher = Dispatcher(engine, [fanout], OutboxSettings(poll_interval_s=0.1))
    asyncio.run(dispatcher.deliver_due(fanout))


def notifications(engine: Engine) -> list[Notification]:
    with Session(engine) as session:
        return list(session.scalars(select(Notification).order_by(Notification.id)).all())


def deliver(notifier: Notifier, channel: str) -> int:
    async def go() -> int:
        try:
            return await notifier.deliver_due(channel)
        finally:
            await notifier.aclose()
    return asyncio.run(go())


def run_until(notifier: Notifier, done: Callable[[], bool], timeout_s: float = 20.0,
              during: Callable[[], None] | None = None) -> None:
    """The notifier's own loops (takers, workers) until ``done()``: checked every 50 ms, at
    most ``timeout_s``."""
    async def go() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(notifier.run(stop))
        if during is not None:
            await asyncio.to_thread(during)
        started = time.monotonic()
        try:
            while not await asyncio.to_thread(done):
                if time.monotonic() - started > timeout_s:
                    rows = [(n.id, n.status, n.last_error)
                            for n in notifications(notifier.engine)]
                    raise AssertionError(f"not done within {timeout_s:g} s: {rows}")
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            await asyncio.wait_for(task, 15)
            await notifier.aclose()
    asyncio.run(go())


@dataclass
class Mail:
    peer: tuple[str, int]
    rcpt_tos: list[str]
    message: EmailMessage


@dataclass
class Sink:
    mails: list[Mail] = field(default_factory=list)

    async def handle_DATA(self, _server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.mails.append(Mail(tuple(session.peer), list(envelope.rcpt_tos), message))
        return "250 Message accepted"


@pytest.fixture
def smtp() -> Iterator[tuple[Controller, Sink]]:
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, sink
    controller.stop()


# -- fan-out ---------------------------------------------------------------------------------

def test_fan_out_through_the_outbox_matches_and_is_crash_safe(engine: Engine) -> None:
    tebet = subscriber(engine, "ibu.tebet@example.org")
    by_point = subscriber(engine, "https://sekolah.example.org/hook", channel="webhook",
                          districts=(), lat=-6.2100, lon=106.8500, radius_km=0.5)
    subscriber(engine, "menteng@example.org", districts=("Menteng",))
    subscriber(engine, "air-only@example.org", hazards=("air",))
    subscriber(engine, "only-extreme@example.org", min_severity="Extreme")
    subscriber(engine, "pending@example.org", status="pending")
    fanout = FanoutChannel(engine)
    store = AlertStore(engine, [fanout])
    observe(store, "flood-siaga", "gauge:manggarai", grade=2, severity="Severe", at=MORNING)
    observe(store, "panic", "device:p1", grade=1, severity="Extreme", hazard="safety",
            audience="operators", at=MORNING)
    observe(store, "flood-drill", "gauge:depok", grade=2, severity="Extreme", exercise=True,
            at=MORNING)
    dispatch(engine, fanout)
    rows = notifications(engine)
    assert sorted((row.subscriber_id, row.version, row.channel) for row in rows) == [
        (tebet, 1, "email"), (by_point, 1, "webhook")]
    assert {row.status for row in rows} == {"queued"}

    # A crash after the rows were committed but before the outbox row was marked: the fan-out
    # runs again and inserts nothing twice.
    assert fan_out(engine, alert_view_from_json(rows[0].payload)) == 2
    assert len(notifications(engine)) == 2

    # The all-clear goes to whoever got an earlier version, even one who now wants only
    # Extreme, and to no one else.
    with Session(engine) as session, session.begin():
        session.execute(update(Subscriber).where(Subscriber.id == tebet)
                        .values(min_severity="Extreme"))
    late = subscriber(engine, "late@example.org")   # subscribed after the alert fired
    observe(store, "flood-siaga", "gauge:manggarai", grade=0, severity="Minor",
            at=MORNING + timedelta(hours=1))
    dispatch(engine, fanout)
    cancels = [row for row in notifications(engine) if row.version == 2]
    assert sorted(row.subscriber_id for row in cancels) == [tebet, by_point]
    assert late not in {row.subscriber_id for row in notifications(engine)}
    assert all(row.payload["msg_type"] == "Cancel" for row in cancels)


def test_an_all_clear_an_operator_gives_reaches_subscribers(engine: Engine) -> None:
    """``kota alerts resolve`` and the API build their store with ``with_fanout``."""
    tebet = subscriber(engine, "ibu.tebet@example.org")
    store = AlertStore(engine, with_fanout([], True, engine))
    assert [channel.name for channel in with_fanout([], False, engine)] == []
    view = observe(store, "flood-siaga", "gauge:manggarai", grade=2, severity="Severe",
                   at=MORNING)
    assert view is not None
    [fanout] = [channel for channel in store.channels if isinstance(channel, FanoutChannel)]
    dispatch(engine, fanout)
    store.resolve(view.id, "api:key 1 (operator)", "surut")
    dispatch(engine, fanout)
    assert [(row.subscriber_id, row.version, row.payload["msg_type"])
            for row in notifications(engine)] == [(tebet, 1, "Alert"), (tebet, 2, "Cancel")]


@pytest.mark.slow
def test_one_hundred_thousand_subscribers_fan_out_in_seconds(sqlite_engine: Engine) -> None:
    """100,000 subscribers over 44 kecamatan; an alert over 10 of them."""
    engine = sqlite_engine
    kecamatan = [f"Kecamatan {index:02d}" for index in range(44)]
    now = datetime.now(UTC)
    rows = [{"channel": ("email", "webhook", "apprise")[index % 3],
             "address": f"warga{index}@example.org", "address_hash": f"{index:064x}",
             "status": "active" if index % 50 else "unsubscribed", "language": "id-ID",
             "districts": [kecamatan[index % 44]], "kelurahan": [],
             "hazards": [] if index % 4 else ["air"], "min_severity": "Minor",
             "created_by": "public", "created_at": now, "updated_at": now}
            for index in range(100_000)]
    with Session(engine) as session, session.begin():
        for start in range(0, len(rows), 10_000):
            session.execute(insert(Subscriber), rows[start:start + 10_000])
    view = AlertView(
        id=1, version=1, rule_id="flood-siaga", scope="gauge:manggarai", city="jakarta",
        hazard="flood", audience="public", status="firing", msg_type="Alert",
        cap_status="Actual", level="Siaga 1", grade=4, severity="Extreme", urgency="Immediate",
        certainty="Observed", sent_at=now, fired_at=now, texts=texts("Siaga 1"),
        area=Area(description="ten kecamatan", districts=tuple(kecamatan[:10])))
    insert_alert(engine, view)
    expected = sum(1 for index in range(100_000)
                   if index % 44 < 10 and index % 50 and index % 4)
    started = time.monotonic()
    assert fan_out(engine, view) == expected
    took_s = time.monotonic() - started
    assert took_s < 20, f"fan-out of {expected} took {took_s:.1f} s"
    started = time.monotonic()
    assert fan_out(engine, view) == expected   # again: nothing twice
    assert len(notifications(engine)) == expected


# -- email -----------------------------------------------------------------------------------

def test_email_one_pooled_session_carries_several_mails_with_one_click_unsubscribe(
        engine: Engine, smtp: tuple[Controller, Sink]) -> None:
    controller, sink = smtp
    ids = [subscriber(engine, f"warga{index}@example.org",
                      language="en-US" if index == 0 else "id-ID") for index in range(5)]
    config = settings(workers_per_channel=4,
                      smtp={"port": controller.port, "pool_size": 1})
    fanout = FanoutChannel(engine)
    observe(AlertStore(engine, [fanout]), "flood-siaga", "gauge:manggarai", grade=2,
            severity="Severe", at=MORNING)
    dispatch(engine, fanout)
    sender = EmailSender(config)
    notifier = Notifier(engine, config, [sender])
    run_until(notifier, lambda: len(sink.mails) == 5 and all(
        row.status == "sent" for row in notifications(engine)))
    assert sender.pool.connections_opened == 1
    assert len({mail.peer for mail in sink.mails}) == 1      # one SMTP session for all five
    by_address = {mail.rcpt_tos[0]: mail.message for mail in sink.mails}
    english = by_address["warga0@example.org"]
    indonesian = by_address["warga1@example.org"]
    assert english["Subject"] == "EN flood-siaga 2"
    assert indonesian["Subject"] == "ID flood-siaga 2"
    body = indonesian.get_content()
    assert body.index("Uraian") < body.index("About")        # the subscriber's language first
    unsubscribe = indonesian["List-Unsubscribe"]
    assert unsubscribe.startswith(
        "<https://peringatan.example.go.id/api/v1/subscriptions/unsubscribe?token=")
    assert indonesian["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert unsubscribe.strip("<>") in body
    assert "/langganan/#kelola=" in body and "Lihat atau hapus data saya" in body
    assert english["List-Unsubscribe"] != unsubscribe        # a token per subscriber
    assert english["Message-ID"] != indonesian["Message-ID"]
    assert {row.subscriber_id for row in notifications(engine)} == set(ids)


def test_smtp_down_then_up_is_retried_and_delivered(engine: Engine,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    subscriber(engine, "rahasia@example.org")
    config = settings(smtp={"port": port})
    fanout = FanoutChannel(engine)
    observe(AlertStore(engine, [fanout]), "flood-siaga", "gauge:manggarai", grade=2,
            severity="Severe", at=MORNING)
    dispatch(engine, fanout)
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=port)

    def first_try_failed() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if any(row.attempts >= 1 for row in notifications(engine)):
                break
            time.sleep(0.05)
        controller.start()

    caplog.set_level(logging.DEBUG, logger="alerts")
    try:
        run_until(Notifier(engine, config, [EmailSender(config)]),
                  lambda: [row.status for row in notifications(engine)] == ["sent"],
                  during=first_try_failed)
    finally:
        controller.stop()
    [row] = notifications(engine)
    assert row.attempts >= 2 and row.last_error is None
    assert len(sink.mails) == 1
    assert "rahasia@example.org" not in caplog.text       # addresses never in logs


# -- webhook ---------------------------------------------------------------------------------

def test_webhook_signed_500_then_200_and_max_attempts_failed(
        engine: Engine, receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture) -> None:
    school = subscriber(engine, receiver.url, channel="webhook")
    dead = subscriber(engine, f"http://127.0.0.1:{free_port()}/nobody", channel="webhook")
    receiver.script.append((500, {}))
    config = settings(max_attempts=3)
    fanout = FanoutChannel(engine)
    observe(AlertStore(engine, [fanout]), "flood-siaga", "gauge:manggarai", grade=2,
            severity="Severe", at=MORNING)
    dispatch(engine, fanout)
    caplog.set_level(logging.DEBUG, logger="alerts")
    metrics = NotifierMetrics()
    run_until(Notifier(engine, config, [WebhookSender(config)], metrics=metrics),
              lambda: {row.status for row in notifications(engine)} == {"sent", "failed"})
    rows = {row.subscriber_id: row for row in notifications(engine)}
    assert rows[school].status == "sent" and rows[school].attempts == 2
    assert rows[dead].status == "failed" and rows[dead].attempts == 3
    error = rows[dead].last_error or ""
    assert "ConnectError" in error
    assert "nobody" not in error and "nobody" not in caplog.text   # the URL is not logged
    [first, second] = receiver.requests
    assert first.status == 500 and second.status == 200
    key = second.headers["Idempotency-Key"]
    assert key == first.headers["Idempotency-Key"]
    assert key.endswith(f"-subscriber-{school}")
    expected = hmac.new(webhook_signing_key(config, school).encode(),
                        second.headers["X-Kota-Timestamp"].encode() + b"." + second.body,
                        hashlib.sha256).hexdigest()
    assert second.headers["X-Kota-Signature"] == f"sha256={expected}"
    document = json.loads(second.body)
    assert document["digest"] is False and document["alerts"][0]["rule_id"] == "flood-siaga"
    sample = metrics.registry.get_sample_value
    assert sample("kota_subscriptions_messages_sent_total", {"channel": "webhook"}) == 1
    assert sample("kota_subscriptions_notifications_failed_total", {"channel": "webhook"}) == 1


def test_decided_to_delivered_without_waiting_for_a_poll(engine: Engine,
                                                         receiver: WebhookReceiver) -> None:
    """The dispatcher and the notifier run as the service runs them: the fan-out wakes the
    notifier, so a notification arrives long before either poll (30 s) would find it."""
    subscriber(engine, receiver.url, channel="webhook")
    config = settings(poll_interval_s=30)
    notifier = Notifier(engine, config, [WebhookSender(config)])
    fanout = FanoutChannel(engine, on_queued=notifier.wake)
    dispatcher = Dispatcher(engine, [fanout], OutboxSettings(poll_interval_s=30))
    store = AlertStore(engine, [fanout])

    async def go() -> float:
        stop = asyncio.Event()
        tasks = [asyncio.create_task(dispatcher.run(stop)),
                 asyncio.create_task(notifier.run(stop))]
        await asyncio.sleep(0.5)   # both are waiting for their next poll
        started = time.monotonic()
        await asyncio.to_thread(observe, store, "flood-siaga", "gauge:manggarai", grade=2,
                                severity="Severe", at=datetime.now(UTC))
        dispatcher.wake()   # what AlertService._commit does after a commit
        try:
            while not receiver.requests:
                assert time.monotonic() - started < 10, "not delivered within 10 s"
                await asyncio.sleep(0.02)
            return time.monotonic() - started
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), 15)
            await notifier.aclose()

    took_s = asyncio.run(go())
    assert took_s < 5, f"decided → delivered took {took_s:.1f} s"
    assert [row.status for row in notifications(engine)] == ["sent"]


# -- apprise ---------------------------------------------------------------------------------

@pytest.mark.parametrize("scheme", ["json", "form"])
def test_apprise_json_and_form_reach_a_local_receiver(engine: Engine, receiver: WebhookReceiver,
                                                      scheme: str) -> None:
    subscriber(engine, f"{scheme}://127.0.0.1:{receiver.port}/hook", channel="apprise",
               language="en-US", label="BPBD Jakarta Timur")
    config = settings()
    fanout = FanoutChannel(engine)
    observe(AlertStore(engine, [fanout]), "flood-siaga", "gauge:manggarai", grade=2,
            severity="Severe", at=MORNING)
    dispatch(engine, fanout)
    assert deliver(Notifier(engine, config, [AppriseSender(5)]), "apprise") == 1
    assert [row.status for row in notifications(engine)] == ["sent"]
    [request] = receiver.requests
    if scheme == "json":
        document = json.loads(request.body)
    else:
        document = {key: values[0] for key, values in parse_qs(request.body.decode()).items()}
    assert document["title"] == "EN flood-siaga 2"
    assert document["message"].index("About") < document["message"].index("Uraian")


def test_apprise_500_is_retried(engine: Engine, receiver: WebhookReceiver) -> None:
    subscriber(engine, f"json://127.0.0.1:{receiver.port}/hook", channel="apprise")
    receiver.script.append((500, {}))
    config = settings()
    fanout = FanoutChannel(engine)
    observe(AlertStore(engine, [fanout]), "flood-siaga", "gauge:manggarai", grade=2,
            severity="Severe", at=MORNING)
    dispatch(engine, fanout)
    notifier = Notifier(engine, config, [AppriseSender(5)])
    assert deliver(notifier, "apprise") == 1
    [row] = notifications(engine)
    assert row.status == "queued" and row.attempts == 1 and row.last_error
    assert "127.0.0.1" not in row.last_error
    time.sleep(0.3)   # past the backoff (at most backoff_max_s)
    assert deliver(notifier, "apprise") == 1
    assert [row.status for row in notifications(engine)] == ["sent"]


# -- when: digest, quiet hours, rate ---------------------------------------------------------

def _three_alerts(engine: Engine, at: datetime, severities: tuple[str, ...]) -> None:
    fanout = FanoutChannel(engine)
    store = AlertStore(engine, [fanout])
    for index, severity in enumerate(severities):
        observe(store, f"flood-{index}", f"gauge:{index}", grade=2, severity=severity, at=at)
    dispatch(engine, fanout)


def test_alerts_within_the_digest_window_become_one_message(engine: Engine,
                                                           receiver: WebhookReceiver) -> None:
    who = subscriber(engine, receiver.url, channel="webhook")
    clock = Clock(MORNING)
    config = settings(digest_window_s=300)
    notifier = Notifier(engine, config, [WebhookSender(config)], clock=clock)
    _three_alerts(engine, MORNING, ("Severe",))
    assert deliver(notifier, "webhook") == 1              # the first goes at once
    _three_alerts(engine, MORNING, ("Severe", "Moderate", "Severe"))   # 2 new, 1 repeat
    clock.now = MORNING + timedelta(seconds=60)
    with Session(engine) as session, session.begin():    # they arrived a minute later
        session.execute(update(Notification).where(Notification.status == "queued")
                        .values(next_attempt_at=clock.now))
    assert deliver(notifier, "webhook") == 2              # held: the window is open
    assert len(receiver.requests) == 1
    held = [row for row in notifications(engine) if row.status == "queued"]
    assert {row.next_attempt_at.replace(tzinfo=UTC) for row in held} == {
        MORNING + timedelta(seconds=300)}
    clock.now = MORNING + timedelta(seconds=301)
    assert deliver(notifier, "webhook") == 2
    assert len(receiver.requests) == 2
    digest = json.loads(receiver.requests[1].body)
    assert digest["digest"] is True
    assert [alert["rule_id"] for alert in digest["alerts"]] == ["flood-1", "flood-2"]
    rows = [row for row in notifications(engine) if row.subscriber_id == who]
    [carrier] = [row for row in rows if row.status == "sent" and row.digest_id is None
                 and row.payload["rule_id"] == "flood-1"]
    [folded] = [row for row in rows if row.status == "digested"]
    assert folded.digest_id == carrier.id and folded.payload["rule_id"] == "flood-2"


def test_quiet_hours_hold_all_but_extreme(engine: Engine, receiver: WebhookReceiver) -> None:
    sleeper = subscriber(engine, receiver.url, channel="webhook", quiet=(22, 6))
    night = datetime(2026, 1, 15, 23, 30, tzinfo=WIB).astimezone(UTC)
    clock = Clock(night)
    config = settings()
    notifier = Notifier(engine, config, [WebhookSender(config)], clock=clock)
    _three_alerts(engine, night, ("Severe",))
    assert deliver(notifier, "webhook") == 1
    assert receiver.requests == []
    [row] = notifications(engine)
    assert row.status == "queued" and row.attempts == 0
    assert row.next_attempt_at.replace(tzinfo=UTC) == datetime(2026, 1, 16, 6, 0, tzinfo=WIB)
    # An Extreme one passes, and takes the held one along in the same message.
    with Session(engine) as session, session.begin():
        session.execute(update(Notification).values(next_attempt_at=night))
    fanout = FanoutChannel(engine)
    observe(AlertStore(engine, [fanout]), "flood-x", "gauge:x", grade=3, severity="Extreme",
            at=night)
    dispatch(engine, fanout)
    assert deliver(notifier, "webhook") == 2
    [request] = receiver.requests
    assert [a["severity"] for a in json.loads(request.body)["alerts"]] == ["Severe", "Extreme"]
    assert {row.status for row in notifications(engine)
            if row.subscriber_id == sleeper} == {"sent", "digested"}


def test_beyond_max_per_hour_is_held_then_sent_as_one(engine: Engine,
                                                     receiver: WebhookReceiver) -> None:
    subscriber(engine, receiver.url, channel="webhook")
    clock = Clock(MORNING)
    config = settings(max_per_hour=2)
    notifier = Notifier(engine, config, [WebhookSender(config)], clock=clock)
    for minute in (0, 10):
        clock.now = MORNING + timedelta(minutes=minute)
        fanout = FanoutChannel(engine)
        observe(AlertStore(engine, [fanout]), f"flood-{minute}", "gauge:a", grade=2,
                severity="Severe", at=clock.now)
        dispatch(engine, fanout)
        with Session(engine) as session, session.begin():
            session.execute(update(Notification).values(next_attempt_at=clock.now))
        assert deliver(notifier, "webhook") == 1
    assert len(receiver.requests) == 2
    clock.now = MORNING + timedelta(minutes=20)
    _three_alerts(engine, clock.now, ("Severe", "Severe"))
    with Session(engine) as session, session.begin():
        session.execute(update(Notification).where(Notification.status == "queued")
                        .values(next_attempt_at=clock.now))
    assert deliver(notifier, "webhook") == 2
    assert len(receiver.requests) == 2                       # held: two in the last hour
    held = [row for row in notifications(engine) if row.status == "queued"]
    assert {row.next_attempt_at.replace(tzinfo=UTC) for row in held} == {
        MORNING + timedelta(hours=1)}
    clock.now = MORNING + timedelta(hours=1, seconds=1)
    assert deliver(notifier, "webhook") == 2
    assert len(receiver.requests) == 3
    assert json.loads(receiver.requests[2].body)["digest"] is True


# -- what is left ----------------------------------------------------------------------------

def test_unsubscribed_before_delivery_gets_nothing(engine: Engine,
                                                   receiver: WebhookReceiver) -> None:
    who = subscriber(engine, receiver.url, channel="webhook")
    _three_alerts(engine, MORNING, ("Severe",))
    with Session(engine) as session, session.begin():
        session.execute(update(Subscriber).where(Subscriber.id == who)
                        .values(status="unsubscribed"))
    config = settings()
    assert deliver(Notifier(engine, config, [WebhookSender(config)]), "webhook") == 1
    assert receiver.requests == [] and notifications(engine) == []


def test_retention_deletes_old_sent_and_failed_only(engine: Engine) -> None:
    subscriber(engine, "a@example.org")
    _three_alerts(engine, MORNING, ("Severe", "Severe", "Severe"))
    rows = notifications(engine)
    with Session(engine) as session, session.begin():
        for row, status in zip(rows, ("sent", "failed", "queued"), strict=True):
            session.execute(update(Notification).where(Notification.id == row.id)
                            .values(status=status, created_at=MORNING - timedelta(days=31)))
    config = settings(keep_notifications_days=30)
    notifier = Notifier(engine, config, [])
    notifier.refresh_gauges()
    sample = notifier.metrics.registry.get_sample_value
    assert sample("kota_subscriptions_queue_depth", {"channel": "email"}) == 1
    assert sample("kota_subscriptions_failed", {"channel": "email"}) == 1
    assert notifier.delete_old(MORNING) == 2
    assert [row.status for row in notifications(engine)] == ["queued"]


def test_the_service_adds_the_fan_out_when_enabled(tmp_path: Path) -> None:
    from alerts.service import AlertService

    def service(enabled: bool) -> AlertService:
        return AlertService(AlertsSettings.model_validate({
            "database": {"url": f"sqlite:///{tmp_path / f'{enabled}.db'}"},
            "influx_events": False, "metrics_port": 0,
            "subscriptions": {"enabled": enabled, "secret": SECRET}}))

    enabled = service(True)
    assert [channel.name for channel in enabled.channels] == [FANOUT_CHANNEL]
    assert enabled.notifier is not None
    assert set(enabled.notifier.senders) == {"email", "webhook", "apprise"}
    assert [channel.name for channel in service(False).channels] == []
    assert {sender.channel for sender in build_senders(settings())} == {
        "email", "webhook", "apprise"}
