"""The webhook channel against a real HTTP server on loopback: signature, idempotency key,
retryable and final refusals, Retry-After, a receiver that is down."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from pathlib import Path

import pytest
from alert_samples import WebhookReceiver, flood_view
from pydantic import ValidationError

from alerts.channels import DeliveryError
from alerts.channels.webhook import WebhookChannel, WebhookSettings
from alerts.model import alert_view_from_json
from devstack.localstack import free_port

SECRET = "0123456789abcdef-test-secret"


def _channel(url: str, **extra: object) -> WebhookChannel:
    return WebhookChannel(WebhookSettings.model_validate(
        {"name": "oncall", "url": url, "secret": SECRET, "timeout_s": 5, **extra}))


def _send(channel: WebhookChannel, key: str, version: int = 1) -> None:
    async def go() -> None:
        try:
            await channel.send(flood_view(version=version), key)
        finally:
            await channel.close()

    asyncio.run(go())


def test_signature_verifies_with_the_secret_and_the_key_is_sent(
        receiver: WebhookReceiver) -> None:
    _send(_channel(receiver.url, headers={"Authorization": "Bearer t"}), "key-1")
    (request,) = receiver.requests
    headers = request.headers
    # The README's recipe: HMAC-SHA256 over "<timestamp>.<raw body>".
    signed = headers["X-Kota-Timestamp"].encode() + b"." + request.body
    expected = "sha256=" + hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Kota-Signature"], expected)
    wrong = "sha256=" + hmac.new(b"another secret", signed, hashlib.sha256).hexdigest()
    assert headers["X-Kota-Signature"] != wrong
    assert headers["Idempotency-Key"] == "key-1"
    assert headers["Authorization"] == "Bearer t"
    assert headers["Content-Type"].startswith("application/json")
    assert alert_view_from_json(json.loads(request.body)) == flood_view()


def test_500_is_retryable_and_the_retry_is_delivered(receiver: WebhookReceiver) -> None:
    receiver.script.append((500, {}))
    with pytest.raises(DeliveryError) as failure:
        _send(_channel(receiver.url), "key-2")
    assert failure.value.retryable and "HTTP 500" in str(failure.value)
    _send(_channel(receiver.url), "key-2")
    assert [r.status for r in receiver.requests] == [500, 200]
    assert list(receiver.delivered()) == ["key-2"]


def test_400_is_not_retryable(receiver: WebhookReceiver) -> None:
    receiver.script.append((400, {}))
    with pytest.raises(DeliveryError) as failure:
        _send(_channel(receiver.url), "key-3")
    assert not failure.value.retryable
    assert "HTTP 400" in str(failure.value)


@pytest.mark.parametrize("status", [408, 429, 503])
def test_retry_after_is_passed_on(receiver: WebhookReceiver, status: int) -> None:
    receiver.script.append((status, {"Retry-After": "7"}))
    with pytest.raises(DeliveryError) as failure:
        _send(_channel(receiver.url), "key-4")
    assert failure.value.retryable
    assert failure.value.retry_after_s == 7.0


def test_a_receiver_that_is_down_is_retryable() -> None:
    channel = _channel(f"http://127.0.0.1:{free_port()}/hook")
    with pytest.raises(DeliveryError) as failure:
        _send(channel, "key-5")
    assert failure.value.retryable
    assert "ConnectError" in str(failure.value)


def test_one_client_for_many_sends(receiver: WebhookReceiver) -> None:
    channel = _channel(receiver.url)

    async def go() -> None:
        await channel.send(flood_view(version=1), "a")
        client = channel._client
        await channel.send(flood_view(version=2), "b")
        assert channel._client is client is not None
        await channel.close()

    asyncio.run(go())
    assert sorted(receiver.delivered()) == ["a", "b"]


@pytest.mark.parametrize(("extra", "words"), [
    ({"secret": "short"}, "at least 16"),
    ({"secret": "change-me-change-me-change-me"}, "change-me"),
    ({"headers": {"Idempotency-Key": "x"}}, "set by the channel"),
    ({"url": "not a url"}, "url"),
    ({"secret": None}, "give exactly one"),
    ({"secret_file": "/etc/kota/hook.secret"}, "give exactly one"),
])
def test_bad_settings_name_the_setting(extra: dict[str, object], words: str) -> None:
    values: dict[str, object] = {"name": "oncall", "url": "https://example.org/h",
                                 "secret": SECRET, **extra}
    with pytest.raises(ValidationError) as error:
        WebhookSettings.model_validate(values)
    assert words in str(error.value)


def test_the_secret_from_a_file(receiver: WebhookReceiver, tmp_path: Path) -> None:
    secret_file = tmp_path / "hook.secret"
    secret_file.write_text(SECRET + "\n", encoding="utf-8")
    channel = WebhookChannel(WebhookSettings.model_validate(
        {"name": "oncall", "url": receiver.url, "secret_file": str(secret_file)}))
    _send(channel, "key-6")
    (request,) = receiver.requests
    signed = request.headers["X-Kota-Timestamp"].encode() + b"." + request.body
    assert request.headers["X-Kota-Signature"] == \
        "sha256=" + hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()


def test_a_secret_file_that_is_missing_fails_at_start(tmp_path: Path) -> None:
    settings = WebhookSettings.model_validate(
        {"name": "oncall", "url": "https://example.org/h",
         "secret_file": str(tmp_path / "missing")})
    with pytest.raises(ValueError, match=r"channels: oncall: secret_file .*missing"):
        WebhookChannel(settings)
