"""Public-safety (trantibumlinmas) events per district and city, by category, the incidents
open at a window's end and the day's response times (first event -> resolution). Pure
functions; the step at the end (registered in indicators.steps) queries for them."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from indicators import queries as q
from indicators import steps
from indicators.context import DistrictTable
from indicators.outputs import output
from indicators.points import Point
from indicators.windows import HOUR_MS, Window

__all__ = ["ALL", "EXCLUDED_EVENTS", "INCIDENTS_MEASUREMENT", "RESOLVED", "EventCounts",
           "Incident", "ResponseStats", "Responses", "SafetyEvent", "events_from_series",
           "incident_points", "response_minutes", "response_stats", "safety_points",
           "unresolved_incidents"]

SAFETY_EVENTS = output("safety_events").measurement

RESOLVED = "resolved"  # closes the incident named by its incident_id; not an event itself
# device self-tests and resolutions are not incidents
EXCLUDED_EVENTS = frozenset({"test", RESOLVED})
INCIDENTS_MEASUREMENT = output("safety_incidents").measurement
ALL = "all"

# (city, district, event) -> (events, summed count)
EventCounts = dict[tuple[str, str, str], tuple[float, float]]
# (city, district, category or ``all``) -> minutes from first event to resolution, per incident
Responses = dict[tuple[str, str, str], list[float]]


def per_100k(events: float, population: float | None) -> float | None:
    if not population:
        return None
    return events / population * 100_000


def safety_points(window: Window, counts: EventCounts,
                  monitored: Iterable[tuple[str, str]],
                  districts: DistrictTable, responses: Responses | None = None,
                  target_min: float = 15.0) -> list[Point]:
    """Counts per district and event, an ``all`` series (0 where a monitored district was quiet),
    and the same for each city. ``monitored``: (city, district) with a registered safety device.
    ``responses`` (day windows): the response times of the incidents resolved in the window, by
    the category of their first event and ``all`` (``response_minutes``).
    """
    responses = responses or {}
    by_district: dict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for (city, district, event), (events, total) in counts.items():
        by_district[(city, district, event)][0] += events
        by_district[(city, district, event)][1] += total
        if event not in EXCLUDED_EVENTS:
            by_district[(city, district, ALL)][0] += events
            by_district[(city, district, ALL)][1] += total
    for city, district in monitored:  # a quiet monitored district counts 0
        by_district.setdefault((city, district, ALL), [0.0, 0.0])
    for key in responses:  # resolved today, first reported on an earlier day
        by_district.setdefault(key, [0.0, 0.0])
    city_responses: Responses = defaultdict(list)
    for (city, _district, event), minutes in responses.items():
        city_responses[(city, "", event)] += minutes
    by_city: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for (city, _district, event), (events, total) in by_district.items():
        by_city[(city, event)][0] += events
        by_city[(city, event)][1] += total
    points = []
    for (city, district, event), (events, total) in sorted(by_district.items()):
        point = Point(SAFETY_EVENTS, {"window": window.name, "scope": "district",
                                        "city": city, "district": district, "event": event},
                      window.start_ms)
        point.put("events", events)
        point.put("count", total)
        if window.name == "1d":
            known = districts.get(city, district)
            point.put("per_100k", per_100k(events, known.population if known else None))
            _put_responses(point, responses.get((city, district, event), []), target_min)
        points.append(point)
    for (city, event), (events, total) in sorted(by_city.items()):
        point = Point(SAFETY_EVENTS, {"window": window.name, "scope": "city", "city": city,
                                        "event": event}, window.start_ms)
        point.put("events", events)
        point.put("count", total)
        if window.name == "1d":
            point.put("per_100k", per_100k(events, _city_population(districts, city)))
            _put_responses(point, city_responses.get((city, "", event), []), target_min)
        points.append(point)
    return points


@dataclass(frozen=True)
class ResponseStats:
    resolved: int
    median_min: float | None
    p90_min: float | None
    within_target_share: float | None


def _nearest_rank(ordered: Sequence[float], share: float) -> float:
    """The nearest-rank percentile: the smallest value with at least ``share`` of the values at
    or below it (no interpolation, so it is always a response that happened)."""
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def response_stats(minutes: Sequence[float], target_min: float) -> ResponseStats:
    """Median (the mean of the two middle values for an even count), nearest-rank 90th
    percentile and the share at or under the target."""
    if not minutes:
        return ResponseStats(0, None, None, None)
    ordered = sorted(minutes)
    count = len(ordered)
    middle = count // 2
    median = ordered[middle] if count % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    within = sum(1 for value in ordered if value <= target_min) / count
    return ResponseStats(count, median, _nearest_rank(ordered, 0.9), within)


def _put_responses(point: Point, minutes: Sequence[float], target_min: float) -> None:
    stats = response_stats(minutes, target_min)
    point.put("resolved_incidents", float(stats.resolved))
    point.put("response_median_min", stats.median_min)
    point.put("response_p90_min", stats.p90_min)
    point.put("response_within_target_share", stats.within_target_share)


def response_minutes(window: Window, events: Iterable[SafetyEvent]) -> Responses:
    """Minutes from first event to resolution of every incident resolved inside the window, by
    (city, district, category) of its first event and under ``all``.

    Only incidents with an ``incident_id`` can be resolved. The first ``resolved`` event of an
    id is its resolution (a later one changes nothing, one before the window means it was
    resolved earlier); an incident whose first event is not among ``events`` (older than the
    lookback) is left out, not guessed.
    """
    first: dict[tuple[str, str], SafetyEvent] = {}
    resolved_at: dict[tuple[str, str], int] = {}
    for event in sorted(events):
        if event.time_ms >= window.end_ms or not event.incident_id:
            continue
        key = (event.city, event.incident_id)
        if event.event == RESOLVED:
            resolved_at.setdefault(key, event.time_ms)
        elif event.event not in EXCLUDED_EVENTS and key not in resolved_at:
            first.setdefault(key, event)
    out: Responses = defaultdict(list)
    for key, resolved_ms in resolved_at.items():
        opened = first.get(key)
        if opened is None or resolved_ms < window.start_ms:
            continue
        minutes = (resolved_ms - opened.time_ms) / 60_000
        out[(opened.city, opened.district, opened.event)].append(minutes)
        out[(opened.city, opened.district, ALL)].append(minutes)
    return dict(out)


def _city_population(districts: DistrictTable, city: str) -> float | None:
    known = [d.population for d in districts.of_city(city) if d.population]
    return sum(known) if known else None


@dataclass(frozen=True, order=True)
class SafetyEvent:
    """One raw ``safety`` point, as the incident count needs it."""

    time_ms: int
    city: str
    district: str
    device: str
    event: str
    incident_id: str  # "" when the event carries none


def events_from_series(series: Iterable[tuple[dict[str, str], list[tuple[int, dict[str, Any]]]]],
                       ) -> list[SafetyEvent]:
    """Raw ``safety`` rows grouped by city, district, device, event -> events, oldest first."""
    events = []
    for tags, rows in series:
        for time_ms, values in rows:
            incident_id = values.get("incident_id")
            events.append(SafetyEvent(time_ms, tags.get("city", ""), tags.get("district", ""),
                                      tags.get("device", ""), tags.get("event", ""),
                                      incident_id if isinstance(incident_id, str) else ""))
    return sorted(events)


@dataclass(frozen=True)
class Incident:
    """One incident not resolved at a moment: its first event (category, district, device,
    time), its newest event and how many events it has."""

    first: SafetyEvent
    last: SafetyEvent
    events: int
    state: Literal["open", "stale"]  # open: first event within the open horizon

    @property
    def incident_id(self) -> str:
        return self.first.incident_id


def unresolved_incidents(events: Iterable[SafetyEvent], end_ms: int,
                         open_horizon_ms: int) -> tuple[list[Incident], set[tuple[str, ...]]]:
    """Incidents not resolved at ``end_ms``, from the events before it, newest first; and the
    keys of every incident seen (resolved or not), for the counts' zero rows.

    An incident is the events of one (city, incident_id), or one event without incident_id. Its
    category and district are its first event's (``test`` is never an incident). A ``resolved``
    event with the id closes it for good, whenever it came; one without an id closes nothing.
    Unresolved, it is *open* if its first event is within ``open_horizon_ms`` of ``end_ms``,
    else *stale*.
    """
    first: dict[tuple[str, ...], SafetyEvent] = {}
    last: dict[tuple[str, ...], SafetyEvent] = {}
    count: dict[tuple[str, ...], int] = defaultdict(int)
    closed: set[tuple[str, str]] = set()
    for event in sorted(events):
        if event.time_ms >= end_ms:
            continue
        if event.event == RESOLVED:
            if event.incident_id:
                closed.add((event.city, event.incident_id))
            continue
        if event.event in EXCLUDED_EVENTS:
            continue
        key: tuple[str, ...] = ((event.city, event.incident_id) if event.incident_id
                                else (event.city, "", event.device, str(event.time_ms)))
        first.setdefault(key, event)
        last[key] = event
        count[key] += 1
    incidents = [Incident(event, last[key], count[key],
                          "open" if event.time_ms >= end_ms - open_horizon_ms else "stale")
                 for key, event in first.items()
                 if not (key[1] and (event.city, key[1]) in closed)]
    incidents.sort(key=lambda i: i.first.time_ms, reverse=True)
    return incidents, {(e.city, e.district, e.event) for e in first.values()}


def incident_points(window: Window, events: Iterable[SafetyEvent],
                    monitored: Iterable[tuple[str, str]], open_horizon_ms: int) -> list[Point]:
    """Incidents open and stale at ``window.end_ms`` (:func:`unresolved_incidents`), from the
    events before it (the caller reads a lookback, not all history). Points per district and
    city: per category with any incident (open, stale or closed) in the events given, and
    ``all`` for those districts and every monitored one; 0s included.
    """
    incidents, seen = unresolved_incidents(events, window.end_ms, open_horizon_ms)
    counts: dict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for city, district in monitored:
        counts.setdefault((city, district, ALL), [0.0, 0.0])
    # a category with any incident in the lookback is written, 0 when all are closed, so
    # that last() over a few hours never shows an earlier window's count
    for city, district, category in seen:
        counts.setdefault((city, district, category), [0.0, 0.0])
        counts.setdefault((city, district, ALL), [0.0, 0.0])
    for incident in incidents:
        event = incident.first
        slot = 0 if incident.state == "open" else 1
        counts[(event.city, event.district, event.event)][slot] += 1
        counts[(event.city, event.district, ALL)][slot] += 1
    by_city: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for (city, _district, category), (open_, stale) in counts.items():
        by_city[(city, category)][0] += open_
        by_city[(city, category)][1] += stale
    points = []
    for (city, district, category), (open_, stale) in sorted(counts.items()):
        tags = {"window": window.name, "scope": "district", "city": city, "district": district,
                "event": category}
        points.append(_incident_point(window, tags, open_, stale))
    for (city, category), (open_, stale) in sorted(by_city.items()):
        tags = {"window": window.name, "scope": "city", "city": city, "event": category}
        points.append(_incident_point(window, tags, open_, stale))
    return points


def _incident_point(window: Window, tags: dict[str, str], open_: float, stale: float) -> Point:
    point = Point(INCIDENTS_MEASUREMENT, tags, window.start_ms)
    point.put("open_incidents", open_)
    point.put("stale_incidents", stale)
    return point


def monitored(span: steps.Span) -> set[tuple[str, str]]:
    """(city, district) of every district with a registered safety device."""
    return {(d.city, d.district) for d in span.context.registered("safety", span.city)}


async def _minute_step(span: steps.Span) -> list[Point]:
    """Open incidents minute by minute too: the operations centre's "what is open now"."""
    return await span.open_incidents(span.window, monitored(span))


async def _span_step(span: steps.Span) -> list[Point]:
    window = span.window
    series = await span.query(q.aggregate_query(
        "safety", [("count", "count", "events"), ("sum", "count", "total")], window.start_ms,
        window.end_ms, span.city, ["city", "district", "event"]))
    counts: EventCounts = {}
    for tags, rows in q.rows_by_tags(series):
        for _, values in rows:
            counts[(tags.get("city", ""), tags.get("district", ""), tags.get("event", ""))] = (
                float(values.get("events") or 0.0), float(values.get("total") or 0.0))
    span.safety_counts = counts
    districts = monitored(span)
    if window.name == "1d":
        span.responses = response_minutes(window, await _lookback_events(span))
    return (safety_points(window, counts, sorted(districts), span.context.districts,
                          span.responses, span.settings.safety.response_target_min)
            + await span.open_incidents(window, districts))


async def _lookback_events(span: steps.Span) -> list[SafetyEvent]:
    """The safety events of ``safety.incident_lookback_h`` before the window end: an incident
    resolved today may have been reported days ago."""
    end = span.window.end_ms
    start = end - int(span.settings.safety.incident_lookback_h * HOUR_MS)
    series = await span.query(q.raw_query(
        "safety", ["incident_id", "count"], start, end, span.city,
        ["city", "district", "device", "event"]))
    return events_from_series(q.rows_by_tags(series))


steps.add("safety-incidents-minute", ("1m",), 20, _minute_step)
steps.add("safety", ("1h", "1d"), 50, _span_step)
