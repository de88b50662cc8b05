"""The simulator's flood (``banjir-ciliwung``) drives Katulampa → Depok → Manggarai through the
real broker into ``kota alerts``: the right alerts fire in order, with the lead times the
upstream rule promises, escalate and resolve once each."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from alert_samples import WebhookReceiver
from alerts_process import AlertsProcess
from kota_testing import LocalService, publish, wait_until
from sqlalchemy import select
from sqlalchemy.orm import Session

from store.alert_models import Alert, AlertEvent
from store.db import make_engine
from store.models import utc

pytestmark = pytest.mark.slow


def _scenario_water(seed: int) -> list[tuple[str, dict[str, object]]]:
    printed = subprocess.run(
        [sys.executable, "-m", "kota", "simulate", "--scenario", "banjir-ciliwung",
         "--speed", "0", "--print", "--seed", str(seed)],
        capture_output=True, text=True, check=True, timeout=120)
    messages = [json.loads(line) for line in printed.stdout.splitlines() if line.strip()]
    return [(m["topic"], m["payload"]) for m in messages if "/water/" in m["topic"]]


def test_the_flood_wave_alerts_in_order_with_lead_times(
        mosquitto: LocalService, influxdb: LocalService, database: str,
        tmp_path: Path) -> None:
    receiver = WebhookReceiver().start()
    url = f"sqlite:///{tmp_path / 'kota.db'}"
    service = AlertsProcess(
        tmp_path / "alerts", mqtt_port=mosquitto.port, influx_port=influxdb.port,
        database=database, database_url=url,
        channels=[{"type": "webhook", "name": "bpbd", "url": receiver.url,
                   "secret": "bpbd-hmac-key-0123456789"}],
        client_id=f"kota-alerts-{tmp_path.name[-20:]}",
        # The scenario's readings carry the simulated (past) times: decide in that time, and
        # let no wall-clock tick interfere.
        max_clock_skew_s=40 * 86400, tick_interval_s=600).start()
    engine = make_engine(url)
    try:
        messages = _scenario_water(seed=3)
        assert len(messages) > 1000
        assert publish(mosquitto.port, messages, timeout_s=120) == len(messages)
        expected = {("flood-siaga", "katulampa"), ("flood-siaga", "depok"),
                    ("flood-siaga", "manggarai"), ("flood-upstream", "katulampa>manggarai")}
        wait_until(lambda: {(b["rule_id"], b["scope"]) for b in receiver.delivered().values()}
                   >= expected, 90, "every gauge's alert delivered")
        with Session(engine) as session:
            alerts = {(a.rule_id, a.scope): a for a in session.scalars(select(Alert))}
            events = {(a.rule_id, a.scope): [e.kind for e in session.scalars(
                select(AlertEvent).where(AlertEvent.alert_id == a.id).order_by(AlertEvent.id))]
                for a in alerts.values()}
        fired = {scope: utc(alerts[("flood-siaga", scope)].fired_at)
                 for scope in ("katulampa", "depok", "manggarai")}
        assert fired["katulampa"] < fired["depok"] < fired["manggarai"]   # type: ignore[operator]
        # The upstream warning for Manggarai came hours before Manggarai itself.
        warned = utc(alerts[("flood-upstream", "katulampa>manggarai")].fired_at)
        lead_h = (fired["manggarai"] - warned).total_seconds() / 3600  # type: ignore[operator]
        assert 4 <= lead_h <= 14, lead_h
        for scope in ("katulampa", "depok", "manggarai"):
            kinds = events[("flood-siaga", scope)]
            assert kinds.count("fired") == 1 and kinds.count("resolved") <= 1, kinds
            assert kinds.count("escalated") >= 1, kinds   # the wave passes Siaga 3 and higher
        # In order of the wave at the receiver too: Katulampa's first alert before Manggarai's.
        arrivals = [(b["rule_id"], b["scope"]) for b in sorted(
            receiver.delivered().values(), key=lambda b: (b["id"], b["version"]))]
        assert arrivals.index(("flood-siaga", "katulampa")) < \
            arrivals.index(("flood-siaga", "manggarai"))
    finally:
        service.stop()
        receiver.stop()
        engine.dispose()
