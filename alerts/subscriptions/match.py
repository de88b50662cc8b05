"""Which subscribers an alert version is for: pure functions, no I/O.

A subscriber matches a version when it is active, the alert is for the public and real (CAP
audience public, status Actual: never operators' or field teams' alerts, never drills), the
hazard is one it chose (none chosen: every public hazard), the severity is at least its
``min_severity`` (CAP order) and the area meets its own: one of its kecamatan among the alert's,
one of its kelurahan named in the alert's area, or its point within ``radius_km`` of the alert's
circle (the two circles touch: distance ≤ its radius + the circle's radius) or inside the
alert's polygon. The all-clear (CAP Cancel) is not matched here: it goes to whoever got an
earlier version of that alert (alerts/subscriptions/fanout.py).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from alerts.channels._contract import SEVERITY_RANK
from alerts.model import AlertView, Area

__all__ = ["PUBLIC_HAZARDS", "AreaMatcher", "Criteria", "area_matches", "haversine_km",
           "is_public", "matcher", "matches", "point_in_polygon", "severities_at_most"]

# The hazards a subscriber may choose. Safety alerts reach subscribers only when a rule makes
# them public (fire, smoke); device health is for field teams and never does.
PUBLIC_HAZARDS = ("flood", "air", "rain", "safety")
# Mean Earth radius (IUGG), km: haversine's error against the ellipsoid is < 0.5 %.
EARTH_RADIUS_KM = 6371.0088


@dataclass(frozen=True)
class Criteria:
    """What one subscriber wants (the columns of ``subscribers`` that matching reads)."""

    id: int
    status: str = "active"
    districts: tuple[str, ...] = ()
    kelurahan: tuple[str, ...] = ()
    lat: float | None = None
    lon: float | None = None
    radius_km: float | None = None
    hazards: tuple[str, ...] = ()
    min_severity: str = "Minor"


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance between two points in degrees, km."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi, dlam = phi2 - phi1, math.radians(lon2 - lon1)
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlam / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def point_in_polygon(lat: float, lon: float, polygon: Sequence[tuple[float, float]]) -> bool:
    """Ray casting over (lat, lon) vertices; a city-sized polygon is flat enough for it."""
    inside = False
    count = len(polygon)
    if count < 3:
        return False
    j = count - 1
    for i in range(count):
        lat_i, lon_i = polygon[i]
        lat_j, lon_j = polygon[j]
        if (lon_i > lon) != (lon_j > lon):
            crossing = lat_i + (lon - lon_i) * (lat_j - lat_i) / (lon_j - lon_i)
            if lat < crossing:
                inside = not inside
        j = i
    return inside


def _fold(name: str) -> str:
    return " ".join(name.casefold().split())


def _named_in(name: str, text: str) -> bool:
    """``name`` as whole words in ``text`` (case and spacing ignored): "Bukit Duri" is named in
    "Kampung Melayu, Bukit Duri, Tebet", "Duri Kepa" is not named in "Duri Kosambi"."""
    folded = _fold(name)
    return bool(folded) and re.search(rf"(?<!\w){re.escape(folded)}(?!\w)", _fold(text)) \
        is not None


class AreaMatcher:
    """One alert's area, prepared once to be met by many subscribers (a fan-out)."""

    def __init__(self, area: Area, details: dict[str, object] | None = None) -> None:
        self.area = area
        self.districts = {_fold(name) for name in area.districts}
        # Areas name kelurahan in their description (a safety or device alert's place) or in a
        # "kelurahan" figure; Area itself has no kelurahan list.
        named = area.description
        extra = (details or {}).get("kelurahan")
        if isinstance(extra, str):
            named = f"{named}, {extra}"
        elif isinstance(extra, list | tuple):
            named = ", ".join([named, *(str(item) for item in extra)])
        self.named = named

    def __call__(self, criteria: Criteria) -> bool:
        """Whether the subscriber's area meets the alert's."""
        if criteria.districts and any(_fold(name) in self.districts
                                      for name in criteria.districts):
            return True
        if criteria.kelurahan and any(_named_in(name, self.named)
                                      for name in criteria.kelurahan):
            return True
        if criteria.lat is not None and criteria.lon is not None:
            area = self.area
            radius_km = criteria.radius_km or 0.0
            if area.circle_km is not None:
                lat, lon, circle_radius_km = area.circle_km
                if haversine_km(criteria.lat, criteria.lon, lat, lon) \
                        <= radius_km + circle_radius_km:
                    return True
            if area.polygon and point_in_polygon(criteria.lat, criteria.lon, area.polygon):
                return True
        return False


def area_matches(criteria: Criteria, area: Area, details: dict[str, object] | None = None
                 ) -> bool:
    """Whether the subscriber's area meets the alert's."""
    return AreaMatcher(area, details)(criteria)


def severities_at_most(severity: str) -> list[str]:
    """The ``min_severity`` values a version of ``severity`` satisfies (for the SQL filter)."""
    rank = SEVERITY_RANK.get(severity, 0)
    return [name for name, value in SEVERITY_RANK.items() if value <= rank]


def is_public(view: AlertView) -> bool:
    """For the public and real: the only alerts subscribers ever get."""
    return (view.audience == "public" and view.cap_status == "Actual"
            and view.hazard in PUBLIC_HAZARDS)


def matcher(view: AlertView) -> Callable[[Criteria], bool]:
    """``matches`` for one version, prepared once for many subscribers."""
    public = is_public(view)
    rank = SEVERITY_RANK.get(view.severity, 0)
    area = AreaMatcher(view.area, view.details)

    def match(criteria: Criteria) -> bool:
        if criteria.status != "active" or not public:
            return False
        if criteria.hazards and view.hazard not in criteria.hazards:
            return False
        if rank < SEVERITY_RANK.get(criteria.min_severity, 1):
            return False
        return area(criteria)

    return match


def matches(criteria: Criteria, view: AlertView) -> bool:
    """Whether this (non-Cancel) version goes to this subscriber."""
    return matcher(view)(criteria)
