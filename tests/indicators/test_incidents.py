"""Incident lifecycle against a real InfluxDB: safety payloads parsed by ingest's own parser,
the indicator service's ``safety_incidents`` points read back.

One hour window ending at T; the events (all Menteng unless said):
- fire ``inc-a`` at T-2h, a follow-up of ``inc-a`` at T-1h          -> one open fire incident
- panic ``inc-b`` at T-3h, ``resolved`` ``inc-b`` at T-30min        -> closed (open an hour before)
- two panics without incident_id at T-20min                         -> two open panic incidents
- theft ``inc-c`` at T-30h (past the 24-h horizon, never resolved)  -> one stale theft incident
- ``resolved`` without incident_id, and a ``test`` event            -> nothing
- Tebet: a registered panic button, quiet                           -> ``all`` with 0 and 0
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from kota_testing import count_points, influx_query

from devstack.localstack import LocalService
from indicators.context import Context, District, DistrictTable
from indicators.safety import SafetyEvent, incident_points
from indicators.service import IndicatorService
from indicators.settings import IndicatorSettings
from indicators.windows import HOUR_MS, Window
from kota.influx import InfluxSettings
from kota.payload import MessageParser, ParseRules
from kota.registry import Device, Registry

HOUR = HOUR_MS
MINUTE = 60_000
T = int(datetime(2026, 11, 20, 6, tzinfo=UTC).timestamp() * 1000)  # end of the window

REGISTRY = Registry([
    Device(device_id="panic-a", kind="safety", city="jakarta", district="Menteng",
           lat=-6.19, lon=106.83),
    Device(device_id="ops-menteng", kind="safety", city="jakarta", district="Menteng",
           lat=-6.19, lon=106.83),
    Device(device_id="panic-t", kind="safety", city="jakarta", district="Tebet",
           lat=-6.23, lon=106.85),
])
DISTRICTS = DistrictTable([District("Menteng", 6.53, 68_000.0, 2023),
                           District("Tebet", 9.03, 210_000.0, 2023)])

# (device, time ms, payload)
EVENTS: list[tuple[str, int, dict[str, Any]]] = [
    ("panic-a", T - 2 * HOUR, {"event": "fire", "incident_id": "inc-a"}),
    ("panic-a", T - HOUR, {"event": "fire", "incident_id": "inc-a", "message": "Api membesar"}),
    ("panic-a", T - 3 * HOUR, {"event": "panic", "incident_id": "inc-b"}),
    ("ops-menteng", T - 30 * MINUTE, {"event": "resolved", "incident_id": "inc-b"}),
    ("panic-a", T - 20 * MINUTE, {"event": "panic"}),
    ("panic-a", T - 20 * MINUTE + 1000, {"event": "panic"}),
    ("panic-a", T - 30 * HOUR, {"event": "theft", "incident_id": "inc-c"}),
    ("ops-menteng", T - 10 * MINUTE, {"event": "resolved"}),
    ("panic-a", T - 5 * MINUTE, {"event": "test"}),
]


def _lines() -> list[str]:
    parser = MessageParser(REGISTRY, ParseRules())
    lines = []
    for device, time_ms, payload in EVENTS:
        parsed = parser.parse(f"kota/jakarta/safety/{device}",
                              json.dumps({"ts": time_ms / 1000, **payload}).encode(), time_ms)
        assert not parsed.rejections, parsed.rejections
        lines += parsed.lines
    return lines


def _service(influx: LocalService, database: str, window: str = "1h") -> IndicatorService:
    config = IndicatorSettings(
        influx=InfluxSettings(url=f"http://127.0.0.1:{influx.port}", database=database),
        metrics_port=0, windows=[window])
    return IndicatorService(config, Context(REGISTRY, DISTRICTS))


def _recompute(svc: IndicatorService, since_ms: int, until_ms: int) -> int:
    async def go() -> int:
        try:
            return len((await svc.recompute(since_ms, until_ms)).windows)
        finally:
            await svc.close()
    return asyncio.run(go())


def _incidents(influx: LocalService, database: str, time_ms: int,
               window: str = "1h") -> dict[tuple[str, str], Any]:
    """(scope/district, event) -> (open, stale) of the window starting at time_ms."""
    series = influx_query(influx, database,
                          'SELECT "open_incidents", "stale_incidents" FROM "safety_incidents" '
                          f'WHERE "window" = \'{window}\' AND time = {time_ms * 1_000_000} '
                          'GROUP BY "scope", "district", "event"')
    result = {}
    for one in series:
        tags = one["tags"]
        where = tags["district"] or "city"
        assert len(one["values"]) == 1
        _, open_, stale = one["values"][0]
        result[(where, tags["event"])] = (open_, stale)
    return result


@pytest.fixture
def loaded(influxdb: LocalService, database: str) -> tuple[LocalService, str]:
    response = httpx.post(f"http://127.0.0.1:{influxdb.port}/write",
                          params={"db": database, "precision": "ms"},
                          content="\n".join(_lines()).encode(), timeout=30)
    assert response.status_code == 204, response.text
    return influxdb, database


@pytest.mark.slow
def test_open_resolved_own_and_stale_incidents(loaded: tuple[LocalService, str]) -> None:
    influx, database = loaded
    assert _recompute(_service(influx, database), T - HOUR, T) == 1
    got = _incidents(influx, database, T - HOUR)
    expected = {
        ("Menteng", "fire"): (1.0, 0.0),   # two events, one incident
        ("Menteng", "panic"): (2.0, 0.0),  # inc-b resolved; the two without id count apiece
        ("Menteng", "theft"): (0.0, 1.0),  # older than the 24-h horizon: stale, not open
        ("Menteng", "all"): (3.0, 1.0),
        ("Tebet", "all"): (0.0, 0.0),      # monitored and quiet: written with 0
        ("city", "fire"): (1.0, 0.0),
        ("city", "panic"): (2.0, 0.0),
        ("city", "theft"): (0.0, 1.0),
        ("city", "all"): (3.0, 1.0),
    }
    assert got == expected
    # neither "resolved" nor "test" is an incident category
    assert not {event for _, event in got} & {"resolved", "test"}


@pytest.mark.slow
def test_resolution_counts_from_its_time_on(loaded: tuple[LocalService, str]) -> None:
    influx, database = loaded
    # the hour ending at T-1h: inc-b is still open, the id-less panics have not happened yet
    assert _recompute(_service(influx, database), T - 2 * HOUR, T - HOUR) == 1
    got = _incidents(influx, database, T - 2 * HOUR)
    assert got[("Menteng", "panic")] == (1.0, 0.0)
    assert got[("Menteng", "fire")] == (1.0, 0.0)  # its follow-up at T-1h is not yet in
    assert got[("city", "all")] == (2.0, 1.0)


@pytest.mark.slow
def test_open_incidents_minute_by_minute(loaded: tuple[LocalService, str]) -> None:
    # inc-b's resolution is stamped T-30min: open at the end of the minute ending then (events
    # at the window end are not in it), closed at the end of the next one
    influx, database = loaded
    assert _recompute(_service(influx, database, "1m"), T - 31 * MINUTE, T - 29 * MINUTE) == 2
    before = _incidents(influx, database, T - 31 * MINUTE, "1m")
    after = _incidents(influx, database, T - 30 * MINUTE, "1m")
    assert before[("Menteng", "panic")] == (1.0, 0.0)
    assert after[("Menteng", "panic")] == (0.0, 0.0)
    assert (before[("city", "all")], after[("city", "all")]) == ((2.0, 1.0), (1.0, 1.0))
    assert after[("Tebet", "all")] == (0.0, 0.0)


@pytest.mark.slow
def test_recomputing_a_window_gives_the_same_points(loaded: tuple[LocalService, str]) -> None:
    influx, database = loaded
    assert _recompute(_service(influx, database), T - HOUR, T) == 1
    first = _incidents(influx, database, T - HOUR)
    assert _recompute(_service(influx, database), T - HOUR, T) == 1
    assert _incidents(influx, database, T - HOUR) == first
    assert count_points(influx, database, "safety_incidents") == len(first) == 9


@pytest.mark.slow
def test_events_counts_leave_resolutions_out(loaded: tuple[LocalService, str]) -> None:
    influx, database = loaded
    assert _recompute(_service(influx, database), T - HOUR, T) == 1
    series = influx_query(influx, database,
                          'SELECT "events" FROM "safety_events" WHERE "window" = \'1h\' '
                          'AND "scope" = \'city\' AND "event" = \'all\'')
    # T-1h..T: the inc-a follow-up, inc-b's resolution, two panics, an id-less
    # resolution, a test: incidents' events are 3
    assert series[0]["values"][0][1] == 3.0


def test_horizon_is_a_setting() -> None:
    window = Window(T - HOUR, T, "1h")
    events = [SafetyEvent(T - 5 * HOUR, "jakarta", "Menteng", "panic-a", "fire", "x")]
    open_now = incident_points(window, events, [], open_horizon_ms=6 * HOUR)
    stale_now = incident_points(window, events, [], open_horizon_ms=4 * HOUR)
    city = {p.tags["scope"]: p.fields for p in open_now if p.tags["event"] == "all"}["city"]
    assert city == {"open_incidents": 1.0, "stale_incidents": 0.0}
    city = {p.tags["scope"]: p.fields for p in stale_now if p.tags["event"] == "all"}["city"]
    assert city == {"open_incidents": 0.0, "stale_incidents": 1.0}
    with pytest.raises(ValueError, match="incident_lookback_h"):
        IndicatorSettings(safety={"incident_open_horizon_h": 48, "incident_lookback_h": 24})


# -- the simulator's incidents --------------------------------------------------------------------

@pytest.mark.slow
def test_simulated_incidents_are_resolved_after_a_plausible_delay() -> None:
    from simulators import SimulateSettings
    from simulators.city import load_city
    from simulators.generator import CityStream

    settings = SimulateSettings()
    city = load_city(settings.city_dir(), settings.registry_path())
    start_s = datetime(2026, 1, 14, 17, tzinfo=UTC).timestamp()

    def safety() -> list[tuple[float, str, dict[str, Any]]]:
        return [(m.sim_time_s, m.device_id, json.loads(m.payload))
                for m in CityStream(city, seed=5, start_s=start_s, duration_s=48 * 3600.0)
                if m.kind == "safety"]

    stream = safety()
    assert stream == safety()  # same seed, same stream
    opened: dict[str, tuple[float, str]] = {}
    delays_min = []
    for time_s, device, payload in stream:
        incident_id = payload.get("incident_id")
        if payload["event"] == "test":
            assert incident_id is None
        elif payload["event"] == "resolved":
            assert incident_id in opened, "resolves an incident opened before it"
            assert opened[incident_id][1] == device
            delays_min.append((time_s - opened.pop(incident_id)[0]) / 60)
        else:
            assert incident_id and len(incident_id) <= 64
            opened.setdefault(incident_id, (time_s, device))
    assert len(delays_min) >= 20
    assert min(delays_min) >= 10 and max(delays_min) <= 49 * 60
    # most incidents are resolved; those opened in the last hours may still be pending
    assert len(delays_min) > 2 * len(opened)
    parser = MessageParser(city.registry(), ParseRules())
    for time_s, device, payload in stream[:200]:
        parsed = parser.parse(f"kota/jakarta/safety/{device}",
                              json.dumps({"ts": time_s, **payload}).encode(), int(time_s * 1000))
        assert parsed.lines and not parsed.rejections, parsed.rejections
