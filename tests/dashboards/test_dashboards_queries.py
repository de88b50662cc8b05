"""Every dashboard query, with Grafana's macros and variables filled in as Grafana would, runs
against a real InfluxDB holding a simulated Jakarta and returns data.

The database is filled once per module (~30 s):
- 50 hours of simulated readings (simulators) parsed by ingest's own parser (kota.payload) and
  written directly — the same lines `kota ingest` would write, without the MQTT round trip;
- the indicator service (indicators.service) run over them: ``recompute`` for the history and
  one ``run_once`` pass, so every indicator measurement is the service's own output;
- a real `kota ingest` process fed a few valid and a few broken messages over a real Mosquitto,
  so ``kota_ingest`` and ``kota_deadletter`` are written by ingest itself; because it runs for
  seconds, a day of earlier ``kota_ingest`` points is added, built with ingest's own counter
  class and line builder (a stand-in for an ingest that had been running, said in the docs);
- ``alert_events`` written by the alert service's own ``_record_event`` / ``_flush_events``
  for a flood alert (fired, escalated, resolved), an air alert and a rain alert (stand-ins for
  alerts the engine decided: its decisions are tested in tests/alerts/).

No Grafana runs here: the substitution below imitates Grafana 11's InfluxQL interpolation.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from alert_samples import flood_view, resolved
from kota_testing import IngestProcess, count_points, influx_query, publish, wait_until

from alerts.model import AlertView
from alerts.service import AlertService
from alerts.settings import AlertsSettings
from dashboards.build import DASHBOARDS, JSON_DIR
from dashboards.interpolate import interpolate, regex_escape
from dashboards.lint import annotation_queries, parse_query, targets, variable_queries
from dashboards.schema import alert_schema, indicator_schema, raw_schema
from devstack.localstack import LocalService
from indicators.context import Context, load_districts
from indicators.service import IndicatorService
from indicators.settings import IndicatorSettings
from ingest.metrics import IngestCounters
from kota.influx import InfluxSettings
from kota.lineproto import build_line, series_key
from kota.payload import MessageParser
from kota.registry import Registry
from simulators import SimulateSettings, build_stream

# The module's fixture writes a simulated city into InfluxDB (about 20 s): make test-fast skips it.
pytestmark = pytest.mark.slow

HOUR_S = 3600.0
SIMULATED_H = 50
_database_counter = iter(range(1, 1000))


@dataclass
class Pipeline:
    influx: LocalService
    database: str
    registry: Registry
    now_s: float

    def query(self, influxql: str) -> list[dict[str, Any]]:
        return influx_query(self.influx, self.database, influxql)


def _write(influx: LocalService, database: str, lines: list[str]) -> None:
    for index in range(0, len(lines), 5000):
        response = httpx.post(f"http://127.0.0.1:{influx.port}/write",
                              params={"db": database, "precision": "ms"},
                              content="\n".join(lines[index:index + 5000]).encode(), timeout=60)
        assert response.status_code == 204, response.text


def _indicators(influx: LocalService, database: str, registry: Registry, now_s: float) -> None:
    settings = IndicatorSettings(
        influx=InfluxSettings(url=f"http://127.0.0.1:{influx.port}", database=database),
        metrics_port=0)
    service = IndicatorService(settings, Context(registry, load_districts(settings.districts_file),
                                                 settings.uptime.status_suffix))
    now_ms = int(now_s * 1000)
    lateness_ms = int(settings.lateness_s * 1000)

    async def run() -> None:
        try:
            await service.recompute(now_ms - 48 * 3_600_000, now_ms - lateness_ms, ("1h", "1d"))
            await service.recompute(now_ms - 3_600_000, now_ms - lateness_ms, ("1m",))
            await service.run_once(now_ms)
        finally:
            await service.close()

    asyncio.run(run())


def _ingest_history(now_s: float) -> list[str]:
    """A day of ``kota_ingest`` points, one a minute, made with ingest's own classes."""
    counters = IngestCounters(mqtt_connected=True)
    series = series_key("kota_ingest", [("instance", "1")])
    lines = []
    for minute in range(24 * 60, 0, -1):
        counters.received += 45
        counters.written += 44
        counters.rejected += minute % 2
        counters.lag_s = 0.05 + (minute % 7) / 100
        lines.append(build_line(series, counters.fields(), int((now_s - minute * 60) * 1000)))
    return lines


def _alert_events(tmp_path: Path, influx: LocalService, database: str, now_s: float) -> None:
    """A few hours of alerts, written by the alert service's own record and flush."""
    settings = AlertsSettings.model_validate({
        "database": {"url": f"sqlite:///{tmp_path / 'alerts.db'}"},
        "influx": {"url": f"http://127.0.0.1:{influx.port}", "database": database},
        "metrics_port": 0, "rules_reload_s": 0})
    service = AlertService(settings)
    start = datetime.fromtimestamp(now_s, UTC) - timedelta(hours=4)
    flood = flood_view(sent_at=start, fired_at=start)
    views: list[AlertView] = [
        flood, flood_view(version=2, level="Siaga 1 (Awas)", grade=4, severity="Extreme",
                          sent_at=start + timedelta(hours=1), fired_at=start),
        resolved(flood, 3),
        replace(flood_view(alert_id=2, sent_at=start + timedelta(hours=2)), hazard="air",
                rule_id="ispu-tidak-sehat", scope="district:Gambir", level="Tidak Sehat"),
        replace(flood_view(alert_id=3, sent_at=start + timedelta(hours=3)), hazard="rain",
                rule_id="rain-heavy", scope="district:Tebet", level="Hujan lebat"),
    ]
    for view in views:
        service._record_event(view)

    async def flush() -> None:
        try:
            await service._flush_events()
        finally:
            await service.influx.close()

    asyncio.run(flush())
    assert not service._events, "InfluxDB refused the alert events"


def _run_ingest(tmp_path: Path, mosquitto: LocalService, influx: LocalService, database: str,
                registry_file: Path, messages: list[tuple[str, bytes]]) -> None:
    ingest = IngestProcess(tmp_path / "ingest", mosquitto.port, influx.port, database,
                           registry_file=str(registry_file),
                           mqtt__client_id=f"kota-ingest-dashboards-{database}")
    ingest.start()
    try:
        broken: list[tuple[str, bytes]] = [
            ("kota/jakarta/air/air-gambir", b"{not json"),
            ("kota/jakarta/air/air-gambir", b'{"pm25": 12, "colour": "grey"}'),
            ("kota/jakarta/water/water-manggarai", b'{"level_cm": 99999}'),
            ("kota/jakarta/nonsense/x", b'{"a": 1}'),
        ]
        assert publish(mosquitto.port, messages + broken,
                       client_id=f"dashboards-publisher-{database}") == len(messages) + 4
        wait_until(lambda: count_points(influx, database, "kota_deadletter") >= 4
                   and count_points(influx, database, "kota_ingest") >= 3, 60,
                   "ingest to write dead letters and its own statistics")
    finally:
        ingest.stop()


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory, influxdb: LocalService,
             mosquitto: LocalService) -> Iterator[Pipeline]:
    database = f"dashboards_{next(_database_counter)}"
    httpx.post(f"http://127.0.0.1:{influxdb.port}/query",
               params={"q": f'CREATE DATABASE "{database}"'})
    now_s = time.time()
    settings = SimulateSettings.model_validate({
        "seed": 4, "speed": 0, "duration_s": SIMULATED_H * HOUR_S,
        "start": datetime.fromtimestamp(now_s - SIMULATED_H * HOUR_S, UTC)})
    stream, _ = build_stream(settings)
    registry = stream.city.registry()
    parser = MessageParser(registry)
    lines: list[str] = []
    recent: list[tuple[str, bytes]] = []
    for message in stream:
        parsed = parser.parse(message.topic, message.payload, int(message.sim_time_s * 1000))
        lines.extend(parsed.lines)
        if message.sim_time_s > now_s - 120 and not message.fault:
            recent.append((message.topic, message.payload))
    _write(influxdb, database, lines)
    _indicators(influxdb, database, registry, now_s)
    tmp_path = tmp_path_factory.mktemp("dashboards")
    _alert_events(tmp_path, influxdb, database, now_s)
    registry_file = tmp_path / "registry.yaml"
    registry_file.write_text(registry.dump_yaml())
    _run_ingest(tmp_path, mosquitto, influxdb, database, registry_file, recent[:40])
    _write(influxdb, database, _ingest_history(now_s))
    # "now" for absolute ranges: after ingest ran, as a user opening the dashboard then.
    yield Pipeline(influxdb, database, registry, time.time())
    httpx.post(f"http://127.0.0.1:{influxdb.port}/query",
               params={"q": f'DROP DATABASE "{database}"'})


# -- choosing "one value" as a user would -----------------------------------------------------

# The raw kind each measurement a panel reads comes from.
KIND_OF = {"air": "air", "water": "water", "rain": "rain", "noise": "noise", "safety": "safety",
           "status": "status", "ispu": "air", "aqi_us": "air", "siaga": "water",
           "rain_category": "rain", "noise_level": "noise", "safety_events": "safety"}


def one_value_choice(pipeline: Pipeline, dashboard: dict[str, Any]) -> dict[str, str]:
    """City, district and device a user would pick to see the most: a district that has every
    kind of device the dashboard reads, and there the device of the dashboard's kind that
    reported the most fields in the last 6 h."""
    needed = {KIND_OF[m] for _, target in targets(dashboard)
              for m in parse_query(target["query"]).measurements if m in KIND_OF}
    kinds_in: dict[str, set[str]] = {}
    for device in pipeline.registry:
        kinds_in.setdefault(device.district, set()).add(device.kind)
    device_query = dict(variable_queries(dashboard)).get("device")
    if device_query is None:
        district = max(sorted(kinds_in), key=lambda d: len(kinds_in[d] & needed))
        return {"city": "jakarta", "district": regex_escape(district)}
    measurement = parse_query(device_query).measurements[0]
    reported: dict[str, tuple[int, int]] = {}
    for series in pipeline.query(f'SELECT count(*) FROM "{measurement}" '
                                 'WHERE time > now() - 6h GROUP BY "device"'):
        counts = [v for v in series["values"][0][1:] if v]
        reported[series["tags"]["device"]] = (len(counts), max(counts))
    by_id = {device.device_id: device for device in pipeline.registry}
    chosen = max(sorted(reported), key=lambda d: (
        len(kinds_in[by_id[d].district] & needed), reported[d][0], reported[d][1]))
    device = by_id[chosen]
    return {"city": regex_escape(device.city), "district": regex_escape(device.district),
            "device": regex_escape(device.device_id)}


def _dashboards() -> list[tuple[str, dict[str, Any]]]:
    return [(name, json.loads((JSON_DIR / name).read_text(encoding="utf-8")))
            for name in DASHBOARDS]


CASES = [pytest.param(name, panel["id"], target["refId"], id=f"{name[:-5]}-{panel['id']}"
                      f"{target['refId']}")
         for name, dashboard in _dashboards() for panel, target in targets(dashboard)]


def _has_data(series: list[dict[str, Any]]) -> bool:
    return any(value is not None for one in series for row in one["values"]
               for value in row[1:])


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["all-relative", "all-absolute", "one-value"])
@pytest.mark.parametrize(("name", "panel_id", "ref_id"), CASES)
def test_panel_query_returns_data(pipeline: Pipeline, name: str, panel_id: int, ref_id: str,
                                  variant: str) -> None:
    dashboard = dict(_dashboards())[name]
    panel, target = next((p, t) for p, t in targets(dashboard)
                         if p["id"] == panel_id and t["refId"] == ref_id)
    values = ({"city": ".*", "district": ".*", "device": ".*"} if variant != "one-value"
              else one_value_choice(pipeline, dashboard))
    query = interpolate(target["query"], panel, values, pipeline.now_s,
                        absolute=variant == "all-absolute")
    series = pipeline.query(query)  # raises on an InfluxQL error
    assert _has_data(series), f"no data for {panel['title']!r} ({variant}):\n{query}"


ANNOTATIONS = [pytest.param(name, annotation["name"], id=f"{name[:-5]}-annotation")
               for name, dashboard in _dashboards()
               for annotation, _query in annotation_queries(dashboard)]


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["all-relative", "all-absolute", "one-value"])
@pytest.mark.parametrize(("name", "annotation_name"), ANNOTATIONS)
def test_annotation_query_returns_events(pipeline: Pipeline, name: str, annotation_name: str,
                                         variant: str) -> None:
    dashboard = dict(_dashboards())[name]
    annotation, query = next((a, q) for a, q in annotation_queries(dashboard)
                             if a["name"] == annotation_name)
    values = ({"city": ".*", "district": ".*", "device": ".*"} if variant != "one-value"
              else one_value_choice(pipeline, dashboard))
    series = pipeline.query(interpolate(query, {}, values, pipeline.now_s,
                                        absolute=variant == "all-absolute"))
    assert _has_data(series), f"no events for {annotation_name!r} on {name} ({variant})"
    columns = set(series[0]["columns"])
    assert {annotation["textColumn"], *annotation["tagsColumn"].split(",")} <= columns


def test_flood_and_air_have_alert_annotation_cases() -> None:
    """Not vacuous: the annotation cases above exist for flood and air."""
    assert {param.values[0] for param in ANNOTATIONS} >= {"flood.json", "air-quality.json"}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(DASHBOARDS))
def test_variables_list_values(pipeline: Pipeline, name: str) -> None:
    dashboard = dict(_dashboards())[name]
    for variable, query in variable_queries(dashboard):
        series = pipeline.query(query.replace("$city", ".*").replace("$district", ".*"))
        values = [row[1] for one in series for row in one["values"]]
        assert values, f"variable {variable} of {name} lists nothing: {query}"
        if variable == "city":
            assert values == ["jakarta"]


@pytest.mark.slow
def test_indicator_service_writes_what_the_docs_say(pipeline: Pipeline) -> None:
    """The schema the name check uses (parsed from docs/indicators.md) covers every tag and
    field the real indicator service wrote, and raw_schema covers ingest's measurements."""
    declared = {**raw_schema(), **indicator_schema(), **alert_schema()}
    measurements = [row[0] for one in pipeline.query("SHOW MEASUREMENTS") for row in one["values"]]
    assert set(measurements) >= {"air", "ispu", "siaga", "city_indicators", "kota_ingest",
                                 "kota_deadletter", "alert_events"}
    missing = []
    for measurement in measurements:
        assert measurement in declared, f"{measurement} is in no schema"
        fields = {row[0] for one in pipeline.query(f'SHOW FIELD KEYS FROM "{measurement}"')
                  for row in one["values"]}
        tags = {row[0] for one in pipeline.query(f'SHOW TAG KEYS FROM "{measurement}"')
                for row in one["values"]}
        missing += [f"{measurement}.{f}" for f in fields - declared[measurement].fields]
        missing += [f"{measurement} tag {t}" for t in tags - set(declared[measurement].tags)]
    assert not missing, f"written but not in the schema: {missing}"


@pytest.mark.slow
def test_every_name_a_panel_reads_exists_in_the_database(pipeline: Pipeline) -> None:
    """Not only declared: each field and tag a panel names was really written here."""
    absent = []
    for name, dashboard in _dashboards():
        queries = [(f"panel {panel['id']}", target["query"]) for panel, target in
                   targets(dashboard)]
        queries += [(f"annotation {annotation['name']}", query) for annotation, query in
                    annotation_queries(dashboard)]
        for where, query in queries:
            names = parse_query(query)
            for measurement in names.measurements:
                fields = {row[0] for one in pipeline.query(f'SHOW FIELD KEYS FROM "{measurement}"')
                          for row in one["values"]}
                tags = {row[0] for one in pipeline.query(f'SHOW TAG KEYS FROM "{measurement}"')
                        for row in one["values"]}
                known = fields | tags | set(names.aliases) | {"time"}
                used = names.selected + [n for n, _, _ in names.compared] + names.grouped
                absent += [f"{name} {where}: {measurement}.{n}" for n in used
                           if n not in known]
    assert not absent, absent
