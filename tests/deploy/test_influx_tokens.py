"""deploy/influxdb/init/20-kota-tokens.sh, run for real with a stand-in ``influx`` command.

The stand-in records each call's arguments; the tests assert the exact rights each service's v1
authorization gets on the bucket, and that bad passwords stop the script before it creates any.
tests/deploy/test_compose.py checks that each service's own environment uses these accounts.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "deploy" / "influxdb" / "init" / "20-kota-tokens.sh"
BUCKET_ID = "0a1b2c3d4e5f"
PASSWORDS = {"INFLUXDB_INGEST_PASSWORD": "ingest-pw-0123456789",
             "INFLUXDB_INDICATORS_PASSWORD": "indicators-pw-0123456789",
             "INFLUXDB_API_PASSWORD": "api-pw-0123456789",
             "INFLUXDB_GRAFANA_PASSWORD": "grafana-pw-0123456789",
             "INFLUXDB_ALERTS_PASSWORD": "alerts-pw-0123456789"}
# user -> (password variable, read, write): least privilege (issue 10)
EXPECTED = {"kota-ingest": ("INFLUXDB_INGEST_PASSWORD", False, True),
            "kota-indicators": ("INFLUXDB_INDICATORS_PASSWORD", True, True),
            "kota-api": ("INFLUXDB_API_PASSWORD", True, False),
            "kota-grafana": ("INFLUXDB_GRAFANA_PASSWORD", True, False),
            "kota-alerts": ("INFLUXDB_ALERTS_PASSWORD", True, True)}


@pytest.fixture
def influx_env(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "influx"
    # One line per argument, "--" after each call.
    shim.write_text(f'#!/bin/bash\nprintf "%s\\n" "$@" -- >> {tmp_path / "calls"}\n'
                    'exit "${FAKE_INFLUX_EXIT:-0}"\n')
    shim.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}", "DOCKER_INFLUXDB_INIT_ORG": "kota",
            "DOCKER_INFLUXDB_INIT_BUCKET": "kota", "DOCKER_INFLUXDB_INIT_BUCKET_ID": BUCKET_ID,
            "DOCKER_INFLUXDB_INIT_PASSWORD": "admin-pw-0123456789",
            "DOCKER_INFLUXDB_INIT_ADMIN_TOKEN": "operator-token-0123456789", **PASSWORDS,
            "CALLS": str(tmp_path / "calls")}


def run(env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    result = subprocess.run([str(SCRIPT)], env=env, capture_output=True, text=True, timeout=10,
                            check=False)
    calls, current = [], []
    calls_file = Path(env["CALLS"])
    for line in calls_file.read_text().splitlines() if calls_file.exists() else []:
        if line == "--":
            calls.append(current)
            current = []
        else:
            current.append(line)
    return result, calls


def test_each_service_gets_exactly_its_rights(influx_env: dict[str, str]) -> None:
    result, calls = run(influx_env)
    assert result.returncode == 0, result.stderr
    assert len(calls) == len(EXPECTED)
    seen = set()
    for call in calls:
        assert call[:3] == ["v1", "auth", "create"], call
        options = call[3:]
        pairs = list(zip(options[::2], options[1::2], strict=True))  # every flag has a value
        values = dict(pairs)
        user = values["--username"]
        variable, read, write = EXPECTED[user]
        assert values["--password"] == PASSWORDS[variable], user
        assert values["--org"] == "kota"
        rights = sorted(flag for flag, value in pairs if flag.endswith("-bucket"))
        assert rights == sorted((["--read-bucket"] if read else []) +
                                (["--write-bucket"] if write else [])), user
        assert all(value == BUCKET_ID for flag, value in pairs if flag.endswith("-bucket"))
        # Nothing wider: no all-access, operator or org-wide flags.
        assert {flag for flag, _ in pairs} <= {"--org", "--username", "--password",
                                              "--read-bucket", "--write-bucket",
                                              "--description"}, user
        seen.add(user)
    assert seen == set(EXPECTED)
    assert "kota-ingest' may write bucket" in result.stdout


@pytest.mark.parametrize(("variable", "value", "says"), [
    ("INFLUXDB_API_PASSWORD", "change-me-influxdb-api-password", "change-me placeholder"),
    ("INFLUXDB_INGEST_PASSWORD", "", "is empty"),
    ("INFLUXDB_GRAFANA_PASSWORD", "pw-7x9q", "shorter than 16"),
    ("DOCKER_INFLUXDB_INIT_ADMIN_TOKEN", "change-me-influxdb-operator-token", "change-me"),
    ("DOCKER_INFLUXDB_INIT_PASSWORD", "change-me-admin-password", "change-me"),
])
def test_bad_passwords_stop_it_before_anything_is_created(
        influx_env: dict[str, str], variable: str, value: str, says: str) -> None:
    result, calls = run({**influx_env, variable: value})
    assert result.returncode != 0 and calls == []
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1 and variable in message and says in message, message
    assert value not in message or not value  # a password is never printed


def test_a_failing_influx_stops_the_container(influx_env: dict[str, str]) -> None:
    result, calls = run({**influx_env, "FAKE_INFLUX_EXIT": "1"})
    assert result.returncode != 0 and len(calls) == 1
    without_bucket = {k: v for k, v in influx_env.items()
                      if k != "DOCKER_INFLUXDB_INIT_BUCKET_ID"}
    result, _ = run(without_bucket)
    assert result.returncode != 0 and "DOCKER_INFLUXDB_INIT_BUCKET_ID" in result.stderr
