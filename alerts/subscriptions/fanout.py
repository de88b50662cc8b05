"""Fan-out: one alert version becomes one ``notifications`` row per matching subscriber.

The fan-out is a channel of the outbox (name ``subscribers``): the engine queues one outbox
row per public, real alert version in the same transaction as the decision, and the outbox
dispatcher calls :meth:`FanoutChannel.send`, which inserts the notifications and wakes the
notifier (alerts/subscriptions/notifier.py). "Alert decided" → "fan-out" is therefore as
crash-safe as any delivery: killed before the rows are committed, the dispatcher calls it again;
``(subscriber_id, alert_id, version)`` is unique and rows are inserted with ON CONFLICT DO
NOTHING, so running it twice inserts nothing twice.

At city scale (100,000 subscribers) the database narrows first (active, the hazard, the
severity), then matching runs in Python over the rows in chunks (alerts/subscriptions/match.py),
and the notifications go in with multi-row inserts.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from pydantic import Field
from sqlalchemy import Engine, Table, Text, cast, func, not_, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from alerts.channels._contract import Channel, ChannelSettings, DeliveryError
from alerts.model import AlertView, Audience, alert_view_to_json
from alerts.subscriptions.match import Criteria, is_public, matcher, severities_at_most
from store.subscription_models import Notification, Subscriber

__all__ = ["FANOUT_CHANNEL", "FanoutChannel", "FanoutSettings", "fan_out", "with_fanout"]

log = logging.getLogger(__name__)

FANOUT_CHANNEL = "subscribers"
_CHUNK = 5000         # subscriber rows read per round trip
_INSERT_BATCH = 1000  # notifications per INSERT (SQLite allows 32,766 bound values)
# Versions of an alert that already reached a subscriber: they get the all-clear.
_REACHED = ("queued", "sent", "digested")


def _public() -> list[Audience]:
    return ["public"]


class FanoutSettings(ChannelSettings):
    """Not configured by hand: the service adds it when ``alerts.subscriptions.enabled``."""

    type: Literal["subscribers"] = "subscribers"
    name: str = FANOUT_CHANNEL
    audiences: list[Audience] = Field(default_factory=_public)


def _criteria(row: Any) -> Criteria:
    return Criteria(id=row.id, status=row.status, districts=tuple(row.districts or ()),
                    kelurahan=tuple(row.kelurahan or ()), lat=row.lat, lon=row.lon,
                    radius_km=row.radius_km, hazards=tuple(row.hazards or ()),
                    min_severity=row.min_severity)


_TABLE: Table = Notification.__table__  # type: ignore[assignment]
_COLUMNS = (Subscriber.id, Subscriber.channel, Subscriber.status, Subscriber.districts,
            Subscriber.kelurahan, Subscriber.lat, Subscriber.lon, Subscriber.radius_km,
            Subscriber.hazards, Subscriber.min_severity)


def _matching(session: Session, view: AlertView) -> Iterator[tuple[int, str]]:
    """(subscriber id, channel) of every active subscriber this version goes to."""
    if view.msg_type == "Cancel":
        reached = (select(Notification.subscriber_id)
                   .where(Notification.alert_id == view.id, Notification.version < view.version,
                          Notification.status.in_(_REACHED))
                   .distinct())
        yield from ((reached_id, channel) for reached_id, channel in session.execute(
            select(Subscriber.id, Subscriber.channel)
            .where(Subscriber.status == "active", Subscriber.id.in_(reached))))
        return
    # Narrow in SQL, exactly enough for Python to decide: the JSON lists are read as text by
    # both SQLite and PostgreSQL; a list with no string in it is empty.
    hazards_text = cast(Subscriber.hazards, Text)
    kelurahan_text = cast(Subscriber.kelurahan, Text)
    districts_text = cast(Subscriber.districts, Text)
    near = [Subscriber.lat.is_not(None), kelurahan_text.like('%"%')]
    near += [districts_text.ilike(f'%{json.dumps(name)}%') for name in view.area.districts]
    query = (select(*_COLUMNS)
             .where(Subscriber.status == "active",
                    Subscriber.min_severity.in_(severities_at_most(view.severity)),
                    or_(not_(hazards_text.like('%"%')),
                        hazards_text.like(f'%"{view.hazard}"%')),
                    or_(*near))
             .order_by(Subscriber.id)
             .execution_options(stream_results=True))
    match = matcher(view)
    for partition in session.connection().execute(query).partitions(_CHUNK):
        for row in partition:
            if match(_criteria(row)):
                yield row.id, row.channel


def _insert(engine: Engine) -> Any:
    dialect = engine.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(_TABLE).on_conflict_do_nothing(
            index_elements=["subscriber_id", "alert_id", "version"])
    if dialect == "sqlite":
        return sqlite.insert(_TABLE).on_conflict_do_nothing(
            index_elements=["subscriber_id", "alert_id", "version"])
    raise ValueError(f"fan-out: database {dialect!r} is not supported (SQLite or PostgreSQL)")


def fan_out(engine: Engine, view: AlertView, now: datetime | None = None,
            on_batch: Callable[[], None] | None = None) -> int:
    """Queue this version for every subscriber it goes to, once; returns how many rows are
    queued for it now (this run's and an earlier run's).

    The matches are read first, then inserted in batches of their own transactions with
    ``on_batch`` called after each: the notifier starts on the first thousand while the rest
    are still being written (a single transaction for 22,722 rows took 2-5 s before the first
    could be sent). A crash between batches is safe: the outbox runs the fan-out again and the
    unique (subscriber, alert, version) drops what is already there."""
    if not is_public(view):
        return 0
    now = now or datetime.now(UTC)
    due_at = min(now, view.sent_at)   # due since the decision (also by a test's clock)
    payload = alert_view_to_json(view)
    statement = _insert(engine)
    with Session(engine) as session:
        matches = list(_matching(session, view))
    for start in range(0, len(matches), _INSERT_BATCH):
        batch = [{"subscriber_id": subscriber_id, "alert_id": view.id,
                  "version": view.version, "channel": channel, "severity": view.severity,
                  "payload": payload, "status": "queued", "attempts": 0,
                  "next_attempt_at": due_at, "created_at": now}
                 for subscriber_id, channel in matches[start:start + _INSERT_BATCH]]
        with engine.begin() as connection:
            connection.execute(statement, batch)
        if on_batch is not None:
            on_batch()
    with Session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(Notification).where(
            Notification.alert_id == view.id, Notification.version == view.version)) or 0)


class FanoutChannel(Channel[FanoutSettings]):
    """The outbox's way to subscribers: ``send`` fans the version out and wakes the notifier."""

    kind: ClassVar[str] = "subscribers"
    settings_model = FanoutSettings

    def __init__(self, engine: Engine, settings: FanoutSettings | None = None, *,
                 on_queued: Callable[[], None] | None = None) -> None:
        super().__init__(settings or FanoutSettings())
        self.engine = engine
        self.on_queued = on_queued

    def accepts(self, view: AlertView) -> bool:
        # The all-clear included: it goes to whoever got an earlier version.
        return is_public(view)

    async def send(self, view: AlertView, idempotency_key: str) -> None:
        try:
            count = await asyncio.to_thread(fan_out, self.engine, view, None,
                                            self.on_queued)
        except Exception as exc:  # the database away: the outbox tries again later
            raise DeliveryError(f"fan-out of {view.identifier}: {type(exc).__name__}: "
                                f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
        log.info("fan-out: %s queued for %d subscriber(s)", view.identifier, count)
        if count and self.on_queued is not None:
            self.on_queued()


def with_fanout(channels: Sequence[Channel[Any]], enabled: bool, engine: Engine
                ) -> list[Channel[Any]]:
    """``channels`` and, when subscriptions are ``enabled``, the fan-out: what an
    :class:`~alerts.state.AlertStore` outside the service (``kota alerts resolve``, the API)
    queues to, so an all-clear an operator gives reaches subscribers too."""
    if not enabled or any(channel.name == FANOUT_CHANNEL for channel in channels):
        return list(channels)
    return [*channels, FanoutChannel(engine)]
