"""``kota alerts deliver`` as its own process: the queued notifications of one channel go out
(a real aiosmtpd sink; SQLite and PostgreSQL), the other channels' stay queued, SIGTERM stops
it cleanly (exit 0), and with ``delivery.in_process: false`` kota alerts only queues."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml
from alert_samples import SmtpSink, flood_view, insert_alert, subscribers
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from alerts.settings import AlertsSettings
from alerts.subscriptions.fanout import FANOUT_CHANNEL, fan_out
from store.subscription_models import Notification

SECRET = "d" * 16 + "-deliver-process-secret-0123456789"
EMAILS, WEBHOOKS = 6, 2


def _statuses(engine: Engine) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = {}
    with Session(engine) as session:
        for channel, status in session.execute(select(Notification.channel,
                                                      Notification.status)):
            counts[(channel, status)] = counts.get((channel, status), 0) + 1
    return counts


def _config(tmp_path: Path, database_url: str, smtp_port: int) -> Path:
    path = tmp_path / "kota.yaml"
    path.write_text(yaml.safe_dump({"alerts": {
        "database": {"url": database_url}, "metrics_port": 0, "influx_events": False,
        "subscriptions": {"secret": SECRET,
                          "smtp": {"host": "127.0.0.1", "port": smtp_port, "timeout_s": 5},
                          "delivery": {"in_process": False, "poll_interval_s": 0.1,
                                       "digest_window_s": 0}}}}), encoding="utf-8")
    return path


def test_deliver_sends_its_channel_and_stops_on_sigterm(
        engine: Engine, database_url: str, smtp: tuple[int, SmtpSink], tmp_path: Path) -> None:
    port, sink = smtp
    subscribers(engine, "email", EMAILS)
    subscribers(engine, "webhook", WEBHOOKS)
    view = flood_view()
    insert_alert(engine, view)
    assert fan_out(engine, view) == EMAILS + WEBHOOKS
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOTA_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "kota", "alerts", "deliver", "--channel", "email", "--config",
         str(_config(tmp_path, database_url, port))],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while (_statuses(engine).get(("email", "sent"), 0) < EMAILS
               and time.monotonic() < deadline and process.poll() is None):
            time.sleep(0.1)
        assert process.poll() is None, process.communicate(timeout=10)[0].decode()
        assert _statuses(engine) == {("email", "sent"): EMAILS, ("webhook", "queued"): WEBHOOKS}
        assert len(sink.arrived()) == EMAILS
        assert all("subscriber-" in message_id for message_id in sink.arrived())
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    text = output.decode()
    assert process.returncode == 0, text
    assert "deliver: sending email notifications" in text
    assert "deliver: stopped" in text
    assert "Traceback" not in text


def test_deliver_refuses_when_subscriptions_are_off(tmp_path: Path) -> None:
    path = tmp_path / "kota.yaml"
    path.write_text(yaml.safe_dump({"alerts": {
        "database": {"url": f"sqlite:///{tmp_path / 'kota.db'}"},
        "subscriptions": {"enabled": False}}}), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOTA_")}
    result = subprocess.run([sys.executable, "-m", "kota", "alerts", "deliver", "--config",
                             str(path)], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: alerts.subscriptions.enabled is false: there is "
                                     "nothing to deliver")


def test_the_service_only_queues_when_delivery_is_not_in_process(tmp_path: Path) -> None:
    from alerts.service import AlertService

    def service(in_process: bool) -> AlertService:
        return AlertService(AlertsSettings.model_validate({
            "database": {"url": f"sqlite:///{tmp_path / f'{in_process}.db'}"},
            "influx_events": False, "metrics_port": 0,
            "subscriptions": {"secret": SECRET, "delivery": {"in_process": in_process}}}))

    queues_only = service(False)
    assert queues_only.notifier is None
    assert [channel.name for channel in queues_only.channels] == [FANOUT_CHANNEL]
    sends_too = service(True)
    assert sends_too.notifier is not None
    assert [channel.name for channel in sends_too.channels] == [FANOUT_CHANNEL]
