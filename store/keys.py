"""API keys: created with a random 256-bit secret shown once, stored as its SHA-256.

A key reads ``kota_<prefix>_<secret>``: the prefix (8 hex digits) finds the row and names the key
in lists and logs; the secret (43 URL-safe characters) is never stored, only the hash of the
whole key, compared in constant time. A high-entropy random key needs no slow password hash.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store.models import ROLES, ApiKey, utc

__all__ = ["KEY_PATTERN", "KeyInfo", "KeyProblem", "KeyStore", "parse_duration"]

KEY_PATTERN = re.compile(r"^kota_([0-9a-f]{8})_([A-Za-z0-9_-]{43})$")
Role = Literal["public", "operator", "admin"]
_DURATION = re.compile(r"^(\d{1,5})([hdw])$")
# last_used_at is written at most this often per key (a busy key does not write per request).
LAST_USED_RESOLUTION = timedelta(minutes=1)


def parse_duration(text: str) -> timedelta:
    """``12h``, ``90d``, ``8w`` as a timedelta; ValueError otherwise."""
    match = _DURATION.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"not a duration: {text!r} (expected e.g. 12h, 90d, 8w)")
    amount, unit = int(match.group(1)), match.group(2)
    return timedelta(hours=amount) * {"h": 1, "d": 24, "w": 24 * 7}[unit]


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode("ascii")).hexdigest()


@dataclass(frozen=True)
class KeyInfo:
    """What may be shown about a key: everything but its hash."""

    id: int
    name: str
    role: Role
    scopes: tuple[str, ...]
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    created_by: str

    @classmethod
    def of(cls, row: ApiKey) -> KeyInfo:
        created = utc(row.created_at)
        assert created is not None
        return cls(id=row.id, name=row.name, role=row.role,  # type: ignore[arg-type]
                   scopes=tuple(row.scopes.split()) if row.scopes else (), prefix=row.prefix,
                   created_at=created, expires_at=utc(row.expires_at),
                   revoked_at=utc(row.revoked_at), last_used_at=utc(row.last_used_at),
                   created_by=row.created_by)

    def status(self, now: datetime | None = None) -> Literal["active", "expired", "revoked"]:
        now = now or datetime.now(UTC)
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


class KeyProblem(Exception):
    """A presented key that does not authenticate; ``reason`` is safe to tell the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# What a key's scopes may name: an API area (the first path segment after /api/v1/), alone (every
# method) or with ":read" (GET and HEAD only). No scopes: everything its role may do.
KEY_SCOPE_AREAS = ("readings", "indicators", "stream", "meta", "devices", "alerts",
                   "subscriptions", "keys")


def check_scopes(scopes: Sequence[str]) -> tuple[str, ...]:
    """The scopes, checked; ``ValueError`` naming the first unknown one."""
    for item in scopes:
        area, _, access = item.partition(":")
        if area not in KEY_SCOPE_AREAS or access not in ("", "read"):
            raise ValueError(f"unknown scope {item!r}: an area ({', '.join(KEY_SCOPE_AREAS)}), "
                             "optionally with :read (e.g. alerts:read)")
    return tuple(dict.fromkeys(scopes))


class KeyStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, name: str, role: str, *, expires_in: timedelta | None,
               created_by: str, scopes: Sequence[str] = ()) -> tuple[KeyInfo, str]:
        """A new key: its record and the key itself (shown once, stored nowhere)."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}: one of {', '.join(ROLES)}")
        if not name.strip() or len(name) > 100:
            raise ValueError("a key needs a name of 1 to 100 characters")
        scopes = check_scopes(scopes)
        now = datetime.now(UTC)
        for _attempt in range(5):
            prefix = secrets.token_hex(4)
            key = f"kota_{prefix}_{secrets.token_urlsafe(32)}"
            row = ApiKey(name=name.strip(), role=role, scopes=" ".join(scopes) or None,
                         prefix=prefix, secret_hash=_hash(key), created_at=now,
                         expires_at=now + expires_in if expires_in is not None else None,
                         created_by=created_by[:100])
            try:
                with Session(self.engine) as session, session.begin():
                    session.add(row)
                    session.flush()
                    info = KeyInfo.of(row)
            except IntegrityError:
                continue  # the prefix was taken: draw another
            return info, key
        raise RuntimeError("could not draw an unused key prefix")

    def list(self) -> list[KeyInfo]:
        with Session(self.engine) as session:
            return [KeyInfo.of(row) for row in session.scalars(select(ApiKey).order_by(ApiKey.id))]

    def get(self, key_id: int) -> KeyInfo | None:
        with Session(self.engine) as session:
            row = session.get(ApiKey, key_id)
            return KeyInfo.of(row) if row else None

    def revoke(self, key_id: int) -> KeyInfo | None:
        """Revoked now (a revoked key stays revoked); None when there is no such key."""
        with Session(self.engine) as session, session.begin():
            row = session.get(ApiKey, key_id)
            if row is None:
                return None
            if row.revoked_at is None:
                row.revoked_at = datetime.now(UTC)
            session.flush()
            return KeyInfo.of(row)

    def authenticate(self, key: str) -> KeyInfo:
        """The active key ``key`` is, with its last use noted; :class:`KeyProblem` otherwise."""
        match = KEY_PATTERN.match(key)
        if match is None:
            raise KeyProblem("not a Kota Cerdas API key (expected kota_<prefix>_<secret>)")
        now = datetime.now(UTC)
        with Session(self.engine) as session, session.begin():
            row = session.scalars(select(ApiKey).where(ApiKey.prefix == match.group(1))).first()
            # Compared even without a row, so a wrong prefix takes as long as a wrong secret.
            expected = row.secret_hash if row is not None else "0" * 64
            if not hmac.compare_digest(expected, _hash(key)) or row is None:
                raise KeyProblem("unknown API key")
            info = KeyInfo.of(row)
            status = info.status(now)
            if status != "active":
                raise KeyProblem(f"this API key is {status}")
            last = utc(row.last_used_at)
            if last is None or now - last >= LAST_USED_RESOLUTION:
                row.last_used_at = now
            return info
