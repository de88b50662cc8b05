"""``alert_events``, declared in alerts/outputs/alert_events.yaml, is exactly what the alert
service writes: its own ``_record_event`` and ``_flush_events`` into a real InfluxDB, read
back with SHOW TAG KEYS / SHOW FIELD KEYS (names and types)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import get_args

import pytest
from alert_samples import flood_view, resolved
from kota_testing import LocalService, influx_query

from alerts.model import AlertStatus, Audience, CapStatus, Hazard
from alerts.outputs import ALERT_EVENTS, ALERT_OUTPUTS, alert_event_line
from alerts.service import AlertService
from alerts.settings import AlertsSettings
from dashboards.schema import written_schema

SPEC = ALERT_OUTPUTS[ALERT_EVENTS]


def test_declared_tag_values_are_the_models() -> None:
    """The fixed sets in the YAML are the model's Literals: a new hazard or status must be
    declared before a panel may compare against it."""
    for tag, literal in (("hazard", Hazard), ("audience", Audience), ("status", AlertStatus),
                         ("cap_status", CapStatus)):
        assert set(SPEC.tags[tag].values or []) == set(get_args(literal)), tag
    assert SPEC.windows == [] and "window" not in SPEC.tag_values()
    assert not SPEC.replaced_with_window


def test_dashboards_schema_knows_alert_events() -> None:
    schema = written_schema()[ALERT_EVENTS]
    assert set(schema.tags) == set(SPEC.tags)
    assert schema.fields == set(SPEC.fields)


def test_the_service_writes_exactly_the_declared_measurement(
        tmp_path: Path, influxdb: LocalService, database: str) -> None:
    settings = AlertsSettings.model_validate({
        "database": {"url": f"sqlite:///{tmp_path / 'alerts.db'}"},
        "influx": {"url": f"http://127.0.0.1:{influxdb.port}", "database": database},
        "metrics_port": 0, "rules_reload_s": 0})
    service = AlertService(settings)
    fired = flood_view()
    views = [fired, replace(flood_view(version=2), status="acknowledged"), resolved(fired, 3),
             replace(flood_view(alert_id=2), texts={}, cap_status="Exercise")]
    for view in views:
        service._record_event(view)

    async def flush() -> None:
        try:
            await service._flush_events()
        finally:
            await service.influx.close()

    asyncio.run(flush())
    assert service._events == [], "InfluxDB refused the alert events"

    def rows(query: str) -> list[list[object]]:
        return [row for one in influx_query(influxdb, database, query)
                for row in one["values"]]

    tags = {row[0] for row in rows(f'SHOW TAG KEYS FROM "{ALERT_EVENTS}"')}
    field_types = {row[0]: row[1] for row in rows(f'SHOW FIELD KEYS FROM "{ALERT_EVENTS}"')}
    assert tags == set(SPEC.tags)
    assert field_types == {name: spec.type for name, spec in SPEC.fields.items()}
    for tag, spec in SPEC.tags.items():
        if spec.values is not None:
            written = {row[1] for row in rows(
                f'SHOW TAG VALUES FROM "{ALERT_EVENTS}" WITH KEY = "{tag}"')}
            assert written <= set(spec.values), tag
    points = rows(f'SELECT "alert_id", "version", "status" FROM "{ALERT_EVENTS}"')
    assert sorted((p[1], p[2], p[3]) for p in points) == sorted(
        (float(v.id), float(v.version), v.status) for v in views)
    # Without an id-ID text the level stands in for the headline.
    assert rows(f'SELECT "headline", "level" FROM "{ALERT_EVENTS}" WHERE "alert_id" = 2') == [
        [rows(f'SELECT "headline" FROM "{ALERT_EVENTS}" WHERE "alert_id" = 2')[0][0],
         "Siaga 2 (Siaga)", "Siaga 2 (Siaga)"]]


@pytest.mark.parametrize("enabled", [True, False])
def test_influx_events_setting_turns_the_record_off(tmp_path: Path, enabled: bool) -> None:
    settings = AlertsSettings.model_validate({
        "database": {"url": f"sqlite:///{tmp_path / 'alerts.db'}"},
        "influx_events": enabled, "metrics_port": 0})
    service = AlertService(settings)
    service._record_event(flood_view())
    assert service._events == ([alert_event_line(flood_view())] if enabled else [])
