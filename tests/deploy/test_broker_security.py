"""The Compose broker's access control, against the real Debian mosquitto.

deploy/mosquitto/mosquitto.conf (listener ports and file paths moved to a temporary folder,
see test_compose.local_conf) with secrets made by deploy/mosquitto/make-secrets.sh from a small
registry: anonymous and wrong passwords refused, devices publish only to their own topics,
kota-ingest subscribes (plainly and shared) but cannot publish, the health check logs in, and
the TLS listener serves a certificate signed by the generated CA. Plus the pure ACL functions.
"""

from __future__ import annotations

import os
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from broker_setup import (
    MAKE_SECRETS,
    REPO,
    SERVICES,
    local_conf,
    make_secrets,
    start_broker,
    stop_broker,
)
from click.testing import CliRunner

from devstack.localstack import free_port
from kota.broker import (
    HEALTHCHECK_TOPIC,
    Account,
    accounts,
    acl_text,
    ingest_users,
    merge_passwords,
    parse_passwords,
)
from kota.broker_cli import broker
from kota.registry import Device, Registry

WAIT_S = 5.0  # bound on every wait for the broker
QUIET_S = 0.5  # how long a forbidden message has to arrive after the allowed one did

REGISTRY_YAML = """devices:
  - {device_id: aq-1, kind: air, city: jakarta, district: Menteng, lat: -6.2, lon: 106.8}
  - {device_id: aq-1-status, kind: status, city: jakarta, district: Menteng, lat: -6.2, lon: 106.8}
  - {device_id: wl-2, kind: water, city: jakarta, district: Tebet, lat: -6.2, lon: 106.8}
  - {device_id: pi-01-air, kind: air, city: bogor, district: Bogor Timur, lat: -6.6, lon: 106.8}
  - {device_id: pi-01-status, kind: status, city: bogor, district: Bogor Timur, lat: -6.6,
     lon: 106.8}
"""


def _device(device_id: str, kind: str = "air", city: str = "jakarta") -> Device:
    return Device(device_id=device_id, kind=kind, city=city, district="Menteng", lat=-6.2,
                  lon=106.8)


# -- pure functions ------------------------------------------------------------------------
@pytest.mark.parametrize(("devices", "agents", "expected"), [
    pytest.param([_device("aq-1")], (), [Account("aq-1", ("kota/jakarta/air/aq-1",))],
                 id="one device, one exact topic"),
    pytest.param([_device("aq-1"), _device("aq-1-status", "status")], (),
                 [Account("aq-1", ("kota/jakarta/air/aq-1", "kota/jakarta/status/aq-1-status"))],
                 id="heartbeat twin belongs to its device"),
    pytest.param([_device("aq-1-status", "status")], (),
                 [Account("aq-1-status", ("kota/jakarta/status/aq-1-status",))],
                 id="status without a registered twin is its own account"),
    pytest.param([_device("aq-1-status", "air")], (),
                 [Account("aq-1-status", ("kota/jakarta/air/aq-1-status",))],
                 id="the -status suffix alone does not make a twin"),
    pytest.param([_device("pi-01-air"), _device("pi-01-status", "status"),
                  _device("pi-01-noise", "noise", "bogor")], ("pi-01",),
                 [Account("pi-01", ("kota/bogor/noise/pi-01-noise", "kota/jakarta/air/pi-01-air",
                                    "kota/jakarta/status/pi-01-status"))],
                 id="agent owns its <id>-<kind> devices"),
    pytest.param([_device("pi-01-water"), _device("pi-01x-air")], ("pi-01",),
                 [Account("pi-01-water", ("kota/jakarta/air/pi-01-water",)),
                  Account("pi-01x-air", ("kota/jakarta/air/pi-01x-air",))],
                 id="agent suffix must name the device's own kind; no prefix match"),
    pytest.param([_device("b"), _device("a", "noise")], ("nobody",),
                 [Account("a", ("kota/jakarta/noise/a",)), Account("b", ("kota/jakarta/air/b",))],
                 id="sorted; an agent without devices gets no account"),
])
def test_accounts(devices: list[Device], agents: tuple[str, ...],
                  expected: list[Account]) -> None:
    assert accounts(Registry(devices), agents) == expected


@pytest.mark.parametrize(("devices", "agents"), [
    ([_device("kota-ingest")], ()),
    ([_device("aq-1")], ("kota-simulator",)),
    ([_device("kota-ingest-7")], ()),  # an ingest worker's account, whatever N is
])
def test_accounts_refuse_a_service_account_name(devices: list[Device],
                                                agents: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="clash with a service account"):
        accounts(Registry(devices), agents)


def test_acl_text_grants_services_and_devices_exactly() -> None:
    registry = Registry([_device("aq-1"), _device("aq-1-status", "status"),
                         _device("wl-2", "water")])
    blocks = [block.splitlines() for block in acl_text(registry, source="x.yaml").split("\n\n")]
    assert blocks[0][0].startswith("#") and "x.yaml" in blocks[0][0]
    rules = {block[0]: block[1:] for block in blocks[1:] if block}
    assert rules == {
        "user kota-ingest": ["topic read kota/#"],
        "user kota-simulator": ["topic write kota/#"],
        "user kota-healthcheck": [f"topic read {HEALTHCHECK_TOPIC}"],
        "user aq-1": ["topic write kota/jakarta/air/aq-1",
                      "topic write kota/jakarta/status/aq-1-status"],
        "user wl-2": ["topic write kota/jakarta/water/wl-2"],
    }
    assert "pattern" not in acl_text(registry)


def test_acl_grants_ingest_workers_what_ingest_has() -> None:
    text = acl_text(Registry([_device("aq-1")]), ingest_workers=2)
    assert "user kota-ingest-1\ntopic read kota/#\n" in text
    assert "user kota-ingest-2\ntopic read kota/#\n" in text
    assert "kota-ingest-3" not in text
    assert ingest_users(0) == ["kota-ingest"]


def test_ingest_logs_in_as_its_client_id() -> None:
    """The broker makes the user name the client id: each worker needs its own account."""
    from ingest.settings import MqttSettings

    worker = MqttSettings(client_id="kota-ingest-2", password="x")  # type: ignore[arg-type]
    assert worker.username == "kota-ingest-2"
    assert MqttSettings(client_id="a", username="b", password="x").username == "b"  # type: ignore[arg-type]
    assert MqttSettings().username is None  # no password: anonymous (the dev broker)


@pytest.mark.parametrize(("existing", "names", "rotate", "expected"), [
    ({}, ["b", "a"], (), {"a": "new1", "b": "new2"}),
    ({"a": "old"}, ["a", "b"], (), {"a": "old", "b": "new1"}),
    ({"a": "old", "gone": "x"}, ["a"], (), {"a": "old"}),
    ({"a": "old", "b": "keep"}, ["a", "b"], ("a",), {"a": "new1", "b": "keep"}),
])
def test_merge_passwords(existing: dict[str, str], names: list[str], rotate: tuple[str, ...],
                         expected: dict[str, str]) -> None:
    counter = iter(range(1, 10))
    assert merge_passwords(existing, names, rotate=rotate,
                           new_password=lambda: f"new{next(counter)}") == expected


def test_merge_passwords_refuses_to_rotate_an_unknown_account() -> None:
    with pytest.raises(ValueError, match="unknown"):
        merge_passwords({}, ["a"], rotate=["b"])


@pytest.mark.parametrize(("text", "expected"), [
    ("", {}),
    ("# note\n\na:p:w\nb:x\n", {"a": "p:w", "b": "x"}),
])
def test_parse_passwords(text: str, expected: dict[str, str]) -> None:
    assert parse_passwords(text) == expected


@pytest.mark.parametrize("bad", ["nocolon\n", ":pw\n", "user:\n"])
def test_parse_passwords_refuses_malformed_lines(bad: str) -> None:
    with pytest.raises(ValueError, match="line 1"):
        parse_passwords(bad)


def test_cli_passwords_keeps_existing_and_reports_errors(tmp_path: Path) -> None:
    registry = tmp_path / "devices.yaml"
    registry.write_text(REGISTRY_YAML)
    file = tmp_path / "device-passwords.txt"
    args = ["passwords", "--registry", str(registry), "--agent", "pi-01", "--file", str(file)]
    assert CliRunner().invoke(broker, args).exit_code == 0
    first = parse_passwords(file.read_text())
    assert sorted(first) == ["aq-1", "pi-01", "wl-2"] and file.stat().st_mode & 0o077 == 0
    assert CliRunner().invoke(broker, [*args, "--rotate", "wl-2"]).exit_code == 0
    second = parse_passwords(file.read_text())
    assert second["aq-1"] == first["aq-1"] and second["wl-2"] != first["wl-2"]
    result = CliRunner().invoke(broker, [*args, "--rotate", "nobody"])
    assert result.exit_code != 0 and "unknown" in result.output
    missing = CliRunner().invoke(broker, ["acl", "--registry", str(tmp_path / "none.yaml")])
    assert missing.exit_code != 0 and "not found" in missing.output


# -- the real broker -----------------------------------------------------------------------
@dataclass
class Broker:
    port: int
    tls_port: int
    passwords: dict[str, str]
    ca_file: Path


@pytest.fixture(scope="module")
def secured_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.access(binary, os.X_OK) or shutil.which("mosquitto_passwd") is None:
        pytest.fail("mosquitto not installed: scripts/install-services.sh test")
    tmp = tmp_path_factory.mktemp("broker")
    registry = tmp / "devices.yaml"
    registry.write_text(REGISTRY_YAML)
    passwords = make_secrets(tmp / "secrets", registry, agents=("pi-01",))
    # make-secrets.sh's default MOSQUITTO_INGEST_WORKERS=4: the worker accounts share the password
    passwords.update({f"kota-ingest-{n}": passwords["kota-ingest"] for n in range(1, 5)})
    port, tls_port, data_dir = free_port(), free_port(), tmp / "data"
    data_dir.mkdir()
    conf = tmp / "mosquitto.conf"
    conf.write_text(local_conf(port, data_dir, tls_port, tmp / "secrets" / "broker"))
    process = start_broker(conf, port, tmp / "mosquitto.log", binary)
    try:
        yield Broker(port, tls_port, passwords, tmp / "secrets" / "broker" / "ca.crt")
    finally:
        stop_broker(process)


class Client:
    """A paho client with bounded waits: connect result, subscription results, messages."""

    def __init__(self, broker_: Broker, user: str | None, password: str | None = None, *,
                 tls_ca: Path | None = None, tls_system: bool = False,
                 protocol: mqtt.MQTTProtocolVersion = mqtt.MQTTv311) -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"test-{uuid.uuid4().hex[:8]}", protocol=protocol)
        if user is not None:
            self.client.username_pw_set(user, password)
        if tls_ca is not None or tls_system:
            self.client.tls_set(ca_certs=str(tls_ca) if tls_ca else None)
        self.connected = threading.Event()
        self.reason: Any = None
        self.messages: list[tuple[str, bytes]] = []
        self.subacks: dict[int, list[Any]] = {}
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda _c, _u, m: self.messages.append((m.topic, m.payload))
        self.client.on_subscribe = lambda _c, _u, mid, codes, _p: self.subacks.update({mid: codes})
        port = broker_.tls_port if (tls_ca or tls_system) else broker_.port
        self.client.connect("localhost" if (tls_ca or tls_system) else "127.0.0.1", port, 30)
        self.client.loop_start()
        assert self.connected.wait(WAIT_S), "no CONNACK"

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.reason = reason
        self.connected.set()

    @property
    def accepted(self) -> bool:
        return not self.reason.is_failure

    def subscribe(self, topic: str) -> bool:
        """True when the broker granted the subscription."""
        _, mid = self.client.subscribe(topic, qos=1)
        assert _wait(lambda: mid in self.subacks), f"no SUBACK for {topic}"
        return not self.subacks[mid][0].is_failure

    def publish(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(WAIT_S)
        assert info.is_published(), f"no PUBACK for {topic}"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _wait(condition: Any, timeout_s: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return bool(condition())


def _connect(broker_: Broker, user: str, **kwargs: Any) -> Client:
    client = Client(broker_, user, broker_.passwords[user], **kwargs)
    assert client.accepted, f"{user} refused: {client.reason}"
    return client


@pytest.mark.slow
@pytest.mark.parametrize(("user", "password", "tls"), [
    (None, None, False),
    (None, None, True),
    ("kota-ingest", "wrong", False),
    ("kota-ingest", "wrong", True),
    ("aq-1", "ingest-test-pw", False),  # another account's password
    ("unknown-device", "x", False),
])
def test_refused_logins(secured_broker: Broker, user: str | None, password: str | None,
                        tls: bool) -> None:
    client = Client(secured_broker, user, password,
                    tls_ca=secured_broker.ca_file if tls else None)
    try:
        assert not client.accepted, f"{user!r} logged in"
    finally:
        client.close()


# (user, topic, may publish). The subscriber sees every allowed message; refused ones vanish.
PUBLISH_CASES = [
    ("aq-1", "kota/jakarta/air/aq-1", True),
    ("aq-1", "kota/jakarta/status/aq-1-status", True),  # its heartbeat twin
    ("aq-1", "kota/jakarta/water/wl-2", False),  # another device
    ("aq-1", "kota/jakarta/water/aq-1", False),  # its id under another kind
    ("aq-1", "kota/bogor/air/aq-1", False),  # its id in another city
    ("aq-1", "kota/jakarta/air/aq-1/extra", False),
    ("wl-2", "kota/jakarta/water/wl-2", True),
    ("wl-2", "kota/jakarta/air/aq-1", False),
    ("pi-01", "kota/bogor/air/pi-01-air", True),  # an agent, under <id>-<kind>
    ("pi-01", "kota/bogor/status/pi-01-status", True),
    ("pi-01", "kota/bogor/water/pi-01-water", False),  # not registered
    ("pi-01", "kota/jakarta/air/aq-1", False),
    ("kota-ingest", "kota/jakarta/air/aq-1", False),  # ingest only reads
    ("kota-healthcheck", HEALTHCHECK_TOPIC, False),
    ("kota-simulator", "kota/jakarta/noise/anything", True),
]


def _mark(broker_: Broker, watchers: list[Client]) -> None:
    """Publish an allowed reading and wait until ``watchers[0]`` has it.

    Mosquitto handles a connection's packets in order, so once this arrives, anything published
    before it that was going to be delivered has been; QUIET_S covers the other connections.
    """
    sentinel, topic = uuid.uuid4().bytes, "kota/jakarta/water/wl-2"
    device = _connect(broker_, "wl-2")
    device.publish(topic, sentinel)
    device.close()
    assert _wait(lambda: (topic, sentinel) in watchers[0].messages), "sentinel lost"
    time.sleep(QUIET_S)


@pytest.mark.slow
def test_devices_publish_only_to_their_own_topics(secured_broker: Broker) -> None:
    # A worker account: kota-ingest itself publishes below, and one account is one session.
    watcher = _connect(secured_broker, "kota-ingest-1")
    try:
        assert watcher.subscribe("kota/#")
        for user, topic, allowed in PUBLISH_CASES:
            payload = f"{user}->{topic}".encode()
            publisher = _connect(secured_broker, user)
            try:
                publisher.publish(topic, payload)  # acknowledged either way
            finally:
                publisher.close()
            if allowed:
                assert _wait(lambda p=payload, t=topic: (t, p) in watcher.messages), (
                    f"{user} could not publish to {topic}")
            else:
                _mark(secured_broker, [watcher])
                assert all(p != payload for _, p in watcher.messages), (
                    f"{user} published to {topic}")
    finally:
        watcher.close()


@pytest.mark.slow
def test_ingest_receives_plain_and_shared(secured_broker: Broker) -> None:
    plain = _connect(secured_broker, "kota-ingest", protocol=mqtt.MQTTv5)
    shared = _connect(secured_broker, "kota-ingest-1", protocol=mqtt.MQTTv5)
    try:
        assert plain.subscribe("kota/+/+/+")
        assert shared.subscribe("$share/kota-ingest/kota/+/+/+")
        message = ("kota/jakarta/air/aq-1", uuid.uuid4().bytes)
        device = _connect(secured_broker, "aq-1", protocol=mqtt.MQTTv5)
        device.publish(*message)
        device.close()
        assert _wait(lambda: message in plain.messages and message in shared.messages)
    finally:
        plain.close()
        shared.close()


@pytest.mark.slow
@pytest.mark.parametrize("user", ["aq-1", "pi-01", "kota-simulator", "kota-healthcheck"])
@pytest.mark.parametrize("topic", ["kota/+/+/+", "$share/g/kota/#", "#"])
def test_only_ingest_receives_readings(secured_broker: Broker, user: str, topic: str) -> None:
    """Mosquitto 2.0.11 acknowledges any SUBSCRIBE; the ACL filters what is delivered."""
    ingest = _connect(secured_broker, "kota-ingest", protocol=mqtt.MQTTv5)
    other = _connect(secured_broker, user, protocol=mqtt.MQTTv5)
    try:
        assert ingest.subscribe("kota/+/+/+")
        other.subscribe(topic)
        _mark(secured_broker, [ingest, other])
        assert other.messages == [], f"{user} read {other.messages}"
    finally:
        ingest.close()
        other.close()


@pytest.mark.slow
def test_tls_listener_serves_the_generated_ca(secured_broker: Broker) -> None:
    client = _connect(secured_broker, "aq-1", tls_ca=secured_broker.ca_file)
    client.close()
    # A client that trusts only the system CAs refuses the broker's certificate.
    with pytest.raises(ssl.SSLCertVerificationError):
        Client(secured_broker, "aq-1", secured_broker.passwords["aq-1"], tls_system=True)
    # The plain port does not speak TLS.
    bad_port = Broker(secured_broker.tls_port, secured_broker.port, {}, secured_broker.ca_file)
    with pytest.raises((ssl.SSLError, OSError)):
        Client(bad_port, "aq-1", "x", tls_ca=secured_broker.ca_file)


@pytest.mark.parametrize(("password", "exit_ok"), [("health-test-pw", True), ("wrong", False)])
def test_compose_health_check_logs_in(secured_broker: Broker, password: str,
                                      exit_ok: bool) -> None:
    command = SERVICES["mosquitto"]["healthcheck"]["test"]
    assert command[0] == "CMD-SHELL"
    # Compose turns $$ into $; the port moves to the test broker's.
    shell = command[1].replace("$$", "$").replace("-p 1883", f"-p {secured_broker.port}")
    assert f"-p {secured_broker.port}" in shell
    result = subprocess.run(["sh", "-c", shell], capture_output=True, text=True, timeout=15,
                            env={**os.environ, "MOSQUITTO_HEALTHCHECK_PASSWORD": password},
                            check=False)
    assert (result.returncode == 0) == exit_ok, result.stderr


@pytest.mark.slow
def test_add_a_device_and_rotate_a_password_with_sighup(tmp_path: Path) -> None:
    """docs/broker.md's procedure: edit the registry, rerun make-secrets.sh, SIGHUP mosquitto."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.access(binary, os.X_OK) or shutil.which("mosquitto_passwd") is None:
        pytest.fail("mosquitto not installed: scripts/install-services.sh test")
    registry, secrets_dir = tmp_path / "devices.yaml", tmp_path / "secrets"
    registry.write_text(REGISTRY_YAML)
    before = make_secrets(secrets_dir, registry, agents=("pi-01",))
    ca = (secrets_dir / "broker" / "ca.crt").read_bytes()
    port, tls_port = free_port(), free_port()
    (tmp_path / "data").mkdir()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(local_conf(port, tmp_path / "data", tls_port, secrets_dir / "broker"))
    process = start_broker(conf, port, tmp_path / "mosquitto.log", binary)
    try:
        live = Broker(port, tls_port, before, secrets_dir / "broker" / "ca.crt")
        assert "new-3" not in before
        registry.write_text(REGISTRY_YAML + "  - {device_id: new-3, kind: noise, city: jakarta, "
                            "district: Tebet, lat: -6.2, lon: 106.8}\n")
        env = {**os.environ, "KOTA_BROKER": f"{sys.executable} -m kota.broker_cli"}
        result = subprocess.run(
            [str(MAKE_SECRETS), "--env", str(tmp_path / "secrets.env"), "--out", str(secrets_dir),
             "--registry", str(registry), "--agent", "pi-01", "--rotate", "aq-1"],
            env=env, capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr
        after = dict(line.split(":", 1) for line in
                     (secrets_dir / "device-passwords.txt").read_text().splitlines())
        assert after["aq-1"] != before["aq-1"] and after["wl-2"] == before["wl-2"]
        assert (secrets_dir / "broker" / "ca.crt").read_bytes() == ca, "CA must be kept"
        old_session, kept = _connect(live, "aq-1"), _connect(live, "wl-2")
        disconnected, kept_lost = threading.Event(), threading.Event()
        old_session.client.on_disconnect = lambda *_args: disconnected.set()
        kept.client.on_disconnect = lambda *_args: kept_lost.set()
        process.send_signal(signal.SIGHUP)  # by PID: reload passwd and acl
        # Mosquitto rechecks connected clients on reload: the old password is cut off at once,
        # an unchanged one stays connected.
        assert disconnected.wait(WAIT_S), "client with the rotated password still connected"
        old_session.client.loop_stop()
        assert not kept_lost.wait(QUIET_S) and kept.client.is_connected()
        kept.close()
        live.passwords = {**before, **after}

        def login(user: str, password: str) -> bool:
            client = Client(live, user, password)
            client.close()
            return bool(client.accepted)

        assert _wait(lambda: login("new-3", after["new-3"]))
        assert not login("aq-1", before["aq-1"]) and login("aq-1", after["aq-1"])
        assert login("wl-2", before["wl-2"])
        watcher = _connect(live, "kota-ingest")
        watcher.subscribe("kota/#")
        device = _connect(live, "new-3")
        device.publish("kota/jakarta/noise/new-3", b"{}")
        device.close()
        assert _wait(lambda: ("kota/jakarta/noise/new-3", b"{}") in watcher.messages)
        watcher.close()
    finally:
        stop_broker(process)


def test_make_secrets_refuses_placeholders(tmp_path: Path) -> None:
    result = subprocess.run([str(MAKE_SECRETS), "--env", str(REPO / ".env.example"), "--out",
                             str(tmp_path / "secrets")], capture_output=True, text=True,
                            timeout=30, check=False,
                            env={**os.environ,
                                 "KOTA_BROKER": f"{sys.executable} -m kota.broker_cli"})
    assert result.returncode != 0 and "placeholder" in result.stderr
    assert not (tmp_path / "secrets").exists()


# -- client ids are bound to accounts (issue 10: a device took over ingest's session) -------
def _session_client(broker_: Broker, user: str, client_id: str, *, clean_start: bool,
                    tls: bool = False) -> tuple[mqtt.Client, list[bytes], threading.Event]:
    """An MQTT 5 client with a chosen client id and a 1-hour session; waits for CONNACK."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5)
    client.username_pw_set(user, broker_.passwords[user])
    if tls:
        client.tls_set(ca_certs=str(broker_.ca_file))
    received: list[bytes] = []
    connected, dropped = threading.Event(), threading.Event()
    client.on_message = lambda _c, _u, m: received.append(bytes(m.payload))

    def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if not reason.is_failure:
            connected.set()

    client.on_connect = on_connect
    client.on_disconnect = lambda *_args: dropped.set()
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 3600
    client.connect("localhost" if tls else "127.0.0.1",
                   broker_.tls_port if tls else broker_.port, 30,
                   clean_start=clean_start, properties=properties)
    client.loop_start()
    assert connected.wait(WAIT_S), f"{user} as {client_id}: no successful CONNACK"
    return client, received, dropped


def _stop(client: mqtt.Client) -> None:
    client.disconnect()
    client.loop_stop()


@pytest.mark.slow
@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_a_device_cannot_take_over_ingests_session(secured_broker: Broker, tls: bool) -> None:
    """The attack of issue 10, on the generated configuration: a device logs in with its own
    password and client id kota-ingest, clean start. Before the fix it disconnected ingest and
    deleted its queue (ingest then got 0 of 5); now its client id is its user name."""
    ingest_id = f"kota-ingest-{3 if tls else 4}"  # a session of its own per parametrisation
    ingest, received, dropped = _session_client(secured_broker, ingest_id, ingest_id,
                                                clean_start=True, tls=tls)
    _, mid = ingest.subscribe("kota/+/+/+", qos=1)
    assert _wait(lambda: mid not in ingest._in_messages and ingest.is_connected())
    time.sleep(0.2)  # SUBACK
    # 1. While ingest is connected: the device's login does not disconnect it.
    attacker, _, _ = _session_client(secured_broker, "aq-1", ingest_id, clean_start=True,
                                     tls=tls)
    assert not dropped.wait(QUIET_S) and ingest.is_connected(), "device kicked ingest off"
    _stop(attacker)
    _stop(ingest)  # ingest away: the broker queues for its persistent session
    device = _connect(secured_broker, "wl-2", tls_ca=secured_broker.ca_file if tls else None)
    payloads = [f"queued-{tls}-{n}-{uuid.uuid4().hex}".encode() for n in range(5)]
    for payload in payloads:
        device.publish("kota/jakarta/water/wl-2", payload)
    device.close()
    # 2. While ingest is away: a clean-start login with ingest's client id wipes nothing.
    attacker, _, _ = _session_client(secured_broker, "aq-1", ingest_id, clean_start=True,
                                     tls=tls)
    _stop(attacker)
    ingest, received, _ = _session_client(secured_broker, ingest_id, ingest_id,
                                          clean_start=False, tls=tls)
    try:
        assert _wait(lambda: len(received) >= 5), f"ingest got {len(received)} of 5 queued"
        assert received == payloads
    finally:
        _stop(ingest)


@pytest.mark.slow
def test_one_account_is_one_session(secured_broker: Broker) -> None:
    """What the binding costs: two connections of one account share one session, so the second
    disconnects the first, whatever client ids they send; ingest workers use an account each."""
    first, _, dropped = _session_client(secured_broker, "aq-1", "first", clean_start=True)
    second, _, _ = _session_client(secured_broker, "aq-1", "second", clean_start=True)
    try:
        assert dropped.wait(WAIT_S), "a second login of one account kept both sessions"
    finally:
        _stop(second)
        first.loop_stop()
