"""devstack.localstack never leaves a broker or database behind, even on Ctrl-C during start-up,
and a service whose free port was taken before it bound it starts on another."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


@contextlib.contextmanager
def _taken_port() -> Iterator[int]:
    """A port another process could have taken between free_port() and the service's bind: a
    socket listening on it (connections to it succeed, as to a real server)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield int(taken.getsockname()[1])


def _free_ports_starting_with(monkeypatch: pytest.MonkeyPatch, *first: int) -> None:
    """free_port() hands out ``first`` (in order), then real free ports."""
    queued = list(first)
    real_free_port = localstack.free_port
    monkeypatch.setattr(localstack, "free_port",
                        lambda: queued.pop(0) if queued else real_free_port())


@pytest.mark.parametrize("start", [
    pytest.param(localstack.start_mosquitto, id="mosquitto"),
    pytest.param(localstack.start_postgres, id="postgres", marks=pytest.mark.slow),
])
def test_a_service_whose_port_was_taken_starts_on_another(
        start: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with _taken_port() as taken:
        _free_ports_starting_with(monkeypatch, taken)
        service = start(tmp_path / "service")
        try:
            assert service.port != taken
            assert service.process is not None
            assert localstack._listens(service.process.pid, service.port) is True
            assert localstack._listens(service.process.pid, taken) is False
            # The first attempt really met the taken port (its bind failed, it exited).
            assert "address already in use" in service.log_path.read_text().lower()
        finally:
            service.stop()


def test_influxdb_whose_rpc_port_was_taken_starts_on_others(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    """The top-level bind-address (RPC) is a second port each influxd must have of its own."""
    with _taken_port() as taken:
        http_port = localstack.free_port()
        _free_ports_starting_with(monkeypatch, http_port, taken)
        service = localstack.start_influxdb(tmp_path / "influxdb")
        try:
            assert service.extra_ports["rpc"] != taken
            assert service.process is not None
            assert all(localstack._listens(service.process.pid, port) for port in service.ports)
            assert "address already in use" in service.log_path.read_text().lower()
        finally:
            service.stop()




def test_a_taken_port_the_caller_chose_is_refused_not_answered_by_another(tmp_path: Path) -> None:
    """The other server on the port answers connections: the start must still fail (the old
    check, a connection to the port, took it for our broker)."""
    with _taken_port() as taken:
        started = time.monotonic()
        with pytest.raises(localstack.PortInUse, match="did not start"):
            localstack.start_mosquitto(tmp_path / "mosquitto", taken)
        assert time.monotonic() - started < 10
    assert "address already in use" in (tmp_path / "mosquitto" / "mosquitto.log").read_text(
        ).lower()
