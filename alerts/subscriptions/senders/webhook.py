"""Webhooks of subscribers: a signed JSON POST with an ``Idempotency-Key``.

The body is ``{"alerts": [<alert view>, ...], "digest": <bool>}`` (one alert, or a digest of
several, oldest first). ``X-Kota-Signature`` is ``sha256=<hex>`` of HMAC-SHA256 over
``<X-Kota-Timestamp>.<raw body>``, as the operators' webhook channel signs
(alerts/channels/webhook), keyed per subscriber by :func:`webhook_signing_key`: derived from
the server's secret, so no subscriber can sign for another and the secret itself never leaves
the server.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import httpx

from alerts.channels.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, check_answer, sign
from alerts.model import alert_view_to_json
from alerts.subscriptions.senders import DeliveryError, Message, Recipient
from alerts.subscriptions.settings import SubscriptionSettings
from alerts.subscriptions.tokens import SigningOffError

__all__ = ["WebhookSender", "encode_body", "webhook_signing_key"]

def webhook_signing_key(settings: SubscriptionSettings, subscriber_id: int) -> str:
    """The key a subscriber's webhook verifies signatures with (hex HMAC-SHA256 of the
    subscriber id under ``alerts.subscriptions.secret``)."""
    secret = settings.secret_bytes()
    if secret is None:
        raise SigningOffError()
    return hmac.new(secret, f"kota-webhook-signing:{subscriber_id}".encode(),
                    hashlib.sha256).hexdigest()


def encode_body(message: Message) -> bytes:
    """The exact bytes POSTed and signed: compact UTF-8 JSON, keys sorted."""
    document = {"alerts": [alert_view_to_json(view) for view in message.views],
                "digest": message.is_digest}
    return json.dumps(document, ensure_ascii=False, sort_keys=True,
                      separators=(",", ":")).encode("utf-8")


class WebhookSender:
    """One HTTP client (keep-alive) for every subscriber's webhook."""

    channel = "webhook"

    def __init__(self, settings: SubscriptionSettings) -> None:
        self.settings = settings
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:   # made inside the notifier's event loop
            self._client = httpx.AsyncClient(
                timeout=self.settings.delivery.webhook_timeout_s, follow_redirects=False)
        return self._client

    async def send(self, recipient: Recipient, message: Message) -> None:
        try:
            key = webhook_signing_key(self.settings, recipient.id)
        except (SigningOffError, ValueError) as exc:
            raise DeliveryError(str(exc), retryable=False) from None
        body = encode_body(message)
        timestamp = str(int(time.time()))
        headers = {"Content-Type": "application/json; charset=utf-8",
                   "Idempotency-Key": message.idempotency_key,
                   TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: sign(key, timestamp, body)}
        # The URL is the subscriber's address: errors name the subscriber, not the URL.
        where = f"POST to subscriber {recipient.id}'s webhook"
        try:
            response = await self._http().post(recipient.address, content=body,
                                               headers=headers)
        except httpx.TransportError as exc:
            raise DeliveryError(f"{where}: {type(exc).__name__}") from None
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise DeliveryError(f"{where}: not a usable URL ({type(exc).__name__})",
                                retryable=False) from None
        check_answer(response, where)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
