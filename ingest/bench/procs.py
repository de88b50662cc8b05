"""Processes and facts the benchmark reads: ``kota ingest`` as a subprocess, peak memory from
/proc, InfluxDB point counts, and the machine it ran on.

Only processes started here are signalled, always by PID.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from devstack.localstack import free_port, stop_process

__all__ = [
    "InfluxCounter",
    "IngestRunner",
    "child_pids",
    "cpu_seconds",
    "machine_busy_cpu_s",
    "machine_facts",
    "own_cpu_s",
    "peak_rss_kb",
]


def peak_rss_kb(pid: int) -> int | None:
    """VmHWM (peak resident set) of a live process, in KiB; None once it has gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def child_pids(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc/*/stat), e.g. the workers of ``--workers``."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces; ppid is the 2nd field after.
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 1 and fields[1] == str(pid):
            children.append(int(entry.name))
    return sorted(children)


class IngestRunner:
    """``python -m kota ingest [--workers W]`` configured by KOTA_INGEST__* variables."""

    def __init__(self, workdir: Path, mqtt_port: int, influx_port: int, database: str,
                 workers: int = 1, **settings: str) -> None:
        self.workdir, self.workers = workdir, workers
        self.metrics_port = free_port()
        if workers > 1:  # worker n serves metrics on metrics_port + n - 1; find a free run
            while not all(_port_free(self.metrics_port + n) for n in range(workers)):
                self.metrics_port = free_port()
        self.env = dict(os.environ)
        self.env.update({
            "KOTA_INGEST__MQTT__HOST": "127.0.0.1",
            "KOTA_INGEST__MQTT__PORT": str(mqtt_port),
            "KOTA_INGEST__INFLUX__URL": f"http://127.0.0.1:{influx_port}",
            "KOTA_INGEST__INFLUX__DATABASE": database,
            "KOTA_INGEST__BUFFER__DIR": str(workdir / "buffer"),
            "KOTA_INGEST__DEADLETTER__DIR": str(workdir / "deadletter"),
            "KOTA_INGEST__METRICS_PORT": str(self.metrics_port),
            "KOTA_INGEST__MQTT__CLIENT_ID": "kota-bench-ingest",
            # JSON lines carry millisecond timestamps: see ready_time().
            "KOTA_INGEST__LOG_FORMAT": "json",
        })
        self.env.pop("KOTA_CONFIG", None)
        for key, value in settings.items():
            self.env[f"KOTA_INGEST__{key.upper()}"] = value
        self.log_path = workdir / "ingest.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.worker_pids: list[int] = []
        self._log_offset = 0
        # One client for all scrapes: a new one per request costs milliseconds of CPU (TLS
        # context) on a machine the benchmark shares with what it measures.
        self._http = httpx.Client(timeout=2)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self, connect_timeout_s: float = 30.0, wait: bool = True) -> IngestRunner:
        """Start ingest; with ``wait``, until every process reports MQTT connected (bounded)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self._log_offset = log.tell()
        command = [sys.executable, "-m", "kota", "ingest"]
        if self.workers > 1:
            command += ["--workers", str(self.workers)]
        self.process = subprocess.Popen(command, env=self.env, stdout=log,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        cwd=self.workdir)
        log.close()
        if not wait:
            return self
        deadline = time.monotonic() + connect_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ingest exited with {self.process.returncode}; log "
                                   f"{self.log_path}:\n{self.log_tail()}")
            if all(self.metric("kota_ingest_mqtt_connected", n) == 1.0
                   for n in range(self.workers)):
                self.find_workers()
                return self
            time.sleep(0.05)
        raise TimeoutError(f"ingest did not connect within {connect_timeout_s:.0f} s; log "
                           f"{self.log_path}:\n{self.log_tail()}")

    def ready_time(self) -> float | None:
        """Epoch time of this start's first JSON log line (ingest logs it once its imports
        and set-up are done, before connecting to MQTT); the earliest of the workers'."""
        if not self.log_path.exists():
            return None
        with self.log_path.open("rb") as handle:
            handle.seek(self._log_offset)
            text = handle.read(1_000_000).decode("utf-8", "replace")
        times = []
        for line in text.splitlines():
            if not line.startswith("{"):
                continue
            try:
                stamp = json.loads(line)["ts"]
                times.append(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())
            except (ValueError, KeyError, TypeError):
                continue
        return min(times) if times else None

    def client_ids(self) -> list[str]:
        """MQTT client ids of ingest's sessions (kota ingest --workers appends -1, -2, ...)."""
        base = self.env["KOTA_INGEST__MQTT__CLIENT_ID"]
        if self.workers == 1:
            return [base]
        return [f"{base}-{number}" for number in range(1, self.workers + 1)]

    def find_workers(self) -> list[int]:
        """With --workers, the worker processes the launcher started (read from /proc)."""
        if self.workers > 1 and self.process is not None and not self.worker_pids:
            self.worker_pids = child_pids(self.process.pid)
        return self.worker_pids

    def exited(self) -> int | None:
        """The exit code if ingest has exited, else None."""
        return self.process.poll() if self.process is not None else None

    def metric(self, name: str, worker: int = 0) -> float | None:
        """A value from ingest's /metrics (worker 0 is the first), None if unreachable."""
        try:
            text = self._http.get(
                f"http://127.0.0.1:{self.metrics_port + worker}/metrics").text
        except httpx.HTTPError:
            return None
        for line in text.splitlines():
            if line.startswith((name + " ", name + "_total ")):
                return float(line.split()[-1])
        return None

    def metric_sum(self, name: str) -> float:
        return sum(self.metric(name, n) or 0.0 for n in range(self.workers))

    def peak_rss_kb(self) -> dict[str, int]:
        """VmHWM of the ingest process and of each worker it started (while they run)."""
        peaks: dict[str, int] = {}
        if self.process is not None:
            own = peak_rss_kb(self.process.pid)
            if own is not None:
                peaks["main" if self.workers == 1 else "launcher"] = own
        for number, pid in enumerate(self.worker_pids, 1):
            value = peak_rss_kb(pid)
            if value is not None:
                peaks[f"worker{number}"] = value
        return peaks

    def pids(self) -> list[int]:
        return ([self.process.pid] if self.process else []) + self.worker_pids

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM (the launcher forwards it to its workers); SIGKILL after ``timeout_s``."""
        process, self.process = self.process, None
        if process is None:
            return None
        stop_process(process, timeout_s)
        for pid in self.worker_pids:  # workers left behind by a killed launcher
            if _is_ingest(pid):
                with contextlib.suppress(ProcessLookupError):  # it exited meanwhile
                    os.kill(pid, signal.SIGKILL)
        self.worker_pids = []
        return process.returncode

    def log_tail(self, chars: int = 3000) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-chars:]


def _is_ingest(pid: int) -> bool:
    # A worker outlives a killed launcher and is re-parented: recognise it by its command line.
    try:
        return b"ingest" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time a live process has used so far."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _port_free(port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class InfluxCounter:
    """Counts points per measurement with InfluxQL over HTTP (one request for all)."""

    def __init__(self, port: int, database: str, fields: dict[str, str]) -> None:
        self.url = f"http://127.0.0.1:{port}/query"
        self.database, self.fields = database, fields
        self.http = httpx.Client(timeout=30)

    def counts(self, since_ms: dict[str, int] | None = None, where: str = "") -> dict[str, int]:
        """Points per measurement, optionally only those with time >= since_ms[measurement]
        and matching the InfluxQL condition ``where``."""
        statements = []
        for measurement, field_name in self.fields.items():
            conditions = [where] if where else []
            if since_ms:
                conditions.append(f"time >= {since_ms[measurement]}ms")
            where_clause = f" WHERE {' AND '.join(conditions)}" if conditions else ""
            statements.append(
                f'SELECT count("{field_name}") FROM "{measurement}"{where_clause}')
        response = self.http.post(self.url, params={"db": self.database,
                                                    "q": ";".join(statements), "epoch": "ms"})
        response.raise_for_status()
        counts = {}
        for measurement, result in zip(self.fields, response.json()["results"], strict=True):
            if "error" in result:
                raise RuntimeError(f"InfluxDB query failed: {result['error']}")
            series = result.get("series") or []
            counts[measurement] = int(series[0]["values"][0][1]) if series else 0
        return counts

    def close(self) -> None:
        self.http.close()


def machine_busy_cpu_s() -> float:
    """CPU seconds the whole machine has been busy since boot (all cores, from /proc/stat)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    """CPU seconds of this process (the benchmark's own polling and bookkeeping)."""
    times = os.times()
    return times.user + times.system


def _command_version(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0].strip() if text else "unknown"


def machine_facts() -> dict[str, Any]:
    cpu_model = "unknown"
    memory_mb = 0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_mb = int(line.split()[1]) // 1024
    except OSError:
        pass
    import paho.mqtt

    from devstack.localstack import INFLUXD_CANDIDATES, MOSQUITTO_CANDIDATES, _binary

    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
        "cpu_model": cpu_model,
        "cores": os.cpu_count(),
        "memory_mb": memory_mb,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "paho_mqtt": paho.mqtt.__version__,
        "mosquitto": _command_version([_binary(MOSQUITTO_CANDIDATES, "mosquitto"), "-h"]),
        "influxd": _command_version([_binary(INFLUXD_CANDIDATES, "influxdb"), "version"]),
        "git_commit": _command_version(["git", "-C", str(Path(__file__).resolve().parents[2]),
                                        "rev-parse", "--short", "HEAD"]),
    }
