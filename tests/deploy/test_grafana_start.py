"""deploy/grafana/start.sh, Grafana's entrypoint in docker-compose.yml, run for real with sh.

A stand-in for the image's /run.sh (GRAFANA_RUN) records that it was started and with what.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "deploy" / "grafana" / "start.sh"
GOOD = {"GF_SECURITY_ADMIN_PASSWORD": "a-real-admin-password",
        "KOTA_GRAFANA_INFLUX_PASSWORD": "a-real-influx-password"}


def start(tmp_path: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], Path]:
    started = tmp_path / "started"
    run = tmp_path / "run.sh"
    run.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {started}\n')
    run.chmod(0o755)
    result = subprocess.run(["sh", str(SCRIPT), "--extra-arg"],
                            env={"PATH": os.environ["PATH"], "GRAFANA_RUN": str(run), **env},
                            capture_output=True, text=True, timeout=10, check=False)
    return result, started


def test_real_passwords_hand_over_to_grafana(tmp_path: Path) -> None:
    result, started = start(tmp_path, GOOD)
    assert result.returncode == 0, result.stderr
    assert started.read_text() == "--extra-arg\n"  # exec'd with the arguments


@pytest.mark.parametrize(("variable", "value", "named"), [
    ("GF_SECURITY_ADMIN_PASSWORD", "change-me-grafana-password", "GRAFANA_ADMIN_PASSWORD"),
    ("GF_SECURITY_ADMIN_PASSWORD", "", "GRAFANA_ADMIN_PASSWORD"),
    ("KOTA_GRAFANA_INFLUX_PASSWORD", "change-me-influxdb-grafana-password",
     "INFLUXDB_GRAFANA_PASSWORD"),
])
def test_placeholders_stop_grafana(tmp_path: Path, variable: str, value: str,
                                   named: str) -> None:
    result, started = start(tmp_path, {**GOOD, variable: value})
    assert result.returncode == 1 and not started.exists()
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1 and named in message, message


def test_env_example_placeholder_is_refused(tmp_path: Path) -> None:
    """The very value .env.example ships is among those refused."""
    example = dict(line.split("=", 1) for line in (REPO / ".env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    result, started = start(tmp_path, {**GOOD,
                                       "GF_SECURITY_ADMIN_PASSWORD":
                                           example["GRAFANA_ADMIN_PASSWORD"]})
    assert result.returncode == 1 and not started.exists()
