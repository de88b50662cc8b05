"""Batched delivery (issue 12's throughput): a claim is one statement with a lease, a batch
costs the same few statements however many it carries, and a mail built from the shared part
is the mail the general path builds. Real SQLite and PostgreSQL, a real HTTP receiver."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from alert_samples import Clock, WebhookReceiver, flood_view, insert_alert, webhook_subscribers
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session

from alerts.model import AlertView
from alerts.subscriptions.fanout import fan_out
from alerts.subscriptions.notifier import Notifier
from alerts.subscriptions.senders import Item, Message, OnSent, Outcome, Recipient
from alerts.subscriptions.senders.email import EmailSender, RawMail, build_email
from alerts.subscriptions.senders.webhook import WebhookSender
from alerts.subscriptions.settings import SubscriptionSettings
from store.subscription_models import Notification

SECRET = "b" * 16 + "-batches-test-secret-0123456789"
MORNING = datetime(2026, 1, 15, 3, 30, tzinfo=UTC)   # 10:30 WIB, after flood_view fired


def settings(**delivery: Any) -> SubscriptionSettings:
    return SubscriptionSettings.model_validate({
        "secret": SECRET, "public_url": "https://peringatan.example.go.id",
        "delivery": {"digest_window_s": 0, "max_per_hour": 100, **delivery}})


def queue_alert(engine: Engine, alert_id: int = 1) -> AlertView:
    view = flood_view(alert_id)
    insert_alert(engine, view)
    fan_out(engine, view, now=MORNING)
    return view


def statuses(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return list(session.scalars(select(Notification.status).order_by(Notification.id)))


class Stuck:
    """A webhook sender that never finishes a batch: the notifier is killed meanwhile."""

    channel = "webhook"

    async def send(self, recipient: Recipient, message: Message) -> None:
        await asyncio.Event().wait()

    async def send_batch(self, items: Sequence[Item],
                         on_sent: OnSent | None = None) -> list[Outcome]:
        await asyncio.Event().wait()
        return []

    async def close(self) -> None:
        return None


def test_a_killed_batch_is_leased_then_taken_again_with_the_same_keys(
        engine: Engine, receiver: WebhookReceiver) -> None:
    webhook_subscribers(engine, receiver.url, 3)
    queue_alert(engine)
    clock = Clock(MORNING)
    config = settings(lease_s=60)

    async def killed_mid_batch() -> None:
        stuck = Notifier(engine, config, [Stuck()], clock=clock)
        task = asyncio.create_task(stuck.deliver_due("webhook"))
        await asyncio.sleep(0.5)
        task.cancel()   # what a SIGKILL leaves: claimed, nothing marked
        with pytest.raises(asyncio.CancelledError):
            await task
        await stuck.aclose()

    asyncio.run(killed_mid_batch())
    assert statuses(engine) == ["queued"] * 3
    notifier = Notifier(engine, config, [WebhookSender(config)], clock=clock)

    async def deliver() -> int:
        try:
            return await notifier.deliver_due("webhook")
        finally:
            await notifier.aclose()

    assert asyncio.run(deliver()) == 0            # leased: nobody takes them meanwhile
    clock.now = MORNING + timedelta(seconds=59)
    assert asyncio.run(deliver()) == 0
    clock.now = MORNING + timedelta(seconds=61)   # the lease is over: taken again
    assert asyncio.run(deliver()) == 3
    assert statuses(engine) == ["sent"] * 3
    keys = sorted(request.headers["Idempotency-Key"] for request in receiver.requests)
    assert len(keys) == 3 and all(key.startswith("kota-jakarta-alert-1-v1-subscriber-")
                                  for key in keys)
    assert asyncio.run(deliver()) == 0


def _statements_for(engine: Engine, count: int, now: datetime) -> int:
    """SQL statements one batch of ``count`` webhooks costs, claim to mark."""
    config = settings(mark_every=1000)
    notifier = Notifier(engine, config, [WebhookSender(config)], clock=Clock(now))
    executed: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        executed.append(statement)

    async def deliver() -> int:
        try:
            return await notifier.deliver_due("webhook")
        finally:
            await notifier.aclose()

    event.listen(engine, "before_cursor_execute", seen)
    try:
        assert asyncio.run(deliver()) == count
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    return len(executed)


def test_a_batch_costs_the_same_few_statements_however_many_it_carries(
        engine: Engine, receiver: WebhookReceiver) -> None:
    webhook_subscribers(engine, receiver.url, 4)
    queue_alert(engine, 1)
    few = _statements_for(engine, 4, MORNING)
    webhook_subscribers(engine, receiver.url, 36)
    queue_alert(engine, 2)
    # Two hours on, so nobody's hourly rate needs looking up (that is one more query).
    many = _statements_for(engine, 40, MORNING + timedelta(hours=2))
    assert few == many <= 5, (few, many)   # claim, subscribers, alert version, 2 marks
    assert statuses(engine) == ["sent"] * 44
    assert len(receiver.requests) == 44


@pytest.mark.parametrize("language", ["id-ID", "en-US"])
@pytest.mark.parametrize("alerts", [1, 3])
def test_the_shared_part_makes_the_same_mail_as_the_general_path(language: str,
                                                                 alerts: int) -> None:
    config = settings()
    sender = EmailSender(config)
    views = tuple(flood_view(index + 1) for index in range(alerts))
    key = "kota-jakarta-digest-7-1-3-3" if alerts > 1 else f"{views[0].identifier}-subscriber-7"
    message = Message(views, key)
    recipient = Recipient(7, "email", "ibu.tebet@example.org", "ab" * 32, language)
    for _ in range(2):   # the second comes from the kept shared part
        raw = sender.mail(recipient, message)
        assert isinstance(raw, RawMail)
        assert (raw.sender, raw.recipient) == ("peringatan@kota.example.go.id",
                                               "ibu.tebet@example.org")
        fast = message_from_bytes(raw.data, policy=policy.default)
        slow = message_from_bytes(build_email(config, recipient, message)
                                  .as_bytes(policy=policy.SMTP), policy=policy.default)
        assert isinstance(fast, EmailMessage) and isinstance(slow, EmailMessage)
        assert fast.get_content() == slow.get_content()
        for name in ("Subject", "From", "To", "Date", "Message-ID", "List-Unsubscribe",
                     "List-Unsubscribe-Post", "Auto-Submitted", "X-Kota-Alert"):
            assert str(fast[name]) == str(slow[name]), name
        # RFC 2369: the link itself in angle brackets, never an encoded-word.
        assert b"\r\nList-Unsubscribe: <https://peringatan.example.go.id/" in raw.data
        assert all(len(line) <= 998 for line in raw.data.split(b"\r\n"))
        assert b"\n" not in raw.data.replace(b"\r\n", b"")
    other = sender.mail(Recipient(8, "email", "pak.rt@example.org", "cd" * 32, language),
                        message)
    assert isinstance(other, RawMail) and b"\r\nTo: pak.rt@example.org\r\n" in b"\r\n" + other.data
    assert other.data.split(b"\r\n\r\n", 1)[1] != raw.data.split(b"\r\n\r\n", 1)[1]
    # An address that is not plain ASCII takes the general path (SMTPUTF8).
    assert isinstance(sender.mail(Recipient(9, "email", "ibu.sri@contoh.例え", "ef" * 32,
                                            language), message), EmailMessage)
