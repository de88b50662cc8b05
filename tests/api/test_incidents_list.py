"""``/api/v1/indicators/incidents/open``: each unresolved incident for operators (issue 14),
from real safety events in the real InfluxDB, linked to the active alert about it in a real
alert state (SQLite, made by the engine's own path: alerts.engine.decide → AlertStore.apply)
and real API keys. The public gets 401 (no key) or 403 (a public key)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from api_data import MINUTE, make_settings, tags, write_lines
from fastapi.testclient import TestClient
from incident_data import fire_alert, incident_registry

from alerts.settings import AlertsSettings
from alerts.state import AlertStore
from api.main import create_app
from devstack.localstack import LocalService
from store.db import ensure_schema, make_engine
from store.keys import KeyStore
from store.settings import DatabaseSettings

OPEN = "/api/v1/indicators/incidents/open"
HOUR = 60 * MINUTE


@pytest.fixture(name="env")
def env_fixture(influxdb: LocalService, database: str, tmp_path: Path
                ) -> tuple[TestClient, dict[str, str], dict[str, Any]]:
    now_ms = int(time.time() * 1000)
    setiabudi = tags("panic-setiabudi", "safety", "Setiabudi")
    monas = tags("panic-monas", "safety", "Gambir")
    write_lines(influxdb, database, [
        # two open at Setiabudi although its newest event is a resolution (of a third)
        f'safety,{setiabudi},event=fire count=1.0,incident_id="inc-fire" {now_ms - 40 * MINUTE}',
        f'safety,{setiabudi},event=smoke count=1.0,incident_id="inc-fire" {now_ms - 35 * MINUTE}',
        f'safety,{setiabudi},event=panic count=1.0 {now_ms - 20 * MINUTE}',
        f'safety,{setiabudi},event=crowd count=1.0,incident_id="inc-done" {now_ms - 15 * MINUTE}',
        f'safety,{setiabudi},event=resolved count=1.0,incident_id="inc-done" '
        f'{now_ms - 5 * MINUTE}',
        # stale: unresolved, first reported 30 h ago (the open horizon is 24 h)
        f'safety,{monas},event=theft count=1.0,incident_id="inc-old" {now_ms - 30 * HOUR}',
        # a device self-test is never an incident
        f'safety,{monas},event=test count=1.0 {now_ms - 2 * MINUTE}'])
    url = f"sqlite:///{tmp_path / 'kota.db'}"
    engine = make_engine(url)
    ensure_schema(engine, migrate=True)
    keys = {role: KeyStore(engine).create(role, role, expires_in=None, created_by="test")[1]
            for role in ("public", "operator")}
    store = AlertStore(engine, [])
    alert_id = fire_alert(store, "inc-fire", "Severe", datetime.now(UTC) - timedelta(minutes=39))
    settings = make_settings(influxdb, database).model_copy(
        update={"database": DatabaseSettings(url=url, migrate_on_start=False)})
    app = create_app(settings, registry=incident_registry(),
                     alerts_settings=AlertsSettings(database=DatabaseSettings(url=url)))
    return TestClient(app), keys, {"now_ms": now_ms, "alert_id": alert_id}


def test_public_callers_are_refused(env: tuple[TestClient, dict[str, str], dict[str, Any]]
                                    ) -> None:
    client, keys, _ = env
    with client:
        anonymous = client.get(OPEN)
        assert anonymous.status_code == 401
        assert anonymous.headers["content-type"] == "application/problem+json"
        public = client.get(OPEN, headers={"Authorization": f"Bearer {keys['public']}"})
        assert public.status_code == 403


def test_operators_get_each_unresolved_incident_worst_first(
        env: tuple[TestClient, dict[str, str], dict[str, Any]]) -> None:
    client, keys, known = env
    operator = {"Authorization": f"Bearer {keys['operator']}"}
    with client:
        body = client.get(OPEN, headers=operator).json()
        assert body["alerts"] == "linked" and body["count"] == 3
        assert (body["open_horizon_h"], body["lookback_h"]) == (24, 168)
        seen = [(i["incident_id"], i["event"], i["state"], i["district"]) for i in body["items"]]
        # the alerted one first, then the newest open, the stale one last
        assert seen == [("inc-fire", "fire", "open", "Setiabudi"),
                        (None, "panic", "open", "Setiabudi"),
                        ("inc-old", "theft", "stale", "Gambir")]
        fire = body["items"][0]
        assert (fire["last_event"], fire["events"], fire["device_name"]) == (
            "smoke", 2, "Tombol Kuningan")
        assert fire["alert"]["id"] == known["alert_id"]
        assert fire["alert"]["url"] == f"/api/v1/alerts/{known['alert_id']}"
        assert fire["alert"]["severity"] == "Severe"
        assert body["items"][1]["alert"] is None
        opened = datetime.fromisoformat(fire["opened_at"]).timestamp() * 1000
        assert opened == known["now_ms"] - 40 * MINUTE
        assert 40 * 60 - 5 <= fire["age_s"] <= 40 * 60 + 60
        # the alert link is reachable by the operator
        assert client.get(fire["alert"]["url"], headers=operator).status_code == 200
        gambir = client.get(OPEN, headers=operator, params={"district": "Gambir"}).json()
        assert [i["incident_id"] for i in gambir["items"]] == ["inc-old"]
        assert client.get(OPEN, headers=operator,
                          params={"district": "Atlantis"}).status_code == 404
