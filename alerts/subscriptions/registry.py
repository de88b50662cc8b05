"""The subscriber registry: sign-up, confirmation, unsubscribe, deletion, a subscriber's own
data and the purge of what is no longer needed (docs/subscriptions.md).

One address has one subscription per channel: a new sign-up for an address already subscribed
waits as ``pending`` and replaces the old one only when it is confirmed, so a stranger who signs
someone else up changes nothing. Unsubscribing erases the address at once (the row keeps only
what it asked for, no one to send it to); deleting removes the row and its notifications.

Every method blocks (SQLAlchemy): the API calls them through ``asyncio.to_thread``. Addresses
never go to a log: callers log ``Subscriber.id`` or a prefix of ``address_hash``.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session

from alerts.subscriptions import tokens
from alerts.subscriptions.settings import SubscriptionSettings
from kota.registry import Registry
from store.models import utc
from store.subscription_models import Notification, Subscriber

__all__ = ["HAZARDS", "LANGUAGES", "MAX_RADIUS_KM", "SEVERITIES", "Areas", "Confirmed",
           "Invalid", "SubscriptionRegistry", "Wanted", "known_areas", "mask_address",
           "validate"]

# Hazards a subscriber may choose: what alert rules announce to the public. "safety" means only
# the public safety alerts (fire, smoke); operators' and field teams' alerts are never fanned out
# to subscribers (alerts/subscriptions/match.py). "device" is for field teams only.
HAZARDS = ("flood", "air", "rain", "safety")
SEVERITIES = ("Minor", "Moderate", "Severe", "Extreme")
LANGUAGES = ("id-ID", "en-US")
# A point and radius is for "around my house / my school": ten km covers a large kecamatan and
# its neighbours; wider than that, choose kecamatan instead.
MAX_RADIUS_KM = 10.0
MAX_AREAS = 50
# RFC 5321 limits: 64 for the local part, 254 for the whole address in practice.
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@"
                    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")
MAX_URL_CHARS = 2000
Channel = Literal["email", "webhook", "apprise"]


class Invalid(ValueError):
    """A sign-up that cannot be accepted; ``field`` names the request field."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


@dataclass(frozen=True)
class Areas:
    """The kecamatan (with their kota administrasi) and kelurahan one may subscribe to."""

    city: str
    districts: dict[str, str]                 # kecamatan → kota administrasi ("" unknown)
    kelurahan: dict[str, str] = field(default_factory=dict)   # kelurahan → kecamatan


def known_areas(registry: Registry, data_dir: Path) -> Areas:
    """The registry's city: its kecamatan from ``<data_dir>/<city>/districts.csv`` (the 44 of
    Jakarta) and those of registered devices; kelurahan are those devices are in."""
    cities = sorted({device.city for device in registry}) or ["jakarta"]
    city = cities[0]
    districts: dict[str, str] = {}
    table = data_dir / city / "districts.csv"
    if table.is_file():
        with table.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                name = (row.get("kecamatan") or "").strip()
                if name and (row.get("city") or city).strip() == city:
                    districts[name] = (row.get("kota_administrasi") or "").strip()
    kelurahan: dict[str, str] = {}
    for device in registry:
        if device.city != city:
            continue
        districts.setdefault(device.district, "")
        if device.kelurahan:
            kelurahan[device.kelurahan] = device.district
    return Areas(city=city, districts=districts, kelurahan=kelurahan)


@dataclass(frozen=True)
class Wanted:
    """A validated subscription request."""

    channel: Channel
    address: str
    hazards: tuple[str, ...]
    min_severity: str
    language: str
    districts: tuple[str, ...] = ()
    kelurahan: tuple[str, ...] = ()
    lat: float | None = None
    lon: float | None = None
    radius_km: float | None = None
    quiet_start_h: int | None = None
    quiet_end_h: int | None = None
    label: str | None = None


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(value.strip() for value in values if value.strip()))


def _http_url(address: str, field_name: str) -> str:
    parts = urlsplit(address)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid(field_name, "a webhook must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise Invalid(field_name, "a webhook URL carries no user or password; put a secret "
                                  "in its path or query instead")
    return address


def _apprise_url(address: str, field_name: str) -> str:
    import apprise  # heavy: only for operators' agency subscriptions

    if not re.match(r"^[a-z][a-z0-9+.-]*://", address) or not apprise.Apprise().add(address):
        raise Invalid(field_name, "not an apprise URL apprise can use (tgram://, slack://, "
                                  "ntfy://, json://, ...; see the apprise documentation)")
    return address


def validate(areas: Areas, *, channel: str, address: str, hazards: Sequence[str],
             min_severity: str, language: str, districts: Sequence[str] = (),
             kelurahan: Sequence[str] = (), lat: float | None = None,
             lon: float | None = None, radius_km: float | None = None,
             quiet_start_h: int | None = None, quiet_end_h: int | None = None,
             label: str | None = None, operator: bool = False) -> Wanted:
    """A request checked against the rules of docs/subscriptions.md; Invalid names the field."""
    address = address.strip()
    if channel == "email":
        address = tokens.normalise_address(address)
        if len(address) > 254 or not _EMAIL.match(address):
            raise Invalid("address", "not an email address")
    elif channel in ("webhook", "apprise"):
        if len(address) > MAX_URL_CHARS:
            raise Invalid("address", f"longer than {MAX_URL_CHARS} characters")
        if channel == "apprise":
            if not operator:
                raise Invalid("channel", "apprise (chat) channels are set up by operators for "
                                         "agencies' groups; choose email or webhook")
            address = _apprise_url(address, "address")
        else:
            address = _http_url(address, "address")
    else:
        raise Invalid("channel", f"unknown channel {channel!r}: email or webhook"
                                 f"{' or apprise' if operator else ''}")
    chosen_hazards = _unique(hazards)
    if not chosen_hazards:
        raise Invalid("hazards", f"choose at least one of {', '.join(HAZARDS)}")
    for hazard in chosen_hazards:
        if hazard not in HAZARDS:
            raise Invalid("hazards", f"unknown hazard {hazard!r}: {', '.join(HAZARDS)}")
    if min_severity not in SEVERITIES:
        raise Invalid("min_severity", f"one of {', '.join(SEVERITIES)}")
    if language not in LANGUAGES:
        raise Invalid("language", f"one of {', '.join(LANGUAGES)}")
    chosen_districts, chosen_kelurahan = _unique(districts), _unique(kelurahan)
    if len(chosen_districts) + len(chosen_kelurahan) > MAX_AREAS:
        raise Invalid("districts", f"at most {MAX_AREAS} kecamatan and kelurahan together")
    for name in chosen_districts:
        if name not in areas.districts:
            raise Invalid("districts", f"unknown kecamatan {name!r} in {areas.city}; "
                                       "GET /api/v1/subscriptions/areas lists them")
    for name in chosen_kelurahan:
        if name not in areas.kelurahan:
            raise Invalid("kelurahan", f"unknown kelurahan {name!r} in {areas.city}; "
                                       "GET /api/v1/subscriptions/areas lists them")
    point = (lat, lon, radius_km)
    if any(value is not None for value in point):
        if lat is None or lon is None or radius_km is None:
            raise Invalid("radius_km", "a point needs lat, lon and radius_km together")
        if not all(math.isfinite(value) for value in (lat, lon, radius_km)):
            raise Invalid("lat", "lat, lon and radius_km must be numbers")
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise Invalid("lat", "lat must be within ±90 and lon within ±180 degrees")
        if not 0 < radius_km <= MAX_RADIUS_KM:
            raise Invalid("radius_km", f"more than 0 and at most {MAX_RADIUS_KM:g} km")
    if not chosen_districts and not chosen_kelurahan and lat is None:
        raise Invalid("districts", "choose a kecamatan or kelurahan, or a point and radius")
    if (quiet_start_h is None) != (quiet_end_h is None):
        raise Invalid("quiet_start_h", "quiet hours need a start and an end hour")
    for name, hour in (("quiet_start_h", quiet_start_h), ("quiet_end_h", quiet_end_h)):
        if hour is not None and not 0 <= hour <= 23:
            raise Invalid(name, "an hour from 0 to 23")
    if label is not None and len(label) > 100:
        raise Invalid("label", "at most 100 characters")
    return Wanted(channel=channel, address=address, hazards=chosen_hazards,  # type: ignore[arg-type]
                  min_severity=min_severity, language=language, districts=chosen_districts,
                  kelurahan=chosen_kelurahan, lat=lat, lon=lon, radius_km=radius_km,
                  quiet_start_h=quiet_start_h, quiet_end_h=quiet_end_h, label=label)


def mask_address(channel: str, address: str) -> str:
    """What operators see: ``s***@example.org``, ``https://hooks.example.org/***``,
    ``tgram://***``."""
    if not address:
        return ""
    if channel == "email":
        local, _, domain = address.partition("@")
        return f"{local[:1]}***@{domain}"
    parts = urlsplit(address)
    if channel == "webhook" and parts.hostname:
        return f"{parts.scheme}://{parts.hostname}/***"
    return f"{parts.scheme or channel}://***"


@dataclass(frozen=True)
class Created:
    """The outcome of a sign-up: what to send (nothing when the address had its share)."""

    subscriber_id: int | None
    confirm_token: str | None       # mail this (email) or use it as the challenge (webhook)


@dataclass(frozen=True)
class Confirmed:
    subscriber_id: int
    language: str
    replaced: int                   # older subscriptions of the address it replaced


class SubscriptionRegistry:
    """Subscribers in the database ``engine`` (migration 0004_subscriptions)."""

    def __init__(self, engine: Engine, settings: SubscriptionSettings) -> None:
        self.engine = engine
        self.settings = settings

    # -- sign-up -------------------------------------------------------------------------------
    def create(self, wanted: Wanted, *, created_by: str, active: bool = False,
               now: datetime | None = None) -> Created:
        """A new subscription. Public sign-ups (``active`` False) wait for their confirmation;
        an address that already had ``signup.per_address_per_day`` confirmations in the last
        day gets none (and no row: a pending row without a mail could never be confirmed)."""
        now = now or datetime.now(UTC)
        digest = tokens.address_hash(self.settings, wanted.address)
        with Session(self.engine) as session, session.begin():
            if not active:
                since = now - timedelta(days=1)
                sent = session.scalar(select(func.count()).select_from(Subscriber).where(
                    Subscriber.address_hash == digest, Subscriber.confirm_sent_at >= since))
                if (sent or 0) >= self.settings.signup.per_address_per_day:
                    return Created(subscriber_id=None, confirm_token=None)
            row = Subscriber(
                channel=wanted.channel, address=wanted.address, address_hash=digest,
                status="active" if active else "pending", language=wanted.language,
                districts=list(wanted.districts), kelurahan=list(wanted.kelurahan),
                lat=wanted.lat, lon=wanted.lon, radius_km=wanted.radius_km,
                hazards=list(wanted.hazards), min_severity=wanted.min_severity,
                quiet_start_h=wanted.quiet_start_h, quiet_end_h=wanted.quiet_end_h,
                created_by=created_by, label=wanted.label, created_at=now, updated_at=now,
                confirmed_at=now if active else None)
            session.add(row)
            session.flush()
            token = None
            if not active:
                token = tokens.confirm_token(self.settings, row.id, now=now)
                row.confirm_hash = tokens.confirm_token_hash(token)
                row.confirm_sent_at = now
            return Created(subscriber_id=row.id, confirm_token=token)

    def confirm(self, token: str, *, now: datetime | None = None) -> Confirmed:
        """Activate the subscription the confirmation token names; the address's other
        subscriptions on the same channel (older ones, other pending sign-ups) are replaced.
        TokenError when the link is not (or no longer) good."""
        now = now or datetime.now(UTC)
        claims = tokens.read_token(self._secret(), token, "confirm", now=now)
        with Session(self.engine) as session, session.begin():
            row = session.get(Subscriber, claims.subscriber_id)
            if row is None or row.confirm_hash != tokens.confirm_token_hash(token):
                if row is not None and row.status == "active":
                    return Confirmed(row.id, row.language, 0)   # a second click
                raise tokens.TokenError("this confirmation link was replaced or has lapsed")
            older = session.scalars(select(Subscriber.id).where(
                Subscriber.address_hash == row.address_hash, Subscriber.channel == row.channel,
                Subscriber.id != row.id)).all()
            if older:
                session.execute(delete(Notification).where(
                    Notification.subscriber_id.in_(older)))
                session.execute(delete(Subscriber).where(Subscriber.id.in_(older)))
            row.status, row.confirmed_at, row.updated_at = "active", now, now
            row.confirm_hash = None
            return Confirmed(row.id, row.language, len(older))

    # -- leaving -------------------------------------------------------------------------------
    def subscriber_for(self, token: str, purpose: tokens.Purpose,
                       now: datetime | None = None) -> Subscriber | None:
        """The subscriber an unsubscribe or manage token names (None: gone); TokenError for a
        bad token. A token older than the row is for an earlier subscriber with the same id."""
        claims = tokens.read_token(self._secret(), token, purpose, now=now or datetime.now(UTC))
        with Session(self.engine, expire_on_commit=False) as session:
            row = session.get(Subscriber, claims.subscriber_id)
            if row is None:
                return None
            created = utc(row.created_at) or row.created_at
            if claims.issued_at < created.replace(microsecond=0):
                return None
            return row

    def unsubscribe(self, subscriber_id: int, *, now: datetime | None = None) -> bool:
        """Stop everything to the subscriber and erase its address at once; False: already
        unsubscribed (or gone)."""
        now = now or datetime.now(UTC)
        with Session(self.engine) as session, session.begin():
            row = session.get(Subscriber, subscriber_id)
            if row is None or row.status == "unsubscribed":
                return False
            row.status, row.unsubscribed_at, row.updated_at = "unsubscribed", now, now
            row.address, row.address_hash, row.confirm_hash = "", "", None
            session.execute(delete(Notification).where(
                Notification.subscriber_id == subscriber_id, Notification.status == "queued"))
            return True

    def delete(self, subscriber_id: int) -> bool:
        """Remove the subscriber and its notifications; False: there was none."""
        with Session(self.engine) as session, session.begin():
            session.execute(delete(Notification).where(
                Notification.subscriber_id == subscriber_id))
            gone = session.execute(delete(Subscriber).where(Subscriber.id == subscriber_id))
            return bool(gone.rowcount)  # type: ignore[attr-defined]

    def purge(self, *, now: datetime | None = None) -> dict[str, int]:
        """Delete unconfirmed sign-ups older than ``signup.confirm_ttl_h`` and unsubscribed
        rows older than ``delivery.keep_notifications_days`` (with their notifications)."""
        now = now or datetime.now(UTC)
        pending_before = now - timedelta(hours=self.settings.signup.confirm_ttl_h)
        left_before = now - timedelta(days=self.settings.delivery.keep_notifications_days)
        with Session(self.engine) as session, session.begin():
            counts = {}
            for name, condition in (
                    ("unconfirmed", (Subscriber.status == "pending")
                     & (Subscriber.created_at < pending_before)),
                    ("unsubscribed", (Subscriber.status == "unsubscribed")
                     & (Subscriber.unsubscribed_at < left_before))):
                ids = list(session.scalars(select(Subscriber.id).where(condition)))
                if ids:
                    session.execute(delete(Notification).where(
                        Notification.subscriber_id.in_(ids)))
                    session.execute(delete(Subscriber).where(Subscriber.id.in_(ids)))
                counts[name] = len(ids)
            return counts

    # -- reading -------------------------------------------------------------------------------
    def export(self, subscriber_id: int) -> dict[str, Any] | None:
        """Everything stored about one subscriber, as a subscriber may see it."""
        with Session(self.engine) as session:
            row = session.get(Subscriber, subscriber_id)
            if row is None:
                return None
            notifications = session.scalars(
                select(Notification).where(Notification.subscriber_id == subscriber_id)
                .order_by(Notification.id.desc()).limit(500)).all()
            return {
                **subscriber_view(row, mask=False),
                "stored_also": ["address_hash (a keyed hash of the address, to find it)"]
                + (["confirm_hash (of the pending confirmation link)"]
                   if row.confirm_hash else []),
                "notifications": [
                    {"id": n.id, "alert_id": n.alert_id, "version": n.version,
                     "channel": n.channel, "severity": n.severity, "status": n.status,
                     "attempts": n.attempts, "created_at": _iso(n.created_at),
                     "sent_at": _iso(n.sent_at)} for n in notifications],
            }

    def listing(self, *, status: str | None = None, limit: int = 100, after_id: int = 0,
             mask: bool = True) -> list[dict[str, Any]]:
        with Session(self.engine) as session:
            query = select(Subscriber).where(Subscriber.id > after_id)
            if status is not None:
                query = query.where(Subscriber.status == status)
            rows = session.scalars(query.order_by(Subscriber.id).limit(limit)).all()
            return [subscriber_view(row, mask=mask) for row in rows]

    def notifications(self, *, status: str | None, limit: int = 100,
                      after_id: int = 0) -> Sequence[Notification]:
        with Session(self.engine) as session:
            query = select(Notification).where(Notification.id > after_id)
            if status is not None:
                query = query.where(Notification.status == status)
            return session.scalars(query.order_by(Notification.id).limit(limit)).all()

    def _secret(self) -> bytes:
        secret = self.settings.secret_bytes()
        if secret is None:
            raise tokens.SigningOffError()
        return secret


def _iso(moment: datetime | None) -> str | None:
    found = utc(moment)
    return found.isoformat() if found is not None else None


def subscriber_view(row: Subscriber, *, mask: bool) -> dict[str, Any]:
    """A subscriber as JSON; ``mask``: the address as operators see it."""
    return {
        "id": row.id, "channel": row.channel,
        "address": mask_address(row.channel, row.address) if mask else row.address,
        "status": row.status, "language": row.language, "districts": list(row.districts),
        "kelurahan": list(row.kelurahan), "lat": row.lat, "lon": row.lon,
        "radius_km": row.radius_km, "hazards": list(row.hazards),
        "min_severity": row.min_severity, "quiet_start_h": row.quiet_start_h,
        "quiet_end_h": row.quiet_end_h, "created_by": row.created_by, "label": row.label,
        "created_at": _iso(row.created_at), "confirmed_at": _iso(row.confirmed_at),
        "updated_at": _iso(row.updated_at), "unsubscribed_at": _iso(row.unsubscribed_at),
        "last_sent_at": _iso(row.last_sent_at),
    }
