"""Ingest against a broker that wants a password and speaks TLS; and `--workers`."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
from kota_testing import count_points, make_password_file, wait_until

from devstack.localstack import LocalService, free_port, start_mosquitto

NOW_S = int(time.time()) - 600


@pytest.fixture
def secured_broker(tmp_path: Path, certificates: tuple[Path, Path, Path]
                   ) -> Iterator[LocalService]:
    passwords = make_password_file(tmp_path / "passwd", {"ingest": "s3cret-ingest",
                                                         "device": "s3cret-device"})
    service = start_mosquitto(tmp_path / "mosquitto", password_file=passwords,
                              tls_files=certificates)
    yield service
    service.stop()


def _publish_with_password(port: int, count: int) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="device-1",
                         protocol=mqtt.MQTTv5)
    client.username_pw_set("device", "s3cret-device")
    client.connect("127.0.0.1", port)
    client.loop_start()
    infos = [client.publish(f"kota/jakarta/noise/sec-{i % 3}",
                            f'{{"laeq_db": 60.5, "ts": {NOW_S + i}}}', qos=1)
             for i in range(count)]
    for info in infos:
        info.wait_for_publish(30)
    client.disconnect()
    client.loop_stop()
    assert all(info.is_published() for info in infos)


@pytest.mark.slow
def test_wrong_password_is_reported_and_right_one_over_tls_works(
        secured_broker: LocalService, certificates: tuple[Path, Path, Path],
        influxdb: LocalService, database: str, client_id: str, tmp_path: Path,
        ingest_factory: type) -> None:
    ca_file = certificates[0]
    wrong = ingest_factory(tmp_path / "wrong", secured_broker.port, influxdb.port, database,
                           mqtt__client_id=client_id, mqtt__username="ingest",
                           mqtt__password="guess").start(wait_connected=False)
    # Mosquitto answers a wrong password with "not authorized" (MQTT 5 reason 0x87).
    wait_until(lambda: "refused the connection: not authorized" in wrong.log(), 30,
               "a clear log line about the credentials")
    assert "Check mqtt.username, mqtt.password" in wrong.log()
    assert wrong.metric("kota_ingest_mqtt_connected") == 0.0  # still running, retrying
    wrong.stop()

    tls_port = secured_broker.extra_ports["tls"]
    ingest = ingest_factory(tmp_path / "tls", tls_port, influxdb.port, database,
                            mqtt__client_id=client_id, mqtt__username="ingest",
                            mqtt__password="s3cret-ingest", mqtt__tls="true",
                            mqtt__ca_file=str(ca_file)).start()
    _publish_with_password(secured_broker.port, 30)
    wait_until(lambda: count_points(influxdb, database, "noise") == 30, 30, "30 points via TLS")
    assert "connected to MQTT broker" in ingest.log()


@pytest.mark.slow
def _two_free_ports() -> int:
    """A port p with p + 1 free too (bounded tries)."""
    import socket

    for _attempt in range(50):
        base = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", base + 1))
            except OSError:
                continue
        return base
    raise AssertionError("no two consecutive free ports in 50 tries")


def test_workers_option_starts_processes_on_a_shared_subscription(
        mosquitto: LocalService, influxdb: LocalService, database: str, client_id: str,
        tmp_path: Path) -> None:
    from kota_testing import IngestProcess, publish

    template = IngestProcess(tmp_path, mosquitto.port, influxdb.port, database,
                             mqtt__client_id=client_id)
    # Worker n serves /metrics on base + n - 1: both ports must be free (a free base alone
    # left base + 1 taken by another process once, and worker 2 never came up).
    base_metrics = _two_free_ports()
    env = {**template.env, "KOTA_INGEST__METRICS_PORT": str(base_metrics)}
    log = (tmp_path / "workers.log").open("wb")
    parent = subprocess.Popen([sys.executable, "-m", "kota", "ingest", "--workers", "2"],
                              env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)

    def connected(port: int) -> bool:
        try:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
        except httpx.HTTPError:
            return False
        return "kota_ingest_mqtt_connected 1.0" in text

    try:
        wait_until(lambda: connected(base_metrics) and connected(base_metrics + 1), 60,
                   "both workers to connect")
        messages = [(f"kota/jakarta/rain/w-{i % 5}", {"rain_mm": 0.2, "ts": NOW_S + i})
                    for i in range(400)]
        assert publish(mosquitto.port, messages) == len(messages)
        wait_until(lambda: count_points(influxdb, database, "rain") == len(messages), 60,
                   "every point")
        assert "started 2 ingest workers" in (tmp_path / "workers.log").read_text()
    finally:
        parent.terminate()
        parent.wait(60)
        log.close()
    assert parent.returncode == 0
