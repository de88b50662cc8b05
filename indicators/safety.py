"""Public-safety (trantibumlinmas) events per district and city, by category. Pure functions."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

from indicators.context import District
from indicators.points import Point
from indicators.windows import Window

__all__ = ["EXCLUDED_EVENTS", "EventCounts", "safety_points"]

EXCLUDED_EVENTS = frozenset({"test"})  # device self-tests are not incidents
ALL = "all"

# (city, district, event) -> (events, summed count)
EventCounts = dict[tuple[str, str, str], tuple[float, float]]


def per_100k(events: float, population: float | None) -> float | None:
    if not population:
        return None
    return events / population * 100_000


def safety_points(window: Window, counts: EventCounts,
                  monitored: Iterable[tuple[str, str]],
                  districts: Mapping[str, District]) -> list[Point]:
    """Counts per district and event, an ``all`` series (0 where a monitored district was quiet),
    and the same for each city. ``monitored``: (city, district) with a registered safety device.
    """
    by_district: dict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for (city, district, event), (events, total) in counts.items():
        by_district[(city, district, event)][0] += events
        by_district[(city, district, event)][1] += total
        if event not in EXCLUDED_EVENTS:
            by_district[(city, district, ALL)][0] += events
            by_district[(city, district, ALL)][1] += total
    for city, district in monitored:  # a quiet monitored district counts 0
        by_district.setdefault((city, district, ALL), [0.0, 0.0])
    by_city: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    city_population: dict[str, float | None] = {}
    for (city, _district, event), (events, total) in by_district.items():
        by_city[(city, event)][0] += events
        by_city[(city, event)][1] += total
    for city, _ in by_city:
        city_population.setdefault(city, _city_population(districts))
    points = []
    for (city, district, event), (events, total) in sorted(by_district.items()):
        point = Point("safety_events", {"window": window.name, "scope": "district",
                                        "city": city, "district": district, "event": event},
                      window.start_ms)
        point.put("events", events)
        point.put("count", total)
        if window.name == "1d":
            known = districts.get(district)
            point.put("per_100k", per_100k(events, known.population if known else None))
        points.append(point)
    for (city, event), (events, total) in sorted(by_city.items()):
        point = Point("safety_events", {"window": window.name, "scope": "city", "city": city,
                                        "event": event}, window.start_ms)
        point.put("events", events)
        point.put("count", total)
        if window.name == "1d":
            point.put("per_100k", per_100k(events, city_population.get(city)))
        points.append(point)
    return points


def _city_population(districts: Mapping[str, District]) -> float | None:
    known = [d.population for d in districts.values() if d.population]
    return sum(known) if known else None
