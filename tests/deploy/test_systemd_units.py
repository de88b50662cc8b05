"""deploy/systemd: the units pass `systemd-analyze verify`, run real commands, and install.sh works.

systemd-analyze (Debian package systemd) verifies copies of the units whose ExecStart points at
this venv's `kota` (it checks that the binary exists). Nothing is installed or started.
"""

from __future__ import annotations

import configparser
import itertools
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from broker_setup import DYNSEC_PLUGIN, MOSQUITTO_CONF, make_secrets, start_broker, stop_broker
from kota_testing import REPO as REPO_ROOT

from devstack.localstack import free_port
from store.settings import DEFAULT_URL

ROOT = REPO_ROOT
SYSTEMD = ROOT / "deploy" / "systemd"
INSTALLED_KOTA = "/opt/kota/venv/bin/kota"
KOTA = Path(sys.executable).parent / "kota"
SERVICES = ["kota-ingest.service", "kota-indicators.service", "kota-api.service",
            "kota-alerts.service", "kota-alerts-deliver@.service"]
UNITS = [*SERVICES, "kota.target"]
BROKER_CONF = SYSTEMD / "mosquitto-kota.conf"
SECRETS_DIR = "/etc/mosquitto/kota"  # where install.sh --secrets copies the broker's files
DYNSEC_FILE = "/var/lib/mosquitto/dynamic-security.json"  # in Debian's mosquitto data folder
PUBLISHER_PASSWORD_FILE = "/etc/kota/mqtt-alerts-publisher.password"


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=True, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((SYSTEMD / name).read_text(encoding="utf-8"))
    return parser


def _exec_start(name: str) -> list[str]:
    return shlex.split(_unit(name)["Service"]["ExecStart"])


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze not found: install Debian's systemd package"
    assert KOTA.exists()
    for name in UNITS:
        text = (SYSTEMD / name).read_text(encoding="utf-8")
        (tmp_path / name).write_text(text.replace(INSTALLED_KOTA, str(KOTA)), encoding="utf-8")
    result = subprocess.run([analyze, "verify", "--man=no", *(str(tmp_path / n) for n in UNITS)],
                            capture_output=True, text=True, timeout=60, check=False)
    output = result.stdout + result.stderr
    # Other units of the machine may draw warnings of their own; ours must draw none.
    ours = [line for line in output.splitlines()
            if str(tmp_path) in line or any(name in line for name in UNITS)]
    assert result.returncode == 0, output
    assert ours == [], "\n".join(ours)


def test_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    """The check above can fail: a misspelt key and a missing binary are reported."""
    analyze = shutil.which("systemd-analyze")
    assert analyze
    text = (SYSTEMD / "kota-ingest.service").read_text(encoding="utf-8")
    text = text.replace("NoNewPrivileges=yes", "NoNewPrivilege=yes")
    (tmp_path / "kota-ingest.service").write_text(text, encoding="utf-8")
    result = subprocess.run([analyze, "verify", "--man=no", str(tmp_path / "kota-ingest.service")],
                            capture_output=True, text=True, timeout=60, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "NoNewPrivilege" in output and INSTALLED_KOTA in output


@pytest.mark.slow
@pytest.mark.parametrize("name", SERVICES)
def test_exec_start_uses_real_subcommands_and_options(name: str) -> None:
    argv = _exec_start(name)
    assert argv[0] == INSTALLED_KOTA
    # The subcommand is what comes before the first option (a template's %i is an option's value).
    words = list(itertools.takewhile(lambda a: not a.startswith("-"), argv[1:]))
    options = [a.split("=", 1)[0] for a in argv[1:] if a.startswith("--")]
    assert words, f"{name}: ExecStart names no subcommand"
    help_text = subprocess.run([str(KOTA), *words, "--help"], capture_output=True, text=True,
                               timeout=60, check=True).stdout
    assert help_text.startswith(f"Usage: kota {' '.join(words)}")
    for option in options:
        assert re.search(rf"(^|\s){re.escape(option)}\b", help_text), \
            f"{name}: {option} not in `kota {' '.join(words)} --help`"


@pytest.mark.parametrize("name", SERVICES)
def test_service_settings(name: str) -> None:
    unit = _unit(name)
    service = unit["Service"]
    assert service["User"] == "kota" and service["Group"] == "kota"
    assert service["Environment"] == "KOTA_CONFIG=/etc/kota/kota.yaml"
    assert service["EnvironmentFile"] == "-/etc/kota/kota.env"
    assert service["StateDirectory"] == "kota"
    assert service["WorkingDirectory"] == "/var/lib/kota"
    assert service["Restart"] == "on-failure"
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict",
                       "ProtectHome": "yes", "PrivateTmp": "yes"}.items():
        assert service[key] == value, key
    after = unit["Unit"]["After"].split()
    assert "network-online.target" in after and "influxdb.service" in after
    assert "network-online.target" in unit["Unit"]["Wants"].split()
    assert unit["Unit"]["PartOf"] == "kota.target"
    assert unit["Install"]["WantedBy"] == "kota.target"


def test_ingest_has_time_to_flush_and_may_write_its_state() -> None:
    unit = _unit("kota-ingest.service")
    assert "mosquitto.service" in unit["Unit"]["After"].split()
    assert int(unit["Service"]["TimeoutStopSec"]) >= 90
    assert unit["Service"]["ReadWritePaths"] == "/var/lib/kota"
    config = (SYSTEMD / "kota.yaml").read_text(encoding="utf-8")
    assert "dir: /var/lib/kota/ingest/buffer" in config
    assert "dir: /var/lib/kota/ingest/deadletter" in config


def test_alerts_reads_the_stream_and_shares_the_apis_database() -> None:
    """kota-alerts starts after the broker (its own persistent session, login kota-alerts
    with the password from kota.env) and keeps its state in the API's database, which only
    the API migrates."""
    unit = _unit("kota-alerts.service")
    assert "mosquitto.service" in unit["Unit"]["After"].split()
    assert unit["Service"]["ReadWritePaths"] == "/var/lib/kota"
    config = yaml.safe_load((SYSTEMD / "kota.yaml").read_text(encoding="utf-8"))
    alerts, api = config["alerts"], config["api"]
    assert alerts["mqtt"]["username"] == alerts["mqtt"]["client_id"] == "kota-alerts"
    assert alerts["database"]["url"] == api.get("database", {}).get("url", DEFAULT_URL)
    assert alerts["database"]["migrate_on_start"] is False
    env = (SYSTEMD / "kota.env.example").read_text(encoding="utf-8")
    values = dict(line.split("=", 1) for line in env.splitlines()
                  if line and not line.startswith("#"))
    # The broker's password file and the service's login: the same value.
    assert values["MOSQUITTO_ALERTS_PASSWORD"] == values["KOTA_ALERTS__MQTT__PASSWORD"]
    assert "change-me" in values["KOTA_ALERTS__MQTT__PASSWORD"]


def _env_example() -> dict[str, str]:
    text = (SYSTEMD / "kota.env.example").read_text(encoding="utf-8")
    return dict(line.split("=", 1) for line in text.splitlines()
                if line and not line.startswith("#"))


def test_alerts_mqtt_channel_has_its_own_account() -> None:
    """The channel publishes with kota-alerts-publisher: the broker binds client ids to user
    names, so sharing kota-alerts with the stream would take over the stream's session."""
    config = yaml.safe_load((SYSTEMD / "kota.yaml").read_text(encoding="utf-8"))
    alerts = config["alerts"]
    (channel,) = [c for c in alerts["channels"] if c["type"] == "mqtt"]
    broker = channel["broker"]
    assert broker["username"] == broker["client_id"] == "kota-alerts-publisher"
    assert broker["username"] != alerts["mqtt"]["username"]
    assert (broker["host"], broker["port"]) == ("127.0.0.1", 1883)
    # install.sh --secrets writes that file from kota.env.
    assert broker["password_file"] == PUBLISHER_PASSWORD_FILE
    script = (SYSTEMD / "install.sh").read_text(encoding="utf-8")
    assert f"ALERTS_PUBLISHER_PASSWORD_FILE={PUBLISHER_PASSWORD_FILE}" in script
    assert "change-me" in _env_example()["MOSQUITTO_ALERTS_PUBLISHER_PASSWORD"]


def test_api_provisions_as_kota_provisioner() -> None:
    config = yaml.safe_load((SYSTEMD / "kota.yaml").read_text(encoding="utf-8"))
    provisioning = config["api"]["provisioning"]
    assert provisioning["broker"]["username"] == "kota-provisioner"
    assert (provisioning["broker"]["host"], provisioning["broker"]["port"]) == ("127.0.0.1", 1883)
    assert provisioning["device_port"] == 8883 and provisioning["device_tls"] is True
    values = _env_example()
    # The plugin's seed (make-secrets.sh) and the API's login: the same value.
    assert values["MOSQUITTO_PROVISIONER_PASSWORD"] == values[
        "KOTA_API__PROVISIONING__BROKER__PASSWORD"]


def _options(path: Path) -> list[tuple[str, str]]:
    return [(line.split(" ", 1)[0], line.split(" ", 1)[1].strip())
            for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")]


def test_broker_conf_has_the_docker_security_settings_and_the_plugin() -> None:
    """The systemd broker enforces what the Docker one does, the plugin included."""
    ours, docker = _options(BROKER_CONF), _options(MOSQUITTO_CONF)
    for key in ("allow_anonymous", "use_username_as_clientid", "tls_version",
                "max_queued_messages", "max_queued_bytes", "persistent_client_expiration",
                "message_size_limit"):
        assert [v for k, v in ours if k == key] == [v for k, v in docker if k == key], key
    values = dict(ours)
    assert values["plugin"].endswith("/mosquitto_dynamic_security.so")
    assert values["plugin_opt_config_file"] == DYNSEC_FILE
    for key in ("password_file", "acl_file", "cafile", "certfile", "keyfile"):
        assert values[key].startswith(SECRETS_DIR + "/"), key


def test_install_secrets_seeds_the_plugin_once_and_sets_its_path() -> None:
    out = subprocess.run([str(SYSTEMD / "install.sh"), "--secrets", "--dry-run"],
                         capture_output=True, text=True, check=True, timeout=30).stdout
    commands = [shlex.split(line[2:]) for line in out.splitlines() if line.startswith("+ ")]
    # The seed goes through deploy/mosquitto/start.sh: copied only when no live file is there.
    (seed,) = [c for c in commands if c[-2:] == [str(ROOT / "deploy/mosquitto/start.sh"), "true"]]
    assert "KOTA_DYNSEC_SEED=/etc/kota/mosquitto/broker/dynamic-security.json" in seed
    assert f"KOTA_DYNSEC_FILE={DYNSEC_FILE}" in seed
    install = commands.index(["install", "-m", "0644", str(BROKER_CONF),
                              "/etc/mosquitto/conf.d/kota.conf"])
    sed = commands[install + 1]
    assert sed[:2] == ["sed", "-i"] and sed[-1] == "/etc/mosquitto/conf.d/kota.conf"
    plugin = sed[2].split("|")[2].removeprefix("plugin ")
    assert plugin.endswith("/mosquitto_dynamic_security.so")
    if Path(DYNSEC_PLUGIN).exists():  # this machine's, found by install.sh
        assert plugin == DYNSEC_PLUGIN
    # The sed expression rewrites the conf's plugin line and nothing else.
    edited = subprocess.run(["sed", sed[2], str(BROKER_CONF)], capture_output=True, text=True,
                            check=True, timeout=10).stdout
    assert [line for line in edited.splitlines() if line.startswith("plugin ")] == [
        f"plugin {plugin}"]
    assert len(edited.splitlines()) == len(BROKER_CONF.read_text().splitlines())


def _systemd_conf(port: int, tls_port: int, secrets: Path, data: Path) -> str:
    """mosquitto-kota.conf with its ports and paths moved, plus what Debian's main
    mosquitto.conf adds (persistence in its data folder)."""
    lines, moved = [], []
    ports = {"1883 127.0.0.1": port, "8883": tls_port}
    for line in BROKER_CONF.read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition(" ")
        if key == "listener":
            line = f"listener {ports.pop(value)} 127.0.0.1"
        elif key == "plugin":
            line = f"plugin {value if Path(value).exists() else DYNSEC_PLUGIN}"
        elif value == DYNSEC_FILE:
            line = f"{key} {data / Path(DYNSEC_FILE).name}"
        elif value.startswith(SECRETS_DIR + "/"):
            line = f"{key} {secrets / value.removeprefix(SECRETS_DIR + '/')}"
        else:
            lines.append(line)
            continue
        moved.append(key)
        lines.append(line)
    assert not ports and "plugin" in moved and "plugin_opt_config_file" in moved, moved
    lines += ["persistence true", f"persistence_location {data}/"]
    if os.geteuid() == 0:  # as root mosquitto would switch to a user who cannot write tmp
        lines.append("user root")
    return "\n".join(lines) + "\n"


def _login(port: int, user: str | None, password: str | None) -> bool:
    """True when the broker accepts the login (bounded wait for the CONNACK)."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=user or "anonymous-test")
    if user is not None:
        client.username_pw_set(user, password)
    result: dict[str, Any] = {}
    done = threading.Event()

    def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        result["ok"] = not reason.is_failure
        done.set()

    client.on_connect = on_connect
    client.connect("127.0.0.1", port, 30)
    client.loop_start()
    try:
        assert done.wait(5.0), f"no CONNACK for {user}"
        return bool(result["ok"])
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.mark.slow
def test_broker_conf_starts_mosquitto_with_the_plugin(tmp_path: Path) -> None:
    """Debian's mosquitto with the systemd conf and make-secrets.sh's files: the provisioner
    (known to the plugin only) and kota-ingest (password file) log in, strangers do not."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.access(binary, os.X_OK):
        pytest.fail("mosquitto not installed: scripts/install-services.sh test")
    passwords = make_secrets(tmp_path / "secrets")
    secrets, data = tmp_path / "secrets" / "broker", tmp_path / "data"
    data.mkdir()
    # The seed, as install.sh --secrets copies it (deploy/mosquitto/start.sh).
    env = {**os.environ, "KOTA_DYNSEC_SEED": str(secrets / "dynamic-security.json"),
           "KOTA_DYNSEC_FILE": str(data / "dynamic-security.json")}
    subprocess.run(["sh", str(ROOT / "deploy/mosquitto/start.sh"), "true"], env=env,
                   check=True, timeout=10)
    port = free_port()
    conf = tmp_path / "kota.conf"
    conf.write_text(_systemd_conf(port, free_port(), secrets, data))
    process = start_broker(conf, port, tmp_path / "mosquitto.log", binary)
    try:
        assert _login(port, "kota-provisioner", passwords["kota-provisioner"])
        assert _login(port, "kota-ingest", passwords["kota-ingest"])
        assert not _login(port, "kota-provisioner", "wrong")
        assert not _login(port, None, None)
    finally:
        stop_broker(process)


def test_target_wants_every_service() -> None:
    target = _unit("kota.target")
    # Every service but the delivery template, which is opt-in (enabled per channel).
    assert sorted(target["Unit"]["Wants"].split()) == sorted(
        name for name in SERVICES if "@" not in name)
    assert target["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.slow
def test_sample_config_is_valid() -> None:
    result = subprocess.run([str(KOTA), "config", "check", str(SYSTEMD / "kota.yaml")],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    registry = subprocess.run([str(KOTA), "broker", "acl", "--registry",
                               str(SYSTEMD / "devices.yaml")],
                              capture_output=True, text=True, timeout=60, check=False)
    assert registry.returncode == 0, registry.stderr


def test_install_script_dry_run() -> None:
    script = SYSTEMD / "install.sh"
    subprocess.run(["bash", "-n", str(script)], check=True, timeout=30)
    assert script.stat().st_mode & 0o111, "install.sh must be executable"
    help_text = subprocess.run([str(script), "--help"], capture_output=True, text=True,
                               check=True, timeout=30).stdout
    assert "--dry-run" in help_text and "--secrets" in help_text
    out = subprocess.run([str(script), "--dry-run"], capture_output=True, text=True,
                         check=True, timeout=30).stdout
    commands = [line[2:] for line in out.splitlines() if line.startswith("+ ")]
    assert any("pip install" in c and c.endswith(r"\[server\]") for c in commands), out
    for unit in UNITS:
        assert f"install -m 0644 {SYSTEMD}/{unit} /etc/systemd/system/{unit}" in commands
    assert commands[-2:] == [
        "systemctl daemon-reload",
        "systemctl try-restart kota-ingest.service kota-indicators.service kota-api.service "
        r"kota-alerts.service kota-alerts-deliver@\*.service"]
    assert not any("enable" in c for c in commands), "install.sh must not enable services"
    # Every file it copies from the checkout exists.
    for command in commands:
        for word in shlex.split(command):
            if word.startswith(str(SYSTEMD)):
                assert Path(word).exists(), word
    secrets = subprocess.run([str(script), "--secrets", "--dry-run"], capture_output=True,
                             text=True, check=True, timeout=30).stdout
    assert "deploy/mosquitto/make-secrets.sh --env /etc/kota/kota.env" in secrets
    assert "/etc/mosquitto/conf.d/kota.conf" in secrets
    bad = subprocess.run([str(script), "--no-such-option"], capture_output=True, text=True,
                         timeout=30, check=False)
    assert bad.returncode == 2


def test_the_delivery_template_runs_one_channel_and_is_installed() -> None:
    assert _exec_start("kota-alerts-deliver@.service")[-2:] == ["--channel", "%i"]
    script = (SYSTEMD / "install.sh").read_text(encoding="utf-8")
    assert "kota-alerts-deliver@.service" in script.split("UNITS=", 1)[1].splitlines()[0]
    # Opt-in: kota.target does not pull it in by itself (in_process is true by default).
    assert "kota-alerts-deliver" not in _unit("kota.target")["Unit"]["Wants"]
