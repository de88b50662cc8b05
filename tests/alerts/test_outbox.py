"""The outbox dispatcher on SQLite and PostgreSQL, into real receivers: a webhook server and
aiosmtpd. Rows are inserted as the engine writes them (alert_samples.queue)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from alert_samples import WebhookReceiver, flood_view, insert_alert, queue, resolved
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from alerts.channels import Channel
from alerts.channels.email import EmailChannel, EmailSettings
from alerts.channels.webhook import WebhookChannel, WebhookSettings
from alerts.outbox import Dispatcher, OutboxMetrics, OutboxSettings, requeue_failed
from devstack.localstack import free_port
from store.alert_models import OutboxItem

SECRET = "0123456789abcdef-test-secret"


def _fast(**extra: Any) -> OutboxSettings:
    """Short polls and backoffs, so retries happen within a test."""
    values: dict[str, Any] = {"poll_interval_s": 0.1, "backoff_initial_s": 0.1,
                              "backoff_max_s": 0.3, **extra}
    return OutboxSettings.model_validate(values)


def _hook(url: str, name: str = "hook") -> WebhookChannel:
    return WebhookChannel(WebhookSettings.model_validate(
        {"name": name, "url": url, "secret": SECRET, "timeout_s": 2}))


def _rows(engine: Engine) -> list[OutboxItem]:
    with Session(engine) as session:
        return list(session.scalars(select(OutboxItem).order_by(OutboxItem.id)).all())


def _run(dispatcher: Dispatcher, done: Callable[[], bool], timeout_s: float = 20.0,
         during: Callable[[], None] | None = None) -> float:
    """Run the dispatcher until ``done()`` (checked every 50 ms, at most ``timeout_s``); returns
    the seconds it took. ``during`` runs once, in a thread, right after the start."""
    async def go() -> float:
        stop = asyncio.Event()
        started = time.monotonic()
        task = asyncio.create_task(dispatcher.run(stop))
        if during is not None:
            await asyncio.to_thread(during)
        try:
            while not done():
                if time.monotonic() - started > timeout_s:
                    raise AssertionError(
                        f"not done within {timeout_s:g} s: {_rows(dispatcher.engine)}")
                await asyncio.sleep(0.05)
            return time.monotonic() - started
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
            await dispatcher.aclose()

    return asyncio.run(go())


def _value(metrics: OutboxMetrics, name: str, channel: str) -> float:
    value = metrics.registry.get_sample_value(name, {"channel": channel})
    return 0.0 if value is None else value


def _statuses(engine: Engine) -> list[str]:
    return [row.status for row in _rows(engine)]


def test_rows_are_delivered_in_order_and_marked_sent(engine: Engine,
                                                     receiver: WebhookReceiver) -> None:
    first = flood_view()
    insert_alert(engine, first)
    keys = [queue(engine, first, "hook"), queue(engine, flood_view(version=2), "hook"),
            queue(engine, resolved(first, 3), "hook")]
    metrics = OutboxMetrics()
    dispatcher = Dispatcher(engine, [_hook(receiver.url)], _fast(),
                            metrics=metrics)
    _run(dispatcher, lambda: _statuses(engine) == ["sent"] * 3)
    assert [r.headers["Idempotency-Key"] for r in receiver.requests] == keys
    for row in _rows(engine):
        assert row.attempts == 1 and row.sent_at is not None and row.last_error is None
    assert _value(metrics, "kota_alerts_notifications_sent_total", "hook") == 3
    assert _value(metrics, "kota_alerts_delivery_latency_seconds_count", "hook") == 3
    assert _value(metrics, "kota_alerts_outbox_queued", "hook") == 0


def test_wake_delivers_without_waiting_for_the_poll(engine: Engine,
                                                    receiver: WebhookReceiver) -> None:
    view = flood_view()
    insert_alert(engine, view)
    dispatcher = Dispatcher(engine, [_hook(receiver.url)],
                            OutboxSettings(poll_interval_s=60))

    def engine_commits() -> None:
        time.sleep(0.3)     # the dispatcher is asleep for 60 s by now
        queue(engine, view, "hook")
        dispatcher.wake()   # from another thread, as the engine may

    took_s = _run(dispatcher, lambda: len(receiver.delivered()) == 1, timeout_s=10,
                  during=engine_commits)
    assert took_s < 5


def test_a_500_is_retried_and_a_later_version_waits_for_it(engine: Engine,
                                                           receiver: WebhookReceiver) -> None:
    first = flood_view()
    insert_alert(engine, first)
    keys = [queue(engine, first, "hook"), queue(engine, flood_view(version=2), "hook")]
    receiver.script.extend([(500, {}), (503, {})])
    metrics = OutboxMetrics()
    dispatcher = Dispatcher(engine, [_hook(receiver.url)], _fast(),
                            metrics=metrics)
    _run(dispatcher, lambda: _statuses(engine) == ["sent", "sent"])
    assert [(r.headers["Idempotency-Key"], r.status) for r in receiver.requests] == [
        (keys[0], 500), (keys[0], 503), (keys[0], 200), (keys[1], 200)]
    assert [row.attempts for row in _rows(engine)] == [3, 1]
    assert _value(metrics, "kota_alerts_notifications_retried_total", "hook") == 2


@pytest.mark.slow
def test_retry_after_is_honoured(engine: Engine, receiver: WebhookReceiver) -> None:
    view = flood_view()
    insert_alert(engine, view)
    queue(engine, view, "hook")
    receiver.script.append((429, {"Retry-After": "1"}))
    dispatcher = Dispatcher(engine, [_hook(receiver.url)],
                            OutboxSettings(poll_interval_s=0.05, backoff_initial_s=0.05,
                                           backoff_max_s=5))
    _run(dispatcher, lambda: _statuses(engine) == ["sent"])
    first, second = receiver.requests
    assert (first.status, second.status) == (429, 200)
    assert second.at_s - first.at_s >= 0.95   # the backoff alone would have been 0.05 s


def test_a_400_fails_at_once(engine: Engine, receiver: WebhookReceiver,
                             caplog: pytest.LogCaptureFixture) -> None:
    view = flood_view()
    insert_alert(engine, view)
    queue(engine, view, "hook")
    receiver.script.append((400, {}))
    metrics = OutboxMetrics()
    dispatcher = Dispatcher(engine, [_hook(receiver.url)], _fast(),
                            metrics=metrics)
    with caplog.at_level(logging.ERROR, logger="alerts.outbox"):
        _run(dispatcher, lambda: _statuses(engine) == ["failed"])
    (row,) = _rows(engine)
    assert row.attempts == 1 and "HTTP 400" in (row.last_error or "")
    assert len(receiver.requests) == 1
    errors = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert len(errors) == 1 and "requeue_failed" in errors[0].getMessage()
    assert _value(metrics, "kota_alerts_notifications_failed_total", "hook") == 1


def test_max_attempts_then_failed_and_requeued_later(engine: Engine) -> None:
    view = flood_view()
    insert_alert(engine, view)
    key = queue(engine, view, "hook")
    down = WebhookReceiver()            # its port is free: nothing listens yet
    metrics = OutboxMetrics()
    dispatcher = Dispatcher(engine, [_hook(down.url)],
                            _fast(max_attempts=3), metrics=metrics)
    _run(dispatcher, lambda: _statuses(engine) == ["failed"])
    (row,) = _rows(engine)
    assert row.attempts == 3 and "ConnectError" in (row.last_error or "")
    assert _value(metrics, "kota_alerts_notifications_retried_total", "hook") == 2
    assert _value(metrics, "kota_alerts_notifications_failed_total", "hook") == 1
    # The gauges are refreshed by the housekeeping pass; run one more, briefly.
    dispatcher._refresh_gauges()
    assert _value(metrics, "kota_alerts_outbox_failed", "hook") == 1
    # The receiver is back and an operator requeues: delivered with the same key.
    down.start()
    try:
        assert requeue_failed(engine, "hook") == 1
        again = Dispatcher(engine, [_hook(down.url)], _fast())
        _run(again, lambda: _statuses(engine) == ["sent"])
    finally:
        down.stop()
    assert list(down.delivered()) == [key]


def test_a_receiver_down_then_up_gets_it_later(engine: Engine) -> None:
    view = flood_view()
    insert_alert(engine, view)
    key = queue(engine, view, "hook")
    later = WebhookReceiver()
    metrics = OutboxMetrics()
    dispatcher = Dispatcher(engine, [_hook(later.url)], _fast(),
                            metrics=metrics)

    def comes_up() -> None:
        deadline = time.monotonic() + 10
        while _value(metrics, "kota_alerts_notifications_retried_total", "hook") < 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        later.start()

    try:
        _run(dispatcher, lambda: _statuses(engine) == ["sent"], during=comes_up)
    finally:
        later.stop()
    assert list(later.delivered()) == [key]


class _Sink:
    def __init__(self) -> None:
        self.message_ids: list[str] = []

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        for line in envelope.content.decode().splitlines():
            if line.lower().startswith("message-id:"):
                self.message_ids.append(line.split(":", 1)[1].strip())
        return "250 OK"


def test_smtp_down_then_up(engine: Engine, receiver: WebhookReceiver) -> None:
    view = flood_view()
    insert_alert(engine, view)
    port = free_port()
    mail = EmailChannel(EmailSettings(name="mail", host="127.0.0.1", port=port, security="none",
                                      from_address="alerts@kota.example.id",
                                      to=["piket@bpbd.example.id"]))
    queue(engine, view, "mail")
    queue(engine, view, "hook")
    metrics = OutboxMetrics()
    channels: list[Channel[Any]] = [mail, _hook(receiver.url)]
    dispatcher = Dispatcher(engine, channels, _fast(), metrics=metrics)
    sink = _Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=port)

    def comes_up() -> None:
        deadline = time.monotonic() + 10
        while _value(metrics, "kota_alerts_notifications_retried_total", "mail") < 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # The webhook did not wait for the mail server.
        assert len(receiver.delivered()) == 1
        controller.start()

    try:
        _run(dispatcher, lambda: _statuses(engine) == ["sent", "sent"], during=comes_up)
    finally:
        controller.stop()
    assert sink.message_ids == ["<kota-jakarta-alert-1-v1-mail@kota.example.id>"]


def test_a_row_for_a_channel_no_longer_configured_fails(engine: Engine,
                                                        receiver: WebhookReceiver) -> None:
    view = flood_view()
    insert_alert(engine, view)
    queue(engine, view, "gone")
    queue(engine, view, "hook")
    metrics = OutboxMetrics()
    dispatcher = Dispatcher(engine, [_hook(receiver.url)], _fast(),
                            metrics=metrics)
    _run(dispatcher, lambda: _statuses(engine) == ["failed", "sent"])
    gone = _rows(engine)[0]
    assert "'gone' is not configured" in (gone.last_error or "")
    assert _value(metrics, "kota_alerts_notifications_failed_total", "gone") == 1


@pytest.mark.slow
def test_rows_not_yet_due_wait(engine: Engine, receiver: WebhookReceiver) -> None:
    view = flood_view()
    insert_alert(engine, view)
    queue(engine, view, "hook")
    with Session(engine) as session, session.begin():
        row = session.scalars(select(OutboxItem)).one()
        row.next_attempt_at = datetime.now(UTC) + timedelta(seconds=1.5)
    took_s = _run(Dispatcher(engine, [_hook(receiver.url)], _fast()),
                  lambda: _statuses(engine) == ["sent"])
    assert took_s >= 1.2


def test_a_lost_mark_resends_with_the_same_key(engine: Engine,
                                               receiver: WebhookReceiver) -> None:
    """The crash between send and mark, played back: the row is queued again as if the mark
    never committed; the receiver gets the same key twice and keeps one."""
    view = flood_view()
    insert_alert(engine, view)
    key = queue(engine, view, "hook")
    _run(Dispatcher(engine, [_hook(receiver.url)], _fast()),
         lambda: _statuses(engine) == ["sent"])
    with Session(engine) as session, session.begin():
        session.scalars(select(OutboxItem)).one().status = "queued"
    _run(Dispatcher(engine, [_hook(receiver.url)], _fast()),
         lambda: _statuses(engine) == ["sent"])
    assert [r.headers["Idempotency-Key"] for r in receiver.requests] == [key, key]
    assert list(receiver.delivered()) == [key]


def test_settings_refuse_a_cap_below_the_start() -> None:
    with pytest.raises(ValueError, match="backoff_max_s must be at least backoff_initial_s"):
        OutboxSettings(backoff_initial_s=10, backoff_max_s=5)
