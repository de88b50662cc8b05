"""Signed links for subscribers: confirm, unsubscribe, manage (docs/subscriptions.md).

A token is ``v1.<payload>.<signature>``, both parts URL-safe base64 without padding. The
payload is ``purpose|subscriber_id|issued_at|expires_at|nonce`` (seconds since the epoch;
``expires_at`` 0: never); the signature is HMAC-SHA256 over it with
``alerts.subscriptions.secret``. A token is bound to its purpose, so an unsubscribe link cannot
confirm or read anything.

- confirm: expires after ``signup.confirm_ttl_h``; carries a random nonce and only its SHA-256
  (``confirm_token_hash``) is stored, so sending a new confirmation voids the old link.
- unsubscribe: never expires (RFC 8058: a link in an old mail must still work).
- manage (see or delete my data): expires after ``MANAGE_TTL_DAYS``; every mail carries a
  fresh one.

``issued_at`` lets the registry refuse a token older than the subscriber it names (SQLite may
reuse the id of a deleted row). Pure functions: no I/O beyond reading the secret file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from urllib.parse import quote

from alerts.subscriptions.settings import SubscriptionSettings

__all__ = ["MANAGE_TTL_DAYS", "PURPOSES", "Claims", "Purpose", "SigningOffError",
           "TokenError", "address_hash", "confirm_token", "confirm_token_hash", "confirm_url",
           "make_token", "manage_token", "manage_url", "normalise_address", "read_token",
           "unsubscribe_token", "unsubscribe_url"]

Purpose = Literal["confirm", "unsubscribe", "manage"]
PURPOSES: tuple[Purpose, ...] = ("confirm", "unsubscribe", "manage")
# A manage link shows the address and areas: long enough for a mail read weeks later, short
# enough that a forwarded old mail stops showing them. Each new mail carries a fresh link.
MANAGE_TTL_DAYS = 90
_VERSION = "v1"
SECRET_SETTING = "alerts.subscriptions.secret"


class TokenError(ValueError):
    """A token that is malformed, forged, for another purpose, or expired."""


class SigningOffError(RuntimeError):
    """No secret is set: sign-up and signed links are off."""

    def __init__(self) -> None:
        super().__init__(f"{SECRET_SETTING} (or secret_file) is not set: sign-up and "
                         "subscriber links are off")


@dataclass(frozen=True)
class Claims:
    """What a valid token says."""

    purpose: Purpose
    subscriber_id: int
    issued_at: datetime
    expires_at: datetime | None
    nonce: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise TokenError("token is not valid base64") from exc


def _secret(settings: SubscriptionSettings) -> bytes:
    secret = settings.secret_bytes()
    if secret is None:
        raise SigningOffError()
    return secret


def _sign(secret: bytes, payload: bytes) -> bytes:
    # The domain prefix keeps these signatures apart from address hashes made with the key.
    return hmac.new(secret, b"kota-subscription-token:" + payload, hashlib.sha256).digest()


def make_token(secret: bytes, purpose: Purpose, subscriber_id: int, *, now: datetime,
               ttl: timedelta | None) -> str:
    """A signed token; ``ttl`` None: it never expires."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r}")
    issued_s = int(now.timestamp())
    expires_s = 0 if ttl is None else int((now + ttl).timestamp())
    nonce = secrets.token_urlsafe(12) if purpose == "confirm" else ""
    payload = f"{purpose}|{subscriber_id}|{issued_s}|{expires_s}|{nonce}".encode("ascii")
    return f"{_VERSION}.{_b64(payload)}.{_b64(_sign(secret, payload))}"


def read_token(secret: bytes, token: str, purpose: Purpose, *, now: datetime) -> Claims:
    """The claims of a valid token for ``purpose``; TokenError otherwise."""
    parts = token.strip().split(".")
    if len(parts) != 3 or parts[0] != _VERSION:
        raise TokenError("token is malformed")
    payload, signature = _unb64(parts[1]), _unb64(parts[2])
    if not hmac.compare_digest(signature, _sign(secret, payload)):
        raise TokenError("token signature does not match")
    try:
        kind, id_text, issued_text, expires_text, nonce = payload.decode("ascii").split("|")
        subscriber_id, issued_s, expires_s = int(id_text), int(issued_text), int(expires_text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise TokenError("token payload is malformed") from exc
    if kind != purpose:
        raise TokenError(f"token is for {kind!r}, not {purpose!r}")
    if expires_s and now.timestamp() > expires_s:
        raise TokenError("token has expired")
    return Claims(purpose=purpose, subscriber_id=subscriber_id,
                  issued_at=datetime.fromtimestamp(issued_s, UTC),
                  expires_at=datetime.fromtimestamp(expires_s, UTC) if expires_s else None,
                  nonce=nonce)


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


def confirm_token(settings: SubscriptionSettings, subscriber_id: int, *,
                  now: datetime | None = None) -> str:
    """A new confirmation token (store ``confirm_token_hash`` of it on the subscriber)."""
    return make_token(_secret(settings), "confirm", subscriber_id, now=_now(now),
                      ttl=timedelta(hours=settings.signup.confirm_ttl_h))


def confirm_token_hash(token: str) -> str:
    """What the subscriber row keeps of its confirmation token (hex SHA-256)."""
    return hashlib.sha256(token.strip().encode("utf-8")).hexdigest()


def unsubscribe_token(settings: SubscriptionSettings, subscriber_id: int, *,
                      now: datetime | None = None) -> str:
    return make_token(_secret(settings), "unsubscribe", subscriber_id, now=_now(now), ttl=None)


def manage_token(settings: SubscriptionSettings, subscriber_id: int, *,
                 now: datetime | None = None) -> str:
    return make_token(_secret(settings), "manage", subscriber_id, now=_now(now),
                      ttl=timedelta(days=MANAGE_TTL_DAYS))


def _url(settings: SubscriptionSettings, path: str, token: str) -> str:
    return f"{settings.public_url.rstrip('/')}{path}?token={quote(token, safe='')}"


def confirm_url(settings: SubscriptionSettings, token: str) -> str:
    """The link in the confirmation mail, for a token from ``confirm_token``."""
    return _url(settings, "/api/v1/subscriptions/confirm", token)


def unsubscribe_url(settings: SubscriptionSettings, subscriber_id: int, *,
                    now: datetime | None = None) -> str:
    """The one-click unsubscribe link (List-Unsubscribe; RFC 8058 POSTs to it too)."""
    return _url(settings, "/api/v1/subscriptions/unsubscribe",
                unsubscribe_token(settings, subscriber_id, now=now))


def manage_url(settings: SubscriptionSettings, subscriber_id: int, *,
               now: datetime | None = None) -> str:
    """The "see or delete my data" link: the /langganan page reads the token from the fragment
    (a fragment is never sent to a server, so it stays out of access logs)."""
    token = manage_token(settings, subscriber_id, now=now)
    return f"{settings.public_url.rstrip('/')}/langganan/#kelola={quote(token, safe='')}"


def normalise_address(address: str) -> str:
    """An email address trimmed and lower-cased; a URL only trimmed (its path is
    case-sensitive)."""
    text = address.strip()
    return text if "://" in text else text.lower()


def address_hash(settings: SubscriptionSettings, address: str) -> str:
    """Keyed hash (hex HMAC-SHA256) of the normalised address: finds a subscriber by address,
    and what logs may show, without being a lookup table anyone can build."""
    key = _secret(settings)
    message = b"kota-subscriber-address:" + normalise_address(address).encode("utf-8")
    return hmac.new(key, message, hashlib.sha256).hexdigest()
