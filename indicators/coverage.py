"""Alert coverage (ISO 37122): which districts confirmed subscriptions reach, per hazard.

ISO 37122's indicator is the share of the population with access to real-time public alerts
for air and water quality. Here a district counts as covered for a hazard when the hazard is
sensed live there (decided in indicators/city.py) and at least one subscription confirmed
before the moment asked about, and not unsubscribed by then, reaches the district for that
hazard. A subscription is a proxy for access: it says someone in or for the district chose to
be told, not that every resident hears it (docs/indicators.md, "Alert coverage").

The subscriptions are read from the store (the layer below); the matching mirrors the alert
engine's (alerts/subscriptions/match.py), which this package may not import: the same district
names (case and spaces folded), kelurahan through the registry's devices, and a point with a
radius through the registered devices of the hazard's kind in the district.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, and_, or_, select

from kota.registry import Device
from store.subscription_models import Subscriber

__all__ = ["HAZARD_KINDS", "Coverage", "Subscription", "covered_districts", "read_subscriptions"]

# The hazards with a live sensing condition in city_indicators, and the device kind that
# senses each (a flood alert comes from a water gauge, an air alert from an air station).
HAZARD_KINDS = {"flood": "water", "air": "air"}
EARTH_RADIUS_KM = 6371.0088  # mean Earth radius (IUGG), as the alert engine's matching

# hazard -> (city, district) -> confirmed subscriptions that reach it
Coverage = dict[str, dict[tuple[str, str], int]]


@dataclass(frozen=True)
class Subscription:
    """What one subscription asks for (no address: this module never reads one)."""

    hazards: tuple[str, ...] = ()     # empty: every public hazard
    districts: tuple[str, ...] = ()
    kelurahan: tuple[str, ...] = ()
    lat: float | None = None
    lon: float | None = None
    radius_km: float | None = None


def read_subscriptions(engine: Engine, at_ms: int) -> list[Subscription]:
    """The subscriptions confirmed before ``at_ms`` and not unsubscribed by then. Deleted ones
    are gone, so a past day recomputed later can only count fewer than there were."""
    at = datetime.fromtimestamp(at_ms / 1000, tz=UTC)
    query = (select(Subscriber.hazards, Subscriber.districts, Subscriber.kelurahan,
                    Subscriber.lat, Subscriber.lon, Subscriber.radius_km)
             .where(Subscriber.confirmed_at.is_not(None), Subscriber.confirmed_at < at,
                    or_(Subscriber.status == "active",
                        and_(Subscriber.status == "unsubscribed",
                             Subscriber.unsubscribed_at >= at))))
    with engine.connect() as connection:
        return [Subscription(tuple(row.hazards or ()), tuple(row.districts or ()),
                             tuple(row.kelurahan or ()), row.lat, row.lon, row.radius_km)
                for row in connection.execute(query)]


def _fold(name: str) -> str:
    return " ".join(name.casefold().split())


def _distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi, dlam = phi2 - phi1, math.radians(lon2 - lon1)
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlam / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def covered_districts(subscriptions: Iterable[Subscription], devices: Sequence[Device],
                      hazards: Iterable[str] = tuple(HAZARD_KINDS)) -> Coverage:
    """Per hazard, the (city, district) each subscription reaches, with how many reach it.

    A subscription reaches a district when it names the district, names a kelurahan a
    registered device places in the district, or its point lies within ``radius_km`` of a
    registered device of the hazard's kind in the district.
    """
    districts = {(d.city, _fold(d.district)): (d.city, d.district) for d in devices}
    kelurahan: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for device in devices:
        if device.kelurahan:
            kelurahan[_fold(device.kelurahan)].add((device.city, device.district))
    coverage: Coverage = {}
    subscriptions = list(subscriptions)
    for hazard in hazards:
        kind = HAZARD_KINDS.get(hazard)
        sensors = [d for d in devices if d.kind == kind]
        counts: dict[tuple[str, str], int] = defaultdict(int)
        for sub in subscriptions:
            if sub.hazards and hazard not in sub.hazards:
                continue
            reached: set[tuple[str, str]] = set()
            for name in sub.districts:
                reached |= {key for (_city, folded), key in districts.items()
                            if folded == _fold(name)}
            for name in sub.kelurahan:
                reached |= kelurahan.get(_fold(name), set())
            if sub.lat is not None and sub.lon is not None:
                radius = sub.radius_km or 0.0
                reached |= {(d.city, d.district) for d in sensors
                            if _distance_km(sub.lat, sub.lon, d.lat, d.lon) <= radius}
            for key in reached:
                counts[key] += 1
        coverage[hazard] = dict(counts)
    return coverage
