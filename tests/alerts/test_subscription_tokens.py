"""Signed subscriber links (alerts/subscriptions/tokens.py): purpose-bound, expiring where it
applies, forgery refused, address hashes keyed and normalised."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from alerts.subscriptions import tokens
from alerts.subscriptions.settings import SubscriptionSettings
from alerts.subscriptions.tokens import SigningOffError, TokenError

SECRET = "s" * 40
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def _settings(secret: str | None = SECRET, ttl_h: float = 48) -> SubscriptionSettings:
    return SubscriptionSettings.model_validate(
        {"secret": secret, "public_url": "https://kota.example.go.id/",
         "signup": {"confirm_ttl_h": ttl_h}})


def _token_of(url: str) -> str:
    parts = urlsplit(url)
    if parts.fragment:
        return unquote(parts.fragment.split("=", 1)[1])
    return parse_qs(parts.query)["token"][0]


def test_confirm_token_round_trip_and_expiry() -> None:
    settings = _settings(ttl_h=2)
    secret = settings.secret_bytes()
    assert secret is not None
    token = tokens.confirm_token(settings, 7, now=NOW)
    claims = tokens.read_token(secret, token, "confirm", now=NOW + timedelta(hours=1))
    assert claims.subscriber_id == 7 and claims.purpose == "confirm"
    assert claims.issued_at == NOW
    assert claims.expires_at == NOW + timedelta(hours=2)
    with pytest.raises(TokenError, match="expired"):
        tokens.read_token(secret, token, "confirm", now=NOW + timedelta(hours=2, seconds=1))


def test_two_confirm_tokens_differ_and_only_the_hash_is_kept() -> None:
    settings = _settings()
    first = tokens.confirm_token(settings, 7, now=NOW)
    second = tokens.confirm_token(settings, 7, now=NOW)
    assert first != second
    assert tokens.confirm_token_hash(first) != tokens.confirm_token_hash(second)
    assert len(tokens.confirm_token_hash(first)) == 64


def test_unsubscribe_never_expires_and_manage_does() -> None:
    settings = _settings()
    secret = settings.secret_bytes()
    assert secret is not None
    unsubscribe = _token_of(tokens.unsubscribe_url(settings, 9, now=NOW))
    years_later = NOW + timedelta(days=3650)
    assert tokens.read_token(secret, unsubscribe, "unsubscribe",
                             now=years_later).subscriber_id == 9
    manage = _token_of(tokens.manage_url(settings, 9, now=NOW))
    assert tokens.read_token(secret, manage, "manage", now=NOW).subscriber_id == 9
    with pytest.raises(TokenError, match="expired"):
        tokens.read_token(secret, manage, "manage",
                          now=NOW + timedelta(days=tokens.MANAGE_TTL_DAYS, seconds=1))


def test_urls_point_at_the_public_address() -> None:
    settings = _settings()
    token = tokens.confirm_token(settings, 1, now=NOW)
    assert tokens.confirm_url(settings, token).startswith(
        "https://kota.example.go.id/api/v1/subscriptions/confirm?token=v1.")
    assert tokens.unsubscribe_url(settings, 1).startswith(
        "https://kota.example.go.id/api/v1/subscriptions/unsubscribe?token=v1.")
    assert tokens.manage_url(settings, 1).startswith(
        "https://kota.example.go.id/langganan/#kelola=v1.")


def test_a_token_works_only_for_its_purpose() -> None:
    settings = _settings()
    secret = settings.secret_bytes()
    assert secret is not None
    unsubscribe = tokens.unsubscribe_token(settings, 3, now=NOW)
    others: tuple[tokens.Purpose, ...] = ("confirm", "manage")
    for other in others:
        with pytest.raises(TokenError, match="not"):
            tokens.read_token(secret, unsubscribe, other, now=NOW)


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),   # signature changed
    lambda t: "v2" + t[2:],                                          # unknown version
    lambda t: t.split(".")[0] + "." + t.split(".")[1],               # no signature
    lambda t: "v1.!!!.???",                                          # not base64
    lambda t: "",
])
def test_forged_or_malformed_tokens_are_refused(mangle: Callable[[str], str]) -> None:
    settings = _settings()
    secret = settings.secret_bytes()
    assert secret is not None
    token = tokens.unsubscribe_token(settings, 3, now=NOW)
    with pytest.raises(TokenError):
        tokens.read_token(secret, mangle(token), "unsubscribe", now=NOW)


def test_a_changed_id_breaks_the_signature() -> None:
    import base64
    settings = _settings()
    secret = settings.secret_bytes()
    assert secret is not None
    version, payload, signature = tokens.unsubscribe_token(settings, 3, now=NOW).split(".")
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    forged = base64.urlsafe_b64encode(raw.replace(b"|3|", b"|4|")).rstrip(b"=").decode()
    with pytest.raises(TokenError, match="signature"):
        tokens.read_token(secret, f"{version}.{forged}.{signature}", "unsubscribe", now=NOW)


def test_another_secret_refuses_the_token() -> None:
    token = tokens.unsubscribe_token(_settings(), 3, now=NOW)
    with pytest.raises(TokenError, match="signature"):
        tokens.read_token(b"t" * 40, token, "unsubscribe", now=NOW)


def test_address_hash_is_normalised_and_keyed() -> None:
    settings = _settings()
    same = tokens.address_hash(settings, "  Siti@Example.ORG ")
    assert same == tokens.address_hash(settings, "siti@example.org")
    assert len(same) == 64
    assert same != tokens.address_hash(_settings("u" * 40), "siti@example.org")
    # URLs keep their case: the path of a webhook is case-sensitive.
    assert (tokens.address_hash(settings, "https://h.example/Hook")
            != tokens.address_hash(settings, "https://h.example/hook"))
    import hashlib
    assert same != hashlib.sha256(b"siti@example.org").hexdigest()


def test_no_secret_means_signing_is_off() -> None:
    with pytest.raises(SigningOffError, match=r"alerts\.subscriptions\.secret"):
        tokens.unsubscribe_url(_settings(None), 1)
    with pytest.raises(SigningOffError):
        tokens.address_hash(_settings(None), "a@b.c")
