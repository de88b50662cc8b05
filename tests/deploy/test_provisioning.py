"""Provisioning a device without a restart (issue 10), against the real services: Mosquitto 2.0.11
with the deploy configuration (password_file + acl_file for the services, the dynamic security
plugin for provisioned devices), `kota ingest` as a subprocess, the API under TestClient, and the
database (SQLite) behind `kota devices`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
import yaml
from broker_setup import REPO, local_conf, make_secrets, start_broker, stop_broker
from fastapi.testclient import TestClient
from kota_testing import free_port

from agent.config import parse_config
from api.main import create_app
from api.settings import ApiSettings
from devstack.localstack import LocalService
from kota.broker import dynsec_create_commands, dynsec_remove_commands
from kota.settings.mqtt import MqttConnection
from store.db import ensure_schema, make_engine
from store.devices import Dynsec
from store.keys import KeyStore

pytestmark = pytest.mark.slow

WAIT_S = 15.0
LEGACY_YAML = """\
devices:
  - device_id: legacy-01
    kind: water
    city: jakarta
    district: Gambir
    lat: -6.17
    lon: 106.82
"""


@dataclass
class Broker:
    port: int
    passwords: dict[str, str]
    log: Path


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    tmp = tmp_path_factory.mktemp("dynsec-broker")
    registry = tmp / "devices.yaml"
    registry.write_text(LEGACY_YAML)
    passwords = make_secrets(tmp / "secrets", registry)
    port = free_port()
    conf = tmp / "mosquitto.conf"
    conf.write_text(local_conf(port, tmp / "data", free_port(), tmp / "secrets" / "broker"))
    process = start_broker(conf, port, tmp / "mosquitto.log", binary)
    try:
        yield Broker(port, passwords, tmp / "mosquitto.log")
    finally:
        stop_broker(process)


def _wait(condition: Any, timeout_s: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


class Device:
    """A paho client: whether the broker took the login, and whether it dropped us later."""

    def __init__(self, port: int, user: str, password: str, client_id: str = "") -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=client_id or f"t-{uuid.uuid4().hex[:8]}")
        self.client.username_pw_set(user, password)
        self.connack = threading.Event()
        self.dropped = threading.Event()
        self.reason: Any = None
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_args: self.dropped.set()
        self.client.reconnect_delay_set(60, 120)  # no quiet reconnect behind the test's back
        self.client.connect("127.0.0.1", port, 30)
        self.client.loop_start()
        assert self.connack.wait(WAIT_S), "no CONNACK"

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.reason = reason
        self.connack.set()

    @property
    def accepted(self) -> bool:
        return not self.reason.is_failure

    def publish(self, topic: str, payload: dict[str, Any]) -> None:
        info = self.client.publish(topic, json.dumps(payload), qos=1)
        info.wait_for_publish(WAIT_S)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _login(port: int, user: str, password: str) -> bool:
    device = Device(port, user, password)
    try:
        return device.accepted
    finally:
        device.close()


def _config(tmp: Path, broker_: Broker, registry_file: Path) -> Path:
    """kota.yaml for `kota devices`: the database, the registry file, the provisioner."""
    config = tmp / "kota.yaml"
    config.write_text(yaml.safe_dump({"api": {
        "database": {"url": f"sqlite:///{tmp / 'kota.db'}"},
        "registry_file": str(registry_file),
        "provisioning": {"broker": {"port": broker_.port,
                                    "password": broker_.passwords["kota-provisioner"]},
                         "device_port": broker_.port, "device_tls": False, "timeout_s": 5},
    }}))
    return config


def _kota(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kota", *args, "--config", str(config)],
                          capture_output=True, text=True, timeout=60, check=False,
                          cwd=config.parent)


def _points(influxdb: LocalService, database: str, device: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"http://127.0.0.1:{influxdb.port}/query", params={
        "db": database, "q": f"SELECT level_cm, district FROM water WHERE device = '{device}'"})
    series = answer.json()["results"][0].get("series") or []
    return [dict(zip(series[0]["columns"], row, strict=True)) for row in series[0]["values"]] \
        if series else []


def test_cli_provisions_a_device_ingest_sees_it_decommission_locks_it_out(
        broker: Broker, influxdb: LocalService, database: str, tmp_path: Path,
        ingest_factory: Any) -> None:
    registry_file = tmp_path / "registry.yaml"
    (tmp_path / "legacy.yaml").write_text(LEGACY_YAML)
    config = _config(tmp_path, broker, registry_file)
    assert _kota("db", "upgrade", config=config).returncode == 0
    imported = _kota("devices", "import", str(tmp_path / "legacy.yaml"), config=config)
    assert imported.returncode == 0, imported.stderr
    ingest = ingest_factory(
        tmp_path / "ingest", broker.port, influxdb.port, database,
        registry_file=str(registry_file), registry_reload_s="0.5",
        mqtt__username="kota-ingest", mqtt__password=broker.passwords["kota-ingest"],
        mqtt__client_id="kota-ingest").start()
    assert "reloaded" not in ingest.log()

    added = _kota("devices", "add", "new-01", "--kind", "water", "--city", "jakarta",
                  "--district", "Tebet", "--lat", "-6.22", "--lon", "106.85", "--name",
                  "Ciliwung hilir", "--param", "mount_height_cm=420", config=config)
    assert added.returncode == 0, added.stderr
    agent = parse_config(added.stdout, "added.toml")  # what kota-agent would load
    assert agent.mqtt.username == "new-01" and agent.agent.id == "new-01"
    password = agent.mqtt.password or ""
    assert len(password) >= 24 and password not in (tmp_path / "kota.db").read_bytes().decode(
        "latin-1"), "the password must not be stored"
    assert "new-01" in registry_file.read_text()

    # Ingest was not restarted: it tags the new device with its registry district, once it
    # has reloaded the file (every 0.5 s; on a busy machine the device can be quicker).
    assert _wait(lambda: "reloaded" in ingest.log()), ingest.log()[-2000:]
    device = Device(broker.port, "new-01", password)
    assert device.accepted, device.reason
    now = int(time.time())
    device.publish("kota/jakarta/water/new-01", {"ts": now, "level_cm": 123.0})
    assert _wait(lambda: _points(influxdb, database, "new-01")), ingest.log()[-2000:]
    assert [p["district"] for p in _points(influxdb, database, "new-01")] == ["Tebet"]
    # Its own topic only: a neighbour's topic is dropped by the broker.
    device.publish("kota/jakarta/water/legacy-01", {"ts": now, "level_cm": 999.0})

    decommissioned = _kota("devices", "decommission", "new-01", config=config)
    assert decommissioned.returncode == 0, decommissioned.stderr
    assert device.dropped.wait(WAIT_S), "the broker kept the decommissioned device connected"
    device.close()
    assert not _login(broker.port, "new-01", password), "a decommissioned device logged in"
    assert "new-01" not in registry_file.read_text()
    # Ingest is live (a legacy device, password_file account, still gets through) and has only
    # the one point of new-01.
    legacy = Device(broker.port, "legacy-01", broker.passwords["legacy-01"])
    assert legacy.accepted, legacy.reason
    legacy.publish("kota/jakarta/water/legacy-01", {"ts": now + 1, "level_cm": 50.0})
    legacy.close()
    assert _wait(lambda: any(p["level_cm"] == 50.0
                             for p in _points(influxdb, database, "legacy-01")))
    assert all(p["level_cm"] != 999.0 for p in _points(influxdb, database, "legacy-01"))
    assert len(_points(influxdb, database, "new-01")) == 1
    assert "registry" in ingest.log() and "reloaded" in ingest.log()

    listing = _kota("devices", "list", "--all", config=config).stdout
    assert "new-01" in listing and "decommissioned" in listing and "legacy-01" in listing


def test_cli_errors_are_one_line(broker: Broker, tmp_path: Path) -> None:
    registry_file = tmp_path / "registry.yaml"
    config = _config(tmp_path, broker, registry_file)
    assert _kota("db", "upgrade", config=config).returncode == 0
    bad = _kota("devices", "add", "x-1", "--kind", "water", "--city", "jakarta", "--district",
                "Tebet", "--lat", "91", "--lon", "106.8", config=config)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "lat" in bad.stderr
    gone = _kota("devices", "decommission", "nope", config=config)
    assert gone.returncode == 1 and gone.stderr == "error: no active device 'nope' (kota " \
                                                   "devices list)\n"
    # A hand-edited registry file is not overwritten with what the database lacks.
    registry_file.write_text(LEGACY_YAML)
    refused = _kota("devices", "add", "x-2", "--kind", "water", "--city", "jakarta",
                    "--district", "Tebet", "--lat", "-6.2", "--lon", "106.8", config=config)
    assert refused.returncode == 1 and "kota devices import" in refused.stderr
    assert refused.stderr.count("\n") == 1 and registry_file.read_text() == LEGACY_YAML
    # A wrong provisioner password: refused by the broker, said in one line, nothing kept.
    registry_file.unlink()
    wrong = tmp_path / "wrong.yaml"
    settings = yaml.safe_load(config.read_text())
    settings["api"]["provisioning"]["broker"]["password"] = "wrong"
    wrong.write_text(yaml.safe_dump(settings))
    refused = _kota("devices", "add", "x-3", "--kind", "water", "--city", "jakarta",
                    "--district", "Tebet", "--lat", "-6.2", "--lon", "106.8", config=wrong)
    assert refused.returncode == 1 and "login refused" in refused.stderr, refused.stderr
    assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
    assert "x-3" not in _kota("devices", "list", "--all", config=config).stdout


def test_api_provisions_and_decommissions(broker: Broker, influxdb: LocalService,
                                          database: str, tmp_path: Path) -> None:
    registry_file = tmp_path / "registry.yaml"
    registry_file.write_text("devices: []\n")  # the API starts on an existing file
    url = f"sqlite:///{tmp_path / 'kota.db'}"
    engine = make_engine(url)
    ensure_schema(engine, migrate=True)
    admin = KeyStore(engine).create("admin", "admin", expires_in=None, created_by="test")[1]
    settings = ApiSettings.model_validate({
        "influx": {"url": f"http://127.0.0.1:{influxdb.port}", "database": database,
                   "create_database": False},
        "database": {"url": url}, "registry_file": str(registry_file),
        "registry_reload_s": 0.5,
        "provisioning": {"broker": {"port": broker.port,
                                    "password": broker.passwords["kota-provisioner"]},
                         "device_host": "mqtt.kota.example", "device_ca_file": "/etc/ca.crt"}})
    headers = {"Authorization": f"Bearer {admin}"}
    body = {"device_id": "api-01", "kind": "water", "city": "jakarta", "district": "Menteng",
            "lat": -6.19, "lon": 106.83, "params": {"mount_height_cm": 300}}
    with TestClient(create_app(settings)) as client:
        assert client.get("/api/v1/devices/api-01").status_code == 404
        created = client.post("/api/v1/devices", json=body, headers=headers)
        assert created.status_code == 201, created.text
        answer = created.json()
        agent = parse_config(answer["agent_config"], "api.toml")
        assert agent.mqtt.host == "mqtt.kota.example" and agent.mqtt.tls is not None
        assert answer["topics"] == ["kota/jakarta/water/api-01",
                                    "kota/jakarta/status/api-01-status"]
        assert client.get("/api/v1/devices/api-01").json()["district"] == "Menteng"
        assert _login(broker.port, "api-01", answer["password"])
        again = client.post("/api/v1/devices", json=body, headers=headers)
        assert again.status_code == 409 and "already registered" in again.json()["detail"]
        service = client.post("/api/v1/devices", json={**body, "device_id": "kota-ingest"},
                              headers=headers)
        assert service.status_code == 422
        deleted = client.delete("/api/v1/devices/api-01", headers=headers)
        assert deleted.status_code == 200 and deleted.json()["status"] == "decommissioned"
        assert client.get("/api/v1/devices/api-01").status_code == 404
        assert not _login(broker.port, "api-01", answer["password"])
        assert client.delete("/api/v1/devices/api-01", headers=headers).status_code == 404
        # Another process's change (kota devices, a restore) is seen within seconds too.
        registry_file.write_text(LEGACY_YAML)
        assert _wait(lambda: client.get("/api/v1/devices/legacy-01").status_code == 200, 5)


def test_a_provisioned_device_is_bound_to_its_account(broker: Broker) -> None:
    """The dynsec clients live beside the password file: none of them can take over ingest's
    session, send dynamic-security commands or read kota/."""
    dynsec = Dynsec(MqttConnection.model_validate(
        {"port": broker.port, "username": "kota-provisioner",
         "password": broker.passwords["kota-provisioner"]}), 5)
    dynsec.run(dynsec_create_commands("probe-01", "probe-pw", ["kota/jakarta/air/probe-01"]))
    ingest = Device(broker.port, "kota-ingest", broker.passwords["kota-ingest"], "kota-ingest")
    attacker = Device(broker.port, "probe-01", "probe-pw", client_id="kota-ingest")
    try:
        assert attacker.accepted
        time.sleep(0.5)
        assert not ingest.dropped.is_set(), "a provisioned device took over ingest's session"
        # A device cannot make itself another client.
        attacker.publish("$CONTROL/dynamic-security/v1", {"commands": dynsec_create_commands(
            "evil-01", "evil-pw", ["kota/#"])})
        time.sleep(0.5)
        assert not _login(broker.port, "evil-01", "evil-pw")
        # The provisioner has no business with readings: it subscribes (Mosquitto 2.0.11
        # acknowledges that) but is delivered nothing, unlike ingest.
        provisioner = Device(broker.port, "kota-provisioner",
                             broker.passwords["kota-provisioner"])
        got: list[str] = []
        ingest_got: list[str] = []
        provisioner.client.on_message = lambda _c, _u, message: got.append(message.topic)
        ingest.client.on_message = lambda _c, _u, message: ingest_got.append(message.topic)
        provisioner.client.subscribe("kota/#", qos=1)
        ingest.client.subscribe("kota/#", qos=1)
        time.sleep(0.5)
        legacy = Device(broker.port, "legacy-01", broker.passwords["legacy-01"])
        legacy.publish("kota/jakarta/water/legacy-01", {"level_cm": 1.0})
        legacy.close()
        assert _wait(lambda: ingest_got, 5), "ingest got nothing: the check proves nothing"
        time.sleep(0.3)
        provisioner.close()
        assert got == []
    finally:
        attacker.close()
        ingest.close()
        dynsec.run(dynsec_remove_commands("probe-01"), tolerate=("not found",))


def test_start_script_seeds_the_plugin_file_once(tmp_path: Path) -> None:
    script = REPO / "deploy" / "mosquitto" / "start.sh"
    seed, live = tmp_path / "seed.json", tmp_path / "data" / "dynamic-security.json"
    live.parent.mkdir()
    env = {**os.environ, "KOTA_DYNSEC_SEED": str(seed), "KOTA_DYNSEC_FILE": str(live)}
    missing = subprocess.run(["sh", str(script), "true"], env=env, capture_output=True,
                             text=True, timeout=10, check=False)
    assert missing.returncode == 1 and "make-secrets.sh" in missing.stderr
    seed.write_text('{"clients": []}')
    first = subprocess.run(["sh", str(script), "echo", "started"], env=env, capture_output=True,
                           text=True, timeout=10, check=False)
    assert first.returncode == 0 and first.stdout == "started\n"
    assert live.read_text() == '{"clients": []}' and live.stat().st_mode & 0o777 == 0o600
    live.write_text('{"clients": ["provisioned"]}')  # what the plugin wrote since
    seed.write_text('{"clients": ["new seed"]}')
    subprocess.run(["sh", str(script), "true"], env=env, timeout=10, check=True)
    assert live.read_text() == '{"clients": ["provisioned"]}'
