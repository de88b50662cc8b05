"""/api/v1/alerts against a real SQLite file (and PostgreSQL 15 once): alert state made by the
engine's own path (alerts.engine.decide → AlertStore.apply, as AlertService._apply_all does),
real API keys, a real outbox dispatcher failing against a closed loopback port, CAP messages
validated against the OASIS CAP 1.2 schema.

Who sees what: the public only alerts for the public with CAP status Actual that fired, without
names or notes; operators everything, with deliveries; acting needs operator, retrying admin.
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import xmlschema
from api_data import api_registry, make_settings
from fastapi.testclient import TestClient

from alerts.cap import ATOM_NAMESPACE, CAP_NAMESPACE
from alerts.channels.registry import build_channels
from alerts.engine import Timing, decide
from alerts.model import AlertText, AlertView, Area
from alerts.outbox import Dispatcher, OutboxSettings
from alerts.rules import Finding
from alerts.settings import AlertsSettings
from alerts.state import AlertStore, RuleInfo
from api.main import create_app
from devstack.localstack import LocalService, free_port
from store.db import ensure_schema, make_engine
from store.keys import KeyStore
from store.settings import DatabaseSettings

CAP_XSD = Path(__file__).parents[2] / "alerts" / "cap" / "schema" / "CAP-v1.2.xsd"
SENDER = "kota-test@jakarta.go.id"
ALERTS = "/api/v1/alerts"


def texts(headline: str) -> dict[str, AlertText]:
    return {"id-ID": AlertText(headline=headline, description=f"Uraian {headline}.",
                               instruction="Ikuti arahan BPBD."),
            "en-US": AlertText(headline=f"EN {headline}", description=f"About {headline}.",
                               instruction="Follow BPBD's advice.")}


def observe(store: AlertStore, rule_id: str, scope: str, *, grade: int, severity: str,
            at: datetime, hazard: str = "flood", audience: str = "public",
            exercise: bool = False, pending_s: float = 0, clear_after_s: float = 0,
            level: str = "") -> AlertView | None:
    """One observation through the engine and the store, as the alert service applies it."""
    finding = Finding(scope=scope, at=at, grade=grade, level=level or f"grade {grade}",
                      severity=severity,  # type: ignore[arg-type]
                      urgency="Expected", certainty="Observed",
                      area=Area(description=f"around {scope}", districts=("Tebet",),
                                circle_km=(-6.2086, 106.8497, 3.0)),
                      city="jakarta", details={"grade_seen": float(grade)},
                      texts=texts(f"{rule_id} {scope} {level or grade}"))
    timing = Timing(fire_grade=1, pending_s=pending_s, clear_after_s=clear_after_s)
    state = store.active().get((rule_id, scope))
    decision = decide(timing, state, finding.observation(), at)
    return store.apply(RuleInfo(rule_id, hazard, audience, exercise), scope, decision, finding,
                       at)


def alert_id(store: AlertStore, rule_id: str, scope: str) -> int:
    [view] = [v for v in store.find(rule_id=rule_id, limit=1000) if v.scope == scope]
    return view.id


@dataclass
class Env:
    client: TestClient
    store: AlertStore
    keys: dict[str, str]
    ids: dict[str, int]
    url: str

    def get(self, path: str, caller: str = "anonymous", **params: Any) -> Any:
        return self.client.get(path, params=params, headers=self.auth(caller))

    def auth(self, caller: str) -> dict[str, str]:
        return {} if caller == "anonymous" else {"Authorization": f"Bearer {self.keys[caller]}"}


def make_env(url: str, influxdb: LocalService, influx_database: str,
             dead_port: int) -> tuple[TestClient, AlertStore, dict[str, str], AlertsSettings]:
    engine = make_engine(url)
    ensure_schema(engine, migrate=True)
    key_store = KeyStore(engine)
    keys = {role: key_store.create(role, role, expires_in=None, created_by="test")[1]
            for role in ("public", "operator", "admin")}
    alerts_settings = AlertsSettings(
        sender=SENDER, database=DatabaseSettings(url=url),
        channels=[{"type": "webhook", "name": "oncall",  # type: ignore[list-item]
                   "url": f"http://127.0.0.1:{dead_port}/hook", "secret": "0" * 32}])
    store = AlertStore(engine, build_channels(alerts_settings.channels))
    settings = make_settings(influxdb, influx_database).model_copy(
        update={"database": DatabaseSettings(url=url, migrate_on_start=False)})
    app = create_app(settings, registry=api_registry(), alerts_settings=alerts_settings)
    return TestClient(app), store, keys, alerts_settings


def seed_alerts(store: AlertStore) -> dict[str, int]:
    """Six alerts: what the public may see (flood, air, rain resolved) and may not (safety for
    operators, a drill, a pending one)."""
    t0 = datetime.now(UTC) - timedelta(minutes=30)
    observe(store, "flood-siaga", "gauge:manggarai", grade=2, severity="Severe", at=t0,
            level="Siaga 2")
    observe(store, "flood-siaga", "gauge:manggarai", grade=3, severity="Extreme",
            at=t0 + timedelta(minutes=5), level="Siaga 1")          # escalated: version 2
    observe(store, "air-ispu", "district:Tebet", grade=1, severity="Moderate", hazard="air",
            at=t0 + timedelta(minutes=6))
    observe(store, "panic", "device:panic-monas", grade=1, severity="Extreme", hazard="safety",
            audience="operators", at=t0 + timedelta(minutes=7))
    observe(store, "flood-drill", "gauge:depok", grade=2, severity="Severe", exercise=True,
            at=t0 + timedelta(minutes=8))
    observe(store, "flood-siaga", "gauge:katulampa", grade=1, severity="Moderate",
            pending_s=3600, at=t0 + timedelta(minutes=9))
    observe(store, "rain-heavy", "district:Gambir", grade=1, severity="Minor", hazard="rain",
            at=t0 + timedelta(minutes=10))
    observe(store, "rain-heavy", "district:Gambir", grade=0, severity="Minor", hazard="rain",
            at=t0 + timedelta(minutes=11))                          # clear: resolved
    names = {"flood": ("flood-siaga", "gauge:manggarai"), "air": ("air-ispu", "district:Tebet"),
             "panic": ("panic", "device:panic-monas"), "drill": ("flood-drill", "gauge:depok"),
             "pending": ("flood-siaga", "gauge:katulampa"),
             "rain": ("rain-heavy", "district:Gambir")}
    return {name: alert_id(store, *where) for name, where in names.items()}


@pytest.fixture(name="env", scope="module")
def env_fixture(influxdb: LocalService, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[Env]:
    url = f"sqlite:///{tmp_path_factory.mktemp('alerts') / 'kota.db'}"
    client, store, keys, _ = make_env(url, influxdb, "test_alerts_api", free_port())
    ids = seed_alerts(store)
    with client:
        yield Env(client, store, keys, ids, url)


PUBLIC_SET = ("flood", "air", "rain")


def test_public_list_holds_only_public_actual_fired_alerts(env: Env) -> None:
    for caller in ("anonymous", "public"):
        body = env.get(ALERTS, caller).json()
        seen = {a["id"] for a in body["alerts"]}
        assert seen == {env.ids[name] for name in PUBLIC_SET}, caller
        assert all(a["audience"] == "public" and a["cap_status"] == "Actual"
                   for a in body["alerts"])
    operator = {a["id"] for a in env.get(ALERTS, "operator").json()["alerts"]}
    assert operator == set(env.ids.values())
    # Asking for them by status does not help the public either.
    drills = env.get(ALERTS, status=["pending", "firing"]).json()["alerts"]
    assert {a["id"] for a in drills} == {env.ids["flood"], env.ids["air"]}


def test_active_alerts_worst_first(env: Env) -> None:
    public = env.get(ALERTS, active="true").json()["alerts"]
    assert [a["id"] for a in public] == [env.ids["flood"], env.ids["air"]]
    assert public[0]["severity"] == "Extreme" and public[0]["version"] == 2
    assert public[0]["texts"]["id-ID"]["headline"].endswith("Siaga 1")
    assert public[0]["cap_url"].endswith(f"/api/v1/alerts/cap/kota-jakarta-alert-"
                                         f"{env.ids['flood']}-v2")
    rank = {"Unknown": 0, "Minor": 1, "Moderate": 2, "Severe": 3, "Extreme": 4}
    operator = env.get(ALERTS, "operator", active="true").json()
    severities = [rank[a["severity"]] for a in operator["alerts"]]
    assert severities == sorted(severities, reverse=True) and severities[0] == 4
    assert {a["id"] for a in operator["alerts"]} == {env.ids[n] for n in
                                                     ("flood", "air", "panic", "drill", "pending")}
    assert operator["next_cursor"] is None
    resolved = env.get(ALERTS, "operator", active="false").json()["alerts"]
    assert [a["id"] for a in resolved] == [env.ids["rain"]]
    assert resolved[0]["resolved_by"] == "engine" and resolved[0]["msg_type"] == "Cancel"


def test_filters_and_cursor(env: Env) -> None:
    assert [a["id"] for a in env.get(ALERTS, hazard="air").json()["alerts"]] == [env.ids["air"]]
    assert {a["id"] for a in env.get(ALERTS, "operator", rule="flood-siaga").json()["alerts"]} \
        == {env.ids["flood"], env.ids["pending"]}
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert env.get(ALERTS, since=future).json()["alerts"] == []
    assert len(env.get(ALERTS, since="2020-01-01T00:00:00").json()["alerts"]) == 3
    pages, cursor = [], None
    for _page in range(10):  # bounded: 6 alerts, 2 a page
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        body = env.get(ALERTS, "operator", **params).json()
        pages.append([a["id"] for a in body["alerts"]])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    ids = [i for page in pages for i in page]
    assert ids == sorted(env.ids.values(), reverse=True)
    bad = env.get(ALERTS, active="true", cursor=3)
    assert bad.status_code == 422 and bad.headers["content-type"].startswith(
        "application/problem+json")
    assert env.get(ALERTS, since="1999-12-31T00:00:00Z").status_code == 422
    assert env.get(ALERTS, rule="Not A Rule").status_code == 422


def test_one_alert_with_history(env: Env) -> None:
    flood = env.ids["flood"]
    public = env.get(f"{ALERTS}/{flood}").json()
    assert [e["kind"] for e in public["events"]] == ["fired", "escalated"]
    assert all(e["actor"] == "engine" for e in public["events"])
    assert public["deliveries"] is None
    assert [v["identifier"] for v in public["versions"]] == [
        f"kota-jakarta-alert-{flood}-v1", f"kota-jakarta-alert-{flood}-v2"]
    operator = env.get(f"{ALERTS}/{flood}", "operator").json()
    assert [(d["channel"], d["version"], d["status"]) for d in operator["deliveries"]] == [
        ("oncall", 1, "queued"), ("oncall", 2, "queued")]
    for hidden in ("panic", "drill", "pending"):
        response = env.get(f"{ALERTS}/{env.ids[hidden]}", "public")
        assert response.status_code == 404, hidden
        assert env.get(f"{ALERTS}/{env.ids[hidden]}", "operator").status_code == 200
    assert env.get(f"{ALERTS}/99999").status_code == 404
    assert env.get(f"{ALERTS}/0").status_code == 422


def test_acknowledge_and_resolve(env: Env) -> None:
    flood, air = env.ids["flood"], env.ids["air"]
    post = env.client.post
    assert post(f"{ALERTS}/{flood}/ack", json={"note": "x"}).status_code == 401
    assert post(f"{ALERTS}/{flood}/ack", headers=env.auth("public")).status_code == 403
    acked = post(f"{ALERTS}/{flood}/ack", json={"note": "petugas menuju lokasi"},
                 headers=env.auth("operator"))
    assert acked.status_code == 200, acked.text
    assert acked.json()["status"] == "acknowledged"
    assert acked.json()["acknowledged_by"].startswith("api:key ")
    assert "(operator)" in acked.json()["acknowledged_by"]
    again = post(f"{ALERTS}/{flood}/ack", headers=env.auth("operator"))
    assert again.status_code == 409 and "acknowledged" in again.json()["detail"]
    assert again.headers["content-type"].startswith("application/problem+json")
    # Operators read who and why; the public reads neither.
    event = env.get(f"{ALERTS}/{flood}", "operator").json()["events"][-1]
    assert (event["kind"], event["note"]) == ("acknowledged", "petugas menuju lokasi")
    assert "(operator)" in event["actor"]
    public = env.get(f"{ALERTS}/{flood}").json()
    assert public["alert"]["acknowledged_by"] == "operator"
    assert public["events"][-1]["actor"] == "operator" and public["events"][-1]["note"] is None
    assert "petugas" not in env.get(f"{ALERTS}/{flood}").text

    resolved = post(f"{ALERTS}/{air}/resolve", json={"note": "sensor dibersihkan"},
                    headers=env.auth("admin"))
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["status"] == "resolved" and resolved.json()["msg_type"] == "Cancel"
    assert "(admin)" in resolved.json()["resolved_by"]
    # The all-clear is queued to the alert service's channel, as version 2 (and to the
    # subscribers' fan-out, which every version of a public alert goes to).
    deliveries = env.get(f"{ALERTS}/{air}", "operator").json()["deliveries"]
    fanout = [d for d in deliveries if d["channel"] == "subscribers"]
    assert [(d["version"], d["status"]) for d in deliveries if d not in fanout] == [
        (1, "queued"), (2, "queued")]
    assert [d["version"] for d in fanout] == [2]
    assert post(f"{ALERTS}/{air}/resolve", headers=env.auth("operator")).status_code == 409
    assert post(f"{ALERTS}/99999/resolve", headers=env.auth("operator")).status_code == 404
    assert post(f"{ALERTS}/{flood}/ack", json={"other": 1},
                headers=env.auth("operator")).status_code == 422
    active = [a["id"] for a in env.get(ALERTS, active="true").json()["alerts"]]
    assert active == [flood]


def test_silences(env: Env) -> None:
    silences = f"{ALERTS}/silences"
    assert env.get(silences).status_code == 401
    assert env.get(silences, "public").status_code == 403
    post = env.client.post
    operator = env.auth("operator")
    for body in ({"reason": "x", "duration_s": 60},
                 {"rule_id": "flood-siaga", "reason": "x", "duration_s": 60,
                  "ends_at": "2030-01-01T00:00:00Z"},
                 {"rule_id": "flood-siaga", "reason": "x"},
                 {"rule_id": "flood-siaga", "reason": "x", "duration_s": 200 * 86400},
                 {"rule_id": "flood-siaga", "reason": "x", "starts_at": "2030-01-02T00:00:00Z",
                  "ends_at": "2030-01-01T00:00:00Z"}):
        refused = post(silences, json=body, headers=operator)
        assert refused.status_code == 422, (body, refused.text)
        assert refused.headers["content-type"].startswith("application/problem+json")
    made = post(silences, json={"scope": "gauge:depok", "duration_s": 3600,
                                "reason": "pemeliharaan sensor Depok"}, headers=operator)
    assert made.status_code == 201, made.text
    silence = made.json()
    assert silence["active"] and silence["rule_id"] is None
    assert "(operator)" in silence["created_by"]
    assert (datetime.fromisoformat(silence["ends_at"])
            - datetime.fromisoformat(silence["starts_at"])) == timedelta(hours=1)
    listed = env.get(silences, "operator", active="true").json()
    assert [s["id"] for s in listed] == [silence["id"]]
    # It holds: the drill at Depok escalates, the new version is recorded as held by it.
    drill = env.ids["drill"]
    observe(env.store, "flood-drill", "gauge:depok", grade=3, severity="Extreme", exercise=True,
            at=datetime.now(UTC))
    detail = env.get(f"{ALERTS}/{drill}", "operator").json()
    assert [e["kind"] for e in detail["events"]][-2:] == ["escalated", "silenced"]
    assert f"silence {silence['id']}" in detail["events"][-1]["note"]
    assert detail["alert"]["version"] == 2
    ended = env.client.delete(f"{silences}/{silence['id']}", headers=operator)
    assert ended.status_code == 200 and ended.json()["expired_early_at"] is not None
    assert not ended.json()["active"]
    assert env.get(silences, "operator", active="true").json() == []
    assert env.client.delete(f"{silences}/99999", headers=operator).status_code == 404


def test_failed_deliveries_are_listed_and_retried(env: Env) -> None:
    """The real dispatcher tries the webhook on a closed port: with one attempt allowed, every
    queued row fails with its error."""
    engine = env.store.engine
    channels = build_channels(AlertsSettings(channels=[  # type: ignore[list-item]
        {"type": "webhook", "name": "oncall", "url": f"http://127.0.0.1:{free_port()}/hook",
         "secret": "0" * 32}]).channels)
    dispatcher = Dispatcher(engine, channels, OutboxSettings(max_attempts=1))

    async def deliver() -> None:
        try:
            for _round in range(20):  # bounded: a batch of 100 each
                if await dispatcher.deliver_due(channels[0]) == 0:
                    break
        finally:
            await dispatcher.aclose()

    asyncio.run(deliver())
    deliveries = f"{ALERTS}/deliveries"
    assert env.get(deliveries, "public", status="failed").status_code == 403
    failed = env.get(deliveries, "operator", status="failed").json()
    assert len(failed) >= 4
    assert all(d["status"] == "failed" and d["attempts"] == 1 and d["last_error"]
               for d in failed)
    retry = f"{deliveries}/retry"
    assert env.client.post(retry, headers=env.auth("operator")).status_code == 403
    assert env.client.post(retry, params={"channel": "nowhere"},
                           headers=env.auth("admin")).json() == {"requeued": 0}
    answer = env.client.post(retry, headers=env.auth("admin"))
    assert answer.status_code == 200 and answer.json() == {"requeued": len(failed)}
    assert env.get(deliveries, "operator", status="failed").json() == []
    queued = env.get(deliveries, "operator", status="queued", limit=1000).json()
    assert {d["id"] for d in failed} <= {d["id"] for d in queued}
    assert all(d["attempts"] == 0 for d in queued)


def test_cap_messages_and_feed(env: Env) -> None:
    schema = xmlschema.XMLSchema(CAP_XSD)
    flood = env.ids["flood"]
    cap = env.get(f"{ALERTS}/cap/kota-jakarta-alert-{flood}-v2")
    assert cap.status_code == 200
    assert cap.headers["content-type"].startswith("application/cap+xml")
    schema.validate(cap.content)
    root = ET.fromstring(cap.content)
    ns = {"cap": CAP_NAMESPACE}
    assert root.findtext("cap:identifier", namespaces=ns) == f"kota-jakarta-alert-{flood}-v2"
    assert root.findtext("cap:sender", namespaces=ns) == SENDER
    assert root.findtext("cap:msgType", namespaces=ns) == "Update"
    references = root.findtext("cap:references", namespaces=ns) or ""
    assert f"{SENDER},kota-jakarta-alert-{flood}-v1," in references
    assert f"alert-{flood}-v2" not in references
    first = ET.fromstring(env.get(f"{ALERTS}/cap/kota-jakarta-alert-{flood}-v1").content)
    assert first.findtext("cap:msgType", namespaces=ns) == "Alert"
    assert first.find("cap:references", namespaces=ns) is None
    panic = f"kota-jakarta-alert-{env.ids['panic']}-v1"
    assert env.get(f"{ALERTS}/cap/{panic}").status_code == 404
    restricted = env.get(f"{ALERTS}/cap/{panic}", "operator")
    assert restricted.status_code == 200
    schema.validate(restricted.content)
    assert ET.fromstring(restricted.content).findtext("cap:scope", namespaces=ns) == "Restricted"
    assert env.get(f"{ALERTS}/cap/kota-jakarta-alert-{env.ids['drill']}-v1").status_code == 404
    assert env.get(f"{ALERTS}/cap/kota-bandung-alert-{flood}-v1").status_code == 404
    assert env.get(f"{ALERTS}/cap/kota-jakarta-alert-{flood}-v9").status_code == 404
    assert env.get(f"{ALERTS}/cap/not-ours").status_code == 422

    feed = env.get(f"{ALERTS}/cap.atom")
    assert feed.status_code == 200
    assert feed.headers["content-type"].startswith("application/atom+xml")
    assert "max-age=30" in feed.headers["cache-control"]
    entries = ET.fromstring(feed.content).findall(f"{{{ATOM_NAMESPACE}}}entry")
    links = {e.find(f"{{{ATOM_NAMESPACE}}}link").get("href")  # type: ignore[union-attr]
             for e in entries}
    assert any(link.endswith(f"/api/v1/alerts/cap/kota-jakarta-alert-{flood}-v2")
               for link in links)
    assert any(f"alert-{env.ids['rain']}-" in link for link in links)  # ended within the hour
    for hidden in ("panic", "drill", "pending"):
        assert not any(f"alert-{env.ids[hidden]}-" in link for link in links), hidden
    # Every link in the feed serves its message.
    for link in links:
        path = link.split("testserver", 1)[1]
        assert env.get(path).status_code == 200, path
    same = env.client.get(f"{ALERTS}/cap.atom", headers={"If-None-Match": feed.headers["etag"]})
    assert same.status_code == 304 and same.content == b""
    assert env.client.get(f"{ALERTS}/cap.atom",
                          headers={"If-None-Match": '"other"'}).status_code == 200


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_on_postgresql(database_url: str, influxdb: LocalService) -> None:
    client, store, keys, _ = make_env(database_url, influxdb, "test_alerts_pg", free_port())
    ids = seed_alerts(store)
    operator = {"Authorization": f"Bearer {keys['operator']}"}
    with client:
        public = client.get(ALERTS, params={"active": "true"}).json()["alerts"]
        assert [a["id"] for a in public] == [ids["flood"], ids["air"]]
        assert client.get(f"{ALERTS}/{ids['panic']}").status_code == 404
        acked = client.post(f"{ALERTS}/{ids['flood']}/ack", headers=operator)
        assert acked.status_code == 200 and acked.json()["status"] == "acknowledged"
        assert client.post(f"{ALERTS}/{ids['flood']}/ack", headers=operator).status_code == 409
        since = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        assert [a["id"] for a in client.get(ALERTS, params={"since": since}).json()["alerts"]] \
            == [ids["flood"]]
        feed = client.get(f"{ALERTS}/cap.atom")
        assert feed.status_code == 200 and f"alert-{ids['flood']}-v2".encode() in feed.content
        made = client.post(f"{ALERTS}/silences", headers=operator,
                           json={"rule_id": "air-ispu", "duration_s": 60, "reason": "uji"})
        assert made.status_code == 201 and made.json()["active"]
