"""Helpers for tests on real services: InfluxDB queries, MQTT publishing, an ingest process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt

from devstack.localstack import LocalService, free_port, stop_process

REPO = Path(__file__).resolve().parents[2]


def influx_query(influx: LocalService, database: str, influxql: str) -> list[dict[str, Any]]:
    response = httpx.post(f"http://127.0.0.1:{influx.port}/query",
                          params={"db": database, "q": influxql, "epoch": "ms"}, timeout=30)
    response.raise_for_status()
    result = response.json()["results"][0]
    assert "error" not in result, result["error"]
    series: list[dict[str, Any]] = result.get("series", [])
    return series


def count_points(influx: LocalService, database: str, measurement: str,
                 where: str = "") -> int:
    """Number of points (not field values) in a measurement: count over any field."""
    series = influx_query(influx, database,
                          f'SELECT count(*) FROM "{measurement}" {where}')
    if not series:
        return 0
    return int(max(v for v in series[0]["values"][0][1:] if v is not None))


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str,
               interval_s: float = 0.2) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def publish(port: int, messages: Iterable[tuple[str, bytes | str | dict[str, Any] | list[Any]]],
            timeout_s: float = 60.0, client_id: str = "test-publisher",
            rate_per_s: float | None = None) -> int:
    """Publish at QoS 1 and wait for every PUBACK. Returns how many were acknowledged.

    With ``rate_per_s``, messages are paced (in chunks of 50) so a stream spans some time.
    """
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        infos: list[mqtt.MQTTMessageInfo] = []
        started = time.monotonic()
        deadline = started + timeout_s
        for index, (topic, payload) in enumerate(messages):
            if isinstance(payload, dict | list):
                payload = json.dumps(payload)
            if index >= 20_000:  # paho's message ids wrap at 65535: keep fewer outstanding
                infos[index - 20_000].wait_for_publish(max(0.1, deadline - time.monotonic()))
            infos.append(client.publish(topic, payload, qos=1))
            if rate_per_s and index % 50 == 49:
                ahead_s = (index + 1) / rate_per_s - (time.monotonic() - started)
                if ahead_s > 0:
                    time.sleep(ahead_s)
        for info in infos:
            info.wait_for_publish(max(0.1, deadline - time.monotonic()))
        return sum(1 for info in infos if info.is_published())
    finally:
        client.disconnect()
        client.loop_stop()


class IngestProcess:
    """``kota ingest`` as a real subprocess, configured by environment variables."""

    def __init__(self, workdir: Path, mqtt_port: int, influx_port: int, database: str,
                 **settings: str) -> None:
        self.workdir = workdir
        self.metrics_port = free_port()
        self.env = dict(os.environ)
        self.env.update({
            "KOTA_INGEST__MQTT__PORT": str(mqtt_port),
            "KOTA_INGEST__INFLUX__URL": f"http://127.0.0.1:{influx_port}",
            "KOTA_INGEST__INFLUX__DATABASE": database,
            "KOTA_INGEST__BUFFER__DIR": str(workdir / "buffer"),
            "KOTA_INGEST__DEADLETTER__DIR": str(workdir / "deadletter"),
            "KOTA_INGEST__METRICS_PORT": str(self.metrics_port),
            "KOTA_INGEST__STATS_INTERVAL_S": "1",
            "KOTA_INGEST__MQTT__KEEPALIVE_S": "5",
        })
        for key, value in settings.items():
            self.env[f"KOTA_INGEST__{key.upper()}"] = value
        self.log_path = workdir / "ingest.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.extra_args: list[str] = []

    def start(self, wait_connected: bool = True) -> IngestProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kota", "ingest", *self.extra_args], env=self.env,
            stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        log.close()
        if wait_connected:
            try:
                wait_until(lambda: self.metric("kota_ingest_mqtt_connected") == 1.0, 60,
                           f"ingest to connect (log: {self.log_path})")
            except BaseException:
                self.stop()   # a start that failed leaves no process behind
                raise
        return self

    def metric(self, name: str) -> float | None:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"ingest exited with {self.process.returncode}:\n{self.log()}")
        try:
            text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2).text
        except httpx.HTTPError:
            return None
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "_total "):
                return float(line.split()[-1])
        return None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        process, self.process = self.process, None
        stop_process(process, 30.0)

    def kill(self) -> None:
        process, self.process = self.process, None
        stop_process(process, 5.0, signal.SIGKILL)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1: (ca.crt, server.crt, server.key)."""
    folder.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             "/CN=kota-test-ca", "-keyout", "ca.key", "-out", "ca.crt", cwd=folder)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
             "-keyout", "server.key", "-out", "server.csr", cwd=folder)
    (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-extfile", "san.cnf", "-out", "server.crt",
             cwd=folder)
    return folder / "ca.crt", folder / "server.crt", folder / "server.key"


def make_client_certificate(ca_file: Path, folder: Path, common_name: str) -> tuple[Path, Path]:
    """A client certificate signed by the CA of ``make_certificates`` (its ca.key beside
    ``ca_file``): (certificate, key), for a broker that requires certificates."""
    folder.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={common_name}",
             "-keyout", f"{common_name}.key", "-out", f"{common_name}.csr", cwd=folder)
    _openssl("x509", "-req", "-in", f"{common_name}.csr", "-CA", str(ca_file), "-CAkey",
             str(ca_file.with_name("ca.key")), "-CAcreateserial", "-days", "2",
             "-out", f"{common_name}.crt", cwd=folder)
    return folder / f"{common_name}.crt", folder / f"{common_name}.key"


def make_password_file(path: Path, users: dict[str, str]) -> Path:
    """A Mosquitto password file (mosquitto_passwd) with these users and passwords."""
    path.write_text("")
    for user, password in users.items():
        subprocess.run(["mosquitto_passwd", "-b", str(path), user, password], check=True,
                       timeout=30)
    return path
