"""deploy/systemd: the units pass `systemd-analyze verify`, run real commands, and install.sh works.

systemd-analyze (Debian package systemd) verifies copies of the units whose ExecStart points at
this venv's `kota` (it checks that the binary exists). Nothing is installed or started.
"""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kota_testing import REPO as REPO_ROOT

from store.settings import DEFAULT_URL

ROOT = REPO_ROOT
SYSTEMD = ROOT / "deploy" / "systemd"
INSTALLED_KOTA = "/opt/kota/venv/bin/kota"
KOTA = Path(sys.executable).parent / "kota"
SERVICES = ["kota-ingest.service", "kota-indicators.service", "kota-api.service",
            "kota-alerts.service"]
UNITS = [*SERVICES, "kota.target"]


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
    words = [a for a in argv[1:] if not a.startswith("-")]
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


def test_target_wants_every_service() -> None:
    target = _unit("kota.target")
    assert sorted(target["Unit"]["Wants"].split()) == sorted(SERVICES)
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
        "kota-alerts.service"]
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
