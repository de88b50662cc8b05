"""``kota alerts`` as a real subprocess with its own kota.yaml (tests of the whole service)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from kota_testing import wait_until

from kota.registry import Registry

REPO = Path(__file__).resolve().parents[2]
REGISTRY = REPO / "simulators" / "cities" / "jakarta" / "devices.yaml"


def quick_rules(path: Path, **changes: dict[str, Any]) -> Path:
    """The shipped Jakarta rules with test timings (seconds, not hours); ``changes`` by rule id
    are merged into that rule."""
    document = yaml.safe_load((REPO / "alerts" / "rules" / "jakarta.yaml").read_text())
    for rule in document["rules"]:
        rule.update({"clear_after_s": 1, "repeat_s": None} if "clear_after_s" in rule
                    or rule["kind"] in ("siaga", "upstream") else {})
        rule.update(changes.get(rule["id"], {}))
    path.write_text(yaml.safe_dump(document, allow_unicode=True))
    return path


class AlertsProcess:
    def __init__(self, workdir: Path, *, mqtt_port: int, influx_port: int, database: str,
                 database_url: str, channels: list[dict[str, Any]],
                 rules_file: Path | None = None, client_id: str = "kota-alerts-test",
                 **settings: Any) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        alerts: dict[str, Any] = {
            "registry_file": str(REGISTRY),
            "rules_file": str(rules_file or quick_rules(workdir / "rules.yaml")),
            "rules_reload_s": 0.5,
            "database": {"url": database_url},
            "mqtt": {"port": mqtt_port, "client_id": client_id, "keepalive_s": 5},
            "influx": {"url": f"http://127.0.0.1:{influx_port}", "database": database},
            "tick_interval_s": 0.5,
            "poll_interval_s": 1,
            "metrics_port": 0,
            "channels": channels,
            "outbox": {"poll_interval_s": 0.2, "backoff_initial_s": 0.2,
                       "backoff_max_s": 1.0},
            **settings,
        }
        self.config = workdir / "kota.yaml"
        self.config.write_text(yaml.safe_dump({"alerts": alerts}, allow_unicode=True))
        self.log_path = workdir / "alerts.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> AlertsProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kota", "alerts", "--config", str(self.config)],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir, env=dict(os.environ))
        log.close()
        try:
            # 60 s: a loaded 2-core machine has taken over 30 s to import and connect.
            wait_until(lambda: "connected to MQTT" in self.log() or self.process is None
                       or self.process.poll() is not None, 60, "kota alerts connected")
            assert self.process.poll() is None, self.log()
        except BaseException:
            self.stop()   # a start that failed leaves no process behind
            raise
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no clean shutdown at all."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        code = self.process.returncode
        self.process = None
        return code


def device(device_id: str) -> Any:
    found = Registry.load(REGISTRY).get(device_id)
    assert found is not None
    return found
