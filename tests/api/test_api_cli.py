"""``kota api``: a help that teaches, --check, a clear error for a bad registry, and a real run
(uvicorn on a loopback port, stopped with SIGTERM)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from api.cli import api
from devstack.localstack import LocalService, free_port


def test_help_teaches() -> None:
    result = CliRunner().invoke(api, ["--help"])
    assert result.exit_code == 0
    for text in ("http://127.0.0.1:8000/docs", "KOTA_API__INFLUX__URL", "api.page.tile_url",
                 "--registry", "Examples:"):
        assert text in result.output


def test_check_prints_settings_from_file_and_environment(tmp_path: Path) -> None:
    config = tmp_path / "kota.yaml"
    config.write_text("api:\n  port: 8123\n  page:\n    title: Kota Uji\n", encoding="utf-8")
    result = CliRunner().invoke(api, ["--config", str(config), "--check"],
                                env={"KOTA_API__INFLUX__DATABASE": "uji"})
    assert result.exit_code == 0, result.output
    assert "port: 8123" in result.output and "database: uji" in result.output
    assert "title: Kota Uji" in result.output and "api settings OK" in result.output


def test_bad_settings_and_registry_are_clear_errors(tmp_path: Path) -> None:
    config = tmp_path / "kota.yaml"
    config.write_text("api:\n  port: 0\n", encoding="utf-8")
    result = CliRunner().invoke(api, ["--config", str(config), "--check"])
    assert result.exit_code == 2 and "api.port" in result.output
    registry = tmp_path / "registry.yaml"
    registry.write_text("devices:\n  - {device_id: 'bad id', kind: air}\n", encoding="utf-8")
    result = CliRunner().invoke(api, ["--config", str(tmp_path / "none.yaml"), "--check"])
    assert result.exit_code == 2 and "none.yaml" in result.output
    result = CliRunner().invoke(api, ["--registry", str(registry), "--check"], env={})
    assert result.exit_code == 2 and "registry.yaml" in result.output


@pytest.mark.slow
def test_kota_api_serves_until_sigterm(influxdb: LocalService, database: str,
                                       tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOTA_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "kota", "api", "--port", str(port), "--influx-url",
         f"http://127.0.0.1:{influxdb.port}", "--database", database],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        ready = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert ready is not None, "kota api did not answer"
        assert ready.status_code == 200 and ready.json()["database"] == database
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
        assert "Kota Cerdas" in page.text
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            output = process.communicate(timeout=15)[0].decode()
        except subprocess.TimeoutExpired:
            process.kill()
            output = process.communicate(timeout=5)[0].decode()
    # uvicorn shuts down cleanly, then re-raises the signal it caught (so -SIGTERM is normal).
    assert process.returncode in (0, -signal.SIGTERM), output
    assert "Finished server process" in output
    assert f"http://127.0.0.1:{port}/" in output
