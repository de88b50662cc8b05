"""The agent's publisher against a broker that wants a per-device password and speaks TLS."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kota_testing import make_client_certificate, make_password_file, wait_until

from agent.config import MqttSection, TlsSection
from agent.publisher import Publisher
from agent.queue import ReadingQueue
from devstack.localstack import LocalService, start_mosquitto


@pytest.fixture
def secured_broker(tmp_path: Path, certificates: tuple[Path, Path, Path]
                   ) -> Iterator[LocalService]:
    passwords = make_password_file(tmp_path / "passwd", {"jkt-pi-01": "s3cret-pi"})
    service = start_mosquitto(tmp_path / "mosquitto", password_file=passwords,
                              tls_files=certificates)
    yield service
    service.stop()


def _run(queue: ReadingQueue, mqtt_config: MqttSection) -> tuple[Publisher, threading.Event,
                                                                 threading.Thread]:
    publisher = Publisher(queue, mqtt_config, client_id="kota-agent-jkt-pi-01",
                          status_topic="kota/jakarta/status/jkt-pi-01-status")
    stop = threading.Event()
    thread = threading.Thread(target=publisher.run, args=(stop,), daemon=True)
    thread.start()
    return publisher, stop, thread


@pytest.mark.slow
def test_per_device_password_over_tls(secured_broker: LocalService,
                                      certificates: tuple[Path, Path, Path],
                                      tmp_path: Path) -> None:
    queue = ReadingQueue(tmp_path / "q.sqlite3")
    for i in range(20):
        queue.put("kota/jakarta/air/jkt-pi-01-air", "jkt-pi-01-air", {"pm25": 10.0},
                  time.time() - 100 + i)
    password_file = tmp_path / "mqtt.password"
    tls_port = secured_broker.extra_ports["tls"]

    password_file.write_text("a-guess\n")
    password_file.chmod(0o600)  # readable by every user is refused
    publisher, stop, thread = _run(queue, MqttSection(
        port=tls_port, username="jkt-pi-01", password_file=password_file,
        tls=TlsSection(ca_file=certificates[0]), reconnect_max_s=0.5))
    try:
        wait_until(lambda: "refused" in publisher.stats.last_error, 15,
                   "the refusal to be reported")
        assert "authori" in publisher.stats.last_error.lower()
        assert queue.depth == 20  # nothing deleted without an acknowledgement
    finally:
        stop.set()
        thread.join(10)

    password_file.write_text("s3cret-pi\n")
    publisher, stop, thread = _run(queue, MqttSection(
        port=tls_port, username="jkt-pi-01", password_file=password_file,
        tls=TlsSection(ca_file=certificates[0]), reconnect_max_s=0.5))
    try:
        wait_until(lambda: queue.depth == 0, 15, "the readings to be acknowledged over TLS")
        assert publisher.stats.readings_acked == 20
    finally:
        stop.set()
        thread.join(10)
        queue.close()


@pytest.mark.slow
def test_a_password_over_plain_mqtt_is_a_warning(secured_broker: LocalService, tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """Issue 10: the password crosses plain MQTT in clear text: the publisher says so (once)."""
    queue = ReadingQueue(tmp_path / "q.sqlite3")
    queue.put("kota/jakarta/air/jkt-pi-01-air", "jkt-pi-01-air", {"pm25": 10.0}, time.time())
    caplog.set_level("WARNING", logger="kota_agent.publisher")
    publisher, stop, thread = _run(queue, MqttSection(
        port=secured_broker.port, username="jkt-pi-01", password="s3cret-pi",
        reconnect_max_s=0.5))
    try:
        wait_until(lambda: publisher.stats.readings_acked == 1, 15, "the reading over plain MQTT")
    finally:
        stop.set()
        thread.join(10)
        queue.close()
    plain = [r.getMessage() for r in caplog.records if "clear text" in r.getMessage()]
    assert plain == [f"MQTT 127.0.0.1:{secured_broker.port}: the password is sent in clear "
                     f"text (plain MQTT); add [mqtt.tls] and use port 8883"]


@pytest.mark.slow
def test_a_broker_that_never_answers_is_reported(tmp_path: Path) -> None:
    # A listener that accepts the TCP connection but never sends CONNACK (a hung broker or a
    # captive proxy): the heartbeat's last_error must say so, and nothing leaves the queue.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    queue = ReadingQueue(tmp_path / "q.sqlite3")
    queue.put("kota/jakarta/air/jkt-pi-01-air", "jkt-pi-01-air", {"pm25": 10.0}, time.time())
    publisher = Publisher(queue, MqttSection(port=silent.getsockname()[1], reconnect_max_s=0.5),
                          client_id="kota-agent-jkt-pi-01",
                          status_topic="kota/jakarta/status/jkt-pi-01-status",
                          connack_timeout_s=0.5)
    stop = threading.Event()
    thread = threading.Thread(target=publisher.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_until(lambda: "CONNACK" in publisher.stats.last_error, 10,
                   "the missing CONNACK to be reported")
        assert publisher.stats.last_error == "TimeoutError: no CONNACK within 0.5 s"
        assert not publisher.stats.connected and queue.depth == 1
    finally:
        stop.set()
        thread.join(10)
        silent.close()


@pytest.mark.slow
def test_per_device_client_certificate(certificates: tuple[Path, Path, Path],
                                       tmp_path: Path) -> None:
    # A broker that requires a client certificate on its TLS listener and takes the
    # certificate's CN as the user name (Mosquitto's use_identity_as_username).
    broker = start_mosquitto(tmp_path / "mosquitto", tls_files=certificates,
                             extra_config="require_certificate true\n"
                                          "use_identity_as_username true\n")
    try:
        cert, key = make_client_certificate(certificates[0], tmp_path / "client", "jkt-pi-01")
        queue = ReadingQueue(tmp_path / "q.sqlite3")
        for i in range(10):
            queue.put("kota/jakarta/air/jkt-pi-01-air", "jkt-pi-01-air", {"pm25": 10.0},
                      time.time() - 100 + i)
        tls_port = broker.extra_ports["tls"]

        # without a client certificate the handshake is refused and nothing leaves the queue
        publisher, stop, thread = _run(queue, MqttSection(
            port=tls_port, tls=TlsSection(ca_file=certificates[0]), reconnect_max_s=0.5))
        try:
            wait_until(lambda: publisher.stats.last_error != "", 15,
                       "the refused handshake to be reported")
            assert not publisher.stats.connected and queue.depth == 10
        finally:
            stop.set()
            thread.join(10)

        publisher, stop, thread = _run(queue, MqttSection(
            port=tls_port, tls=TlsSection(ca_file=certificates[0], cert_file=cert,
                                          key_file=key), reconnect_max_s=0.5))
        try:
            wait_until(lambda: queue.depth == 0, 15,
                       "the readings to be acknowledged with the client certificate")
            assert publisher.stats.readings_acked == 10
        finally:
            stop.set()
            thread.join(10)
    finally:
        broker.stop()
