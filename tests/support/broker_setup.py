"""The broker set-up of deploy/ for tests: make-secrets.sh, the deploy mosquitto.conf moved to
test ports, a broker started and stopped by PID."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.localstack import wait_for_listener, wait_for_port

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
MOSQUITTO_CONF = REPO / "deploy" / "mosquitto" / "mosquitto.conf"
MAKE_SECRETS = REPO / "deploy" / "mosquitto" / "make-secrets.sh"
SECRETS_TARGET = "/mosquitto/secrets"  # where docker-compose.yml mounts the broker secrets
DATA_TARGET = "/mosquitto/data"  # docker-compose.yml's volume mosquitto-data
# Debian's copy of the dynamic security plugin (the conf names the eclipse-mosquitto image's).
DYNSEC_PLUGIN = next(iter(sorted(glob.glob("/usr/lib/*/mosquitto_dynamic_security.so"))),
                     "/usr/lib/mosquitto_dynamic_security.so")


# Service passwords for the brokers the tests start (not secrets: test-only values).
TEST_PASSWORDS = {"kota-ingest": "ingest-test-pw", "kota-healthcheck": "health-test-pw",
                  "kota-simulator": "simulator-test-pw", "kota-provisioner": "provisioner-test-pw"}


def make_secrets(out: Path, registry: Path | None = None, agents: tuple[str, ...] = (),
                 tls_names: str = "") -> dict[str, str]:
    """Run deploy/mosquitto/make-secrets.sh into ``out``; returns every account's password."""
    env_file = out.parent / f"{out.name}.env"
    env_file.write_text(f"MOSQUITTO_INGEST_PASSWORD={TEST_PASSWORDS['kota-ingest']}\n"
                        f"MOSQUITTO_HEALTHCHECK_PASSWORD={TEST_PASSWORDS['kota-healthcheck']}\n"
                        f"MOSQUITTO_SIMULATOR_PASSWORD={TEST_PASSWORDS['kota-simulator']}\n"
                        f"MOSQUITTO_PROVISIONER_PASSWORD={TEST_PASSWORDS['kota-provisioner']}\n"
                        f"MOSQUITTO_TLS_NAMES={tls_names}\n")
    args = [str(MAKE_SECRETS), "--env", str(env_file), "--out", str(out)]
    if registry is not None:
        args += ["--registry", str(registry)]
    for agent in agents:
        args += ["--agent", agent]
    env = {**os.environ, "KOTA_BROKER": f"{sys.executable} -m kota.broker_cli"}
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, f"make-secrets.sh failed:\n{result.stderr}"
    devices = dict(line.split(":", 1) for line in
                   (out / "device-passwords.txt").read_text().splitlines())
    return {**TEST_PASSWORDS, **devices}


def local_conf(port: int, data_dir: Path, tls_port: int, secrets_dir: Path) -> str:
    """The deploy config with only the listener ports, file paths and (as root) run-as user moved.

    ``secrets_dir`` is the folder docker-compose.yml mounts at /mosquitto/secrets. As
    docker-compose.yml does, the dynamic-security seed is copied into the data folder when
    that has none yet.
    """
    lines, moved = [], []
    ports = {"1883": port, "8883": tls_port}
    for line in MOSQUITTO_CONF.read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition(" ")
        if key == "listener":
            line = f"listener {ports.pop(value)} 127.0.0.1"
        elif key == "persistence_location":
            line = f"persistence_location {data_dir}/"
        elif key == "plugin":
            line = f"plugin {DYNSEC_PLUGIN}"
        elif value.startswith(DATA_TARGET + "/"):
            line = f"{key} {data_dir}/{value.removeprefix(DATA_TARGET + '/')}"
        elif value.startswith(SECRETS_TARGET + "/"):
            line = f"{key} {secrets_dir}/{value.removeprefix(SECRETS_TARGET + '/')}"
        else:
            lines.append(line)
            continue
        moved.append(key)
        lines.append(line)
    assert not ports and sorted(moved) == sorted(
        ["listener", "listener", "persistence_location", "cafile", "certfile", "keyfile",
         "password_file", "acl_file", "plugin", "plugin_opt_config_file"]), moved
    seed, live = secrets_dir / "dynamic-security.json", data_dir / "dynamic-security.json"
    if seed.exists() and not live.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(seed, live)
    if os.geteuid() == 0:  # as root mosquitto would switch to a user who cannot write tmp
        lines.append("user root")
    return "\n".join(lines) + "\n"


def start_broker(conf: Path, port: int, log: Path, binary: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        process = subprocess.Popen([binary, "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for_port(port, 10.0, process)
        # Our broker's own listener: another server on a port taken under us answers too.
        wait_for_listener(process, [port], 10.0)
    except (RuntimeError, TimeoutError) as exc:
        stop_broker(process)
        pytest.fail(f"mosquitto -c {conf} did not start: {exc}\n{log.read_text()[-2000:]}")
    return process


def stop_broker(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)  # by PID: mosquitto saves its database on SIGTERM
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
