"""devstack.localstack never leaves a broker or database behind, even on Ctrl-C during start-up."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import devstack.localstack as localstack


def test_ctrl_c_while_waiting_for_the_broker_stops_it(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[subprocess.Popen[bytes]] = []
    real_wait = localstack.wait_for_port

    def interrupted(port: int, timeout_s: float, process: subprocess.Popen[bytes] | None = None,
                    host: str = "127.0.0.1") -> None:
        real_wait(port, timeout_s, process, host)  # the real broker is up ...
        assert process is not None
        started.append(process)
        raise KeyboardInterrupt  # ... when the user presses Ctrl-C

    monkeypatch.setattr(localstack, "wait_for_port", interrupted)
    with pytest.raises(KeyboardInterrupt):
        localstack.start_mosquitto(tmp_path / "mosquitto")
    assert len(started) == 1
    assert started[0].poll() is not None, "the broker was left running"


def test_ctrl_c_while_waiting_for_influxdb_stops_it(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(port: int, timeout_s: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(localstack, "_wait_influx_ready", interrupted)
    processes: list[subprocess.Popen[bytes]] = []
    real_start = localstack.LocalService.start

    def start(self: localstack.LocalService, timeout_s: float = 30.0) -> localstack.LocalService:
        started = real_start(self, timeout_s)
        assert self.process is not None
        processes.append(self.process)
        return started

    monkeypatch.setattr(localstack.LocalService, "start", start)
    with pytest.raises(KeyboardInterrupt):
        localstack.start_influxdb(tmp_path / "influxdb")
    assert len(processes) == 1
    assert processes[0].poll() is not None, "influxd was left running"
