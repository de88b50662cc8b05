"""The webhook channel: POST each alert version as JSON, signed with HMAC-SHA256.

The body is ``alert_view_to_json(view)``; the receiver checks ``X-Kota-Signature`` (HMAC-SHA256
of ``<X-Kota-Timestamp>.<raw body>`` with the shared secret) and drops repeats by
``Idempotency-Key``. README.md has the verification recipe.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Literal

import httpx
from pydantic import AnyHttpUrl, Field, SecretStr, field_validator, model_validator

from alerts.channels._contract import Channel, ChannelSettings, DeliveryError
from alerts.model import AlertView, alert_view_to_json

__all__ = ["SIGNATURE_HEADER", "TIMESTAMP_HEADER", "WebhookChannel", "WebhookSettings",
           "encode_body", "sign"]

SIGNATURE_HEADER = "X-Kota-Signature"
TIMESTAMP_HEADER = "X-Kota-Timestamp"
# Headers the channel sets itself: a configured header may not replace them.
_RESERVED = {"content-type", "idempotency-key", SIGNATURE_HEADER.lower(), TIMESTAMP_HEADER.lower()}
# RFC 9110 15.5.9 (408) and RFC 6585 4 (429): the request may succeed later; so may any 5xx.
_RETRYABLE_4XX = {408, 429}


class WebhookSettings(ChannelSettings):
    """An HTTPS endpoint that receives every alert version it accepts as a signed JSON POST."""

    type: Literal["webhook"] = "webhook"
    url: AnyHttpUrl = Field(description="Where to POST (https:// outside a private network)")
    secret: SecretStr | None = Field(
        default=None, min_length=16,
        description="Shared HMAC-SHA256 key; the receiver verifies X-Kota-Signature with it "
                    "(at least 16 characters; `openssl rand -hex 32` makes one)")
    secret_file: Path | None = Field(
        default=None, description="File holding the secret (instead of secret); read at start")
    timeout_s: float = Field(default=10.0, gt=0, le=300,
                             description="Give up on one request after this many seconds")
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Extra request headers (an Authorization token, say); not Content-Type, "
                    "Idempotency-Key or the X-Kota-* signature headers")

    @field_validator("secret")
    @classmethod
    def _real_secret(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is not None and "change-me" in secret.get_secret_value():
            raise ValueError("secret is still the change-me placeholder: set a real one")
        return secret

    @model_validator(mode="after")
    def _one_secret(self) -> WebhookSettings:
        if (self.secret is None) == (self.secret_file is None):
            raise ValueError("secret or secret_file: give exactly one of them")
        return self

    def resolved_secret(self) -> str:
        """The secret, read from ``secret_file`` if that is given (``ValueError`` naming the
        setting when it cannot be read or is too short)."""
        if self.secret is not None:
            return self.secret.get_secret_value()
        assert self.secret_file is not None
        try:
            secret = self.secret_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"channels: {self.name}: secret_file {self.secret_file}: "
                             f"{exc.strerror or exc}") from None
        if len(secret) < 16 or "change-me" in secret:
            raise ValueError(f"channels: {self.name}: secret_file {self.secret_file} holds "
                             "a placeholder or fewer than 16 characters")
        return secret

    @field_validator("headers")
    @classmethod
    def _not_reserved(cls, headers: dict[str, str]) -> dict[str, str]:
        clashes = sorted(name for name in headers if name.lower() in _RESERVED)
        if clashes:
            raise ValueError(f"headers: {', '.join(clashes)} is set by the channel itself")
        return headers


def encode_body(view: AlertView) -> bytes:
    """The exact bytes POSTed (and signed): compact UTF-8 JSON, keys sorted."""
    return json.dumps(alert_view_to_json(view), ensure_ascii=False, sort_keys=True,
                      separators=(",", ":")).encode("utf-8")


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256(secret, ``<timestamp>.<body>``): the timestamp is signed
    too, so a captured request cannot be replayed later with a fresh timestamp."""
    digest = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body,
                      hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def _retry_after_s(value: str | None) -> float | None:
    """Retry-After as seconds (RFC 9110 10.2.3: delay-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def check_answer(response: httpx.Response, where: str) -> None:
    """Nothing for a 2xx; else :class:`DeliveryError`: retryable for 5xx, 408 and 429 (with the
    receiver's Retry-After), final for other 4xx and 3xx (redirects are not followed: configure
    the final URL; the same request would be refused again)."""
    status = response.status_code
    if 200 <= status < 300:
        return
    reason = f"{where}: HTTP {status} {response.reason_phrase}".rstrip()
    if status >= 500 or status in _RETRYABLE_4XX:
        raise DeliveryError(reason, retry_after_s=_retry_after_s(
            response.headers.get("Retry-After")))
    raise DeliveryError(reason, retryable=False)


class WebhookChannel(Channel[WebhookSettings]):
    """One persistent HTTP client (connections kept alive between alerts)."""

    type = "webhook"
    settings_model = WebhookSettings

    def __init__(self, settings: WebhookSettings) -> None:
        super().__init__(settings)
        self._secret = settings.resolved_secret()   # a secret file that is wrong fails at start
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:  # made on first use, inside the dispatcher's event loop
            self._client = httpx.AsyncClient(timeout=self.settings.timeout_s,
                                             follow_redirects=False)
        return self._client

    async def send(self, view: AlertView, idempotency_key: str) -> None:
        body = encode_body(view)
        timestamp = str(int(time.time()))
        headers = {
            **self.settings.headers,
            "Content-Type": "application/json; charset=utf-8",
            "Idempotency-Key": idempotency_key,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self._secret, timestamp, body),
        }
        url = str(self.settings.url)
        try:
            response = await self._http().post(url, content=body, headers=headers)
        except httpx.TransportError as exc:  # refused, reset, DNS, timeouts: try again later
            raise DeliveryError(f"POST {url}: {type(exc).__name__}: {exc}") from None
        check_answer(response, f"POST {url}")

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
