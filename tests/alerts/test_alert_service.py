"""``kota alerts`` end to end against the real broker, InfluxDB and database (SQLite and
PostgreSQL): readings in over MQTT, notifications out to a real webhook receiver."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from alert_samples import WebhookReceiver
from alerts_process import AlertsProcess, quick_rules
from kota_testing import LocalService, publish, wait_until
from sqlalchemy import select
from sqlalchemy.orm import Session

from store.alert_models import Alert, AlertEvent, OutboxItem
from store.db import make_engine

pytestmark = pytest.mark.slow


def _water(level_cm: float, device: str = "water-manggarai") -> tuple[str, dict[str, Any]]:
    return (f"kota/jakarta/water/{device}", {"ts": time.time(), "level_cm": level_cm})


def _hook(receiver: WebhookReceiver, **extra: Any) -> dict[str, Any]:
    return {"type": "webhook", "name": "oncall", "url": receiver.url,
            "secret": "s3cret-hmac-key-0123456789",
            "audiences": ["public", "operators", "field"], **extra}


def _flood_deliveries(receiver: WebhookReceiver, rule: str = "flood-siaga"
                      ) -> list[dict[str, Any]]:
    bodies = [body for body in receiver.delivered().values() if body["rule_id"] == rule]
    return sorted(bodies, key=lambda body: (body["id"], body["version"]))


def test_a_rising_then_falling_river_fires_escalates_and_resolves_once(
        mosquitto: LocalService, influxdb: LocalService, database: str, tmp_path: Path,
        receiver: WebhookReceiver, database_url: str) -> None:
    service = AlertsProcess(tmp_path / "alerts", mqtt_port=mosquitto.port,
                            influx_port=influxdb.port, database=database,
                            database_url=database_url, channels=[_hook(receiver)],
                            client_id=f"kota-alerts-{tmp_path.name[-20:]}").start()
    try:
        # Manggarai: Siaga 3 from 750 cm, Siaga 2 from 850 (kota/standards/gauges.yaml).
        levels = [700, 760, 790, 860, 845, 852, 700, 690]
        for level in levels[:4]:
            assert publish(mosquitto.port, [_water(level)]) == 1
        wait_until(lambda: len(_flood_deliveries(receiver)) >= 2, 30, "fired and escalated")
        for level in levels[4:]:
            assert publish(mosquitto.port, [_water(level)]) == 1
            time.sleep(0.3)
        # Below 750 - 10 cm hysteresis for clear_after_s (1 s) and a tick: the all-clear.
        wait_until(lambda: any(b["msg_type"] == "Cancel" for b in _flood_deliveries(receiver)),
                   30, "the all-clear")
        time.sleep(1.5)
        deliveries = _flood_deliveries(receiver)
        assert [(b["msg_type"], b["level"].split(" (")[0]) for b in deliveries] == [
            ("Alert", "Siaga 3"), ("Update", "Siaga 2"), ("Cancel", "Siaga 2")]
        assert len({b["id"] for b in deliveries}) == 1   # one alert, three versions
        first = deliveries[0]
        assert first["severity"] == "Moderate" and first["audience"] == "public"
        assert "Manggarai" in first["texts"]["id-ID"]["headline"]
        assert "Tebet" in first["area"]["districts"]
        assert first["texts"]["en-US"]["headline"].startswith("Pintu Air Manggarai: Siaga 3")
        assert deliveries[-1]["texts"]["id-ID"]["headline"].startswith("Berakhir:")
        # 845 and 852 did not lower it to Siaga 3 and back (hysteresis): no flapping.
        engine = make_engine(database_url)
        with Session(engine) as session:
            events = [e.kind for e in session.scalars(
                select(AlertEvent).join(Alert).where(Alert.rule_id == "flood-siaga")
                .order_by(AlertEvent.id))]
        engine.dispose()
        assert events == ["fired", "escalated", "resolved"]
    finally:
        service.stop()


def test_a_panic_press_reaches_operators_at_once_and_never_the_public(
        mosquitto: LocalService, influxdb: LocalService, database: str, tmp_path: Path,
        receiver: WebhookReceiver) -> None:
    public = WebhookReceiver().start()
    service = AlertsProcess(
        tmp_path / "alerts", mqtt_port=mosquitto.port, influx_port=influxdb.port,
        database=database, database_url=f"sqlite:///{tmp_path / 'kota.db'}",
        channels=[_hook(receiver, audiences=["operators"]),
                  {"type": "webhook", "name": "public", "url": public.url,
                   "secret": "another-hmac-key-0123456789", "audiences": ["public"]}],
        client_id=f"kota-alerts-{tmp_path.name[-20:]}").start()
    try:
        sent = time.monotonic()
        assert publish(mosquitto.port, [("kota/jakarta/safety/panic-monas", {
            "ts": time.time(), "event": "panic", "incident_id": "inc-77",
            "message": "Tolong, ada yang pingsan"})]) == 1
        wait_until(lambda: any(b["rule_id"] == "safety-event"
                               for b in receiver.delivered().values()), 20, "the panic alert")
        arrived = min(r.at_s for r in receiver.requests)
        body = next(b for b in receiver.delivered().values() if b["rule_id"] == "safety-event")
        assert body["audience"] == "operators" and body["severity"] == "Extreme"
        assert body["scope"] == "inc-77"
        assert "Tolong, ada yang pingsan" in body["texts"]["id-ID"]["description"]
        assert arrived - sent < 5.0
        # The incident's resolved event closes it: the all-clear, to operators only.
        assert publish(mosquitto.port, [("kota/jakarta/safety/panic-monas", {
            "ts": time.time(), "event": "resolved", "incident_id": "inc-77"})]) == 1
        wait_until(lambda: any(b["rule_id"] == "safety-event" and b["msg_type"] == "Cancel"
                               for b in receiver.delivered().values()), 20, "the all-clear")
        assert public.requests == []
    finally:
        service.stop()
        public.stop()


def test_killed_mid_delivery_every_notification_arrives_once(
        mosquitto: LocalService, influxdb: LocalService, database: str, tmp_path: Path,
        receiver: WebhookReceiver) -> None:
    url = f"sqlite:///{tmp_path / 'kota.db'}"
    # The receiver is down (503) at first: rows stay queued in the outbox when we kill.
    receiver.script.extend([(503, {})] * 1000)
    settings: dict[str, Any] = dict(
        mqtt_port=mosquitto.port, influx_port=influxdb.port, database=database,
        database_url=url, channels=[_hook(receiver)],
        client_id=f"kota-alerts-{tmp_path.name[-20:]}",
        # Retried for as long as the receiver is down, however slow the machine is.
        outbox={"poll_interval_s": 0.2, "backoff_initial_s": 0.2, "backoff_max_s": 1.0,
                "max_attempts": 1000})
    service = AlertsProcess(tmp_path / "alerts", **settings).start()
    gauges = ["water-katulampa", "water-depok", "water-manggarai"]
    high = {"water-katulampa": 160, "water-depok": 280, "water-manggarai": 860}
    assert publish(mosquitto.port, [_water(high[g], g) for g in gauges]) == 3
    engine = make_engine(url)

    def queued() -> int:
        with Session(engine) as session:
            return len(session.scalars(select(OutboxItem).where(
                OutboxItem.channel == "oncall")).all())

    wait_until(lambda: queued() >= 3, 30, "notifications queued")
    service.kill()
    receiver.script.clear()   # the receiver is back
    service = AlertsProcess(tmp_path / "alerts", **settings).start()
    def oncall_keys() -> set[str]:
        with Session(engine) as session:
            return {item.idempotency_key for item in session.scalars(
                select(OutboxItem).where(OutboxItem.channel == "oncall"))}

    try:
        # The broker redelivers what was not acknowledged before the kill: the restarted
        # service may decide more alerts (upstream routes) than the first run had queued.
        # Every notification queued, by either run, must arrive.
        wait_until(lambda: set(receiver.delivered()) >= oncall_keys(), 30,
                   "every notification")
        time.sleep(1.5)
        expected = oncall_keys()
        wait_until(lambda: set(receiver.delivered()) >= expected, 30, "every notification")
        with Session(engine) as session:
            statuses = {item.status for item in session.scalars(select(OutboxItem))}
            alerts = session.scalars(select(Alert)).all()
        assert statuses == {"sent"}
        # Restarting decided nothing new: one alert per gauge rule and scope, version 1.
        siaga = [a for a in alerts if a.rule_id == "flood-siaga"]
        assert sorted(a.scope for a in siaga) == ["depok", "katulampa", "manggarai"]
        assert {a.version for a in siaga} == {1}
        assert set(receiver.delivered()) == expected
    finally:
        service.stop()
        engine.dispose()


def test_a_bad_rules_file_keeps_the_last_good_rules(
        mosquitto: LocalService, influxdb: LocalService, database: str, tmp_path: Path,
        receiver: WebhookReceiver) -> None:
    rules = quick_rules(tmp_path / "rules.yaml")
    service = AlertsProcess(tmp_path / "alerts", mqtt_port=mosquitto.port,
                            influx_port=influxdb.port, database=database,
                            database_url=f"sqlite:///{tmp_path / 'kota.db'}",
                            channels=[_hook(receiver)], rules_file=rules,
                            client_id=f"kota-alerts-{tmp_path.name[-20:]}").start()
    try:
        document = yaml.safe_load(rules.read_text())
        document["rules"][0]["fire_at_status"] = 7
        rules.write_text(yaml.safe_dump(document))
        wait_until(lambda: "rules not reloaded" in service.log(), 20, "the refusal")
        line = next(x for x in service.log().splitlines() if "rules not reloaded" in x)
        assert "fire_at_status" in service.log() and str(rules) in line
        assert "Traceback" not in service.log()
        assert publish(mosquitto.port, [_water(860)]) == 1
        wait_until(lambda: bool(_flood_deliveries(receiver)), 20, "an alert by the old rules")
    finally:
        service.stop()


def test_a_silence_holds_notifications_and_the_alert_is_sent_when_it_ends(
        mosquitto: LocalService, influxdb: LocalService, database: str, tmp_path: Path,
        receiver: WebhookReceiver) -> None:
    from datetime import UTC, datetime, timedelta

    from alerts.state import AlertStore

    url = f"sqlite:///{tmp_path / 'kota.db'}"
    service = AlertsProcess(tmp_path / "alerts", mqtt_port=mosquitto.port,
                            influx_port=influxdb.port, database=database, database_url=url,
                            channels=[_hook(receiver)],
                            client_id=f"kota-alerts-{tmp_path.name[-20:]}").start()
    engine = make_engine(url)
    store = AlertStore(engine)
    now = datetime.now(UTC)
    silence = store.add_silence(rule_id="flood-siaga", scope="manggarai", starts_at=now,
                                ends_at=now + timedelta(hours=1), reason="sensor diservis",
                                actor="test")
    try:
        assert publish(mosquitto.port, [_water(860)]) == 1
        wait_until(lambda: bool(store.find(rule_id="flood-siaga")), 20, "the alert recorded")
        time.sleep(2.0)
        assert _flood_deliveries(receiver) == []
        stored = store.get(store.find(rule_id="flood-siaga")[0].id)
        assert stored is not None and "silenced" in [e.kind for e in stored[1]]
        store.expire_silence(silence.id)
        wait_until(lambda: bool(_flood_deliveries(receiver)), 20, "sent once the silence ended")
    finally:
        service.stop()
        engine.dispose()
