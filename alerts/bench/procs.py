"""What ``kota bench alerts`` runs beside the services it measures: ``kota alerts`` and
``kota indicators`` as subprocesses with their own settings, the webhook receiver, the floor's
bare subscriber, and the reading of commit times from kota alerts' JSON log.

Only processes started here are signalled, always by PID; every wait is bounded.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml

from devstack.localstack import stop_process

__all__ = ["Arrival", "Commit", "FloorSubscriber", "ServiceProcess", "WebhookReceiver",
           "bench_rules", "commit_times", "metric", "start_floor_subscriber"]

REPO = Path(__file__).resolve().parents[2]
REGISTRY = REPO / "simulators" / "cities" / "jakarta" / "devices.yaml"
SHIPPED_RULES = REPO / "alerts" / "rules" / "jakarta.yaml"


def bench_rules(path: Path, clear_after_s: float) -> Path:
    """The shipped Jakarta rules, with flood-siaga's clear_after_s shortened (and no repeats)
    so a gauge can cross again a few seconds later; every other rule as shipped."""
    document = yaml.safe_load(SHIPPED_RULES.read_text(encoding="utf-8"))
    for rule in document["rules"]:
        if rule["id"] == "flood-siaga":
            rule.update({"clear_after_s": clear_after_s, "repeat_s": None})
    path.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False),
                    encoding="utf-8")
    return path


# -- the webhook receiver --------------------------------------------------------------------
@dataclass(frozen=True)
class Arrival:
    """One POST as it arrived: epoch seconds, its Idempotency-Key and what the body says."""

    at_s: float
    key: str
    rule_id: str
    scope: str
    msg_type: str
    version: int
    level_cm: float | None


class WebhookReceiver:
    """A threading HTTP server on loopback that answers 200 and records each arrival."""

    def __init__(self) -> None:
        self.arrivals: list[Arrival] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                at_s = time.time()  # before reading the body: arrival, not parsing
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {}
                details = body.get("details") or {}
                level = details.get("level_cm")
                arrival = Arrival(at_s=at_s, key=self.headers.get("Idempotency-Key", ""),
                                  rule_id=str(body.get("rule_id", "")),
                                  scope=str(body.get("scope", "")),
                                  msg_type=str(body.get("msg_type", "")),
                                  version=int(body.get("version", 0) or 0),
                                  level_cm=float(level) if isinstance(level, (int, float))
                                  else None)
                with receiver._lock:
                    receiver.arrivals.append(arrival)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever,
                                        name="kota-bench-receiver", daemon=True)

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def snapshot(self) -> list[Arrival]:
        with self._lock:
            return list(self.arrivals)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


# -- the floor: a bare subscriber that POSTs at once -------------------------------------------
def _floor_main(port: int, topic: str, url: str, ready: Any, stop: Any, limit_s: float) -> None:
    import paho.mqtt.client as mqtt

    http = httpx.Client(timeout=10)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="kota-bench-floor",
                         protocol=mqtt.MQTTv5)

    def on_connect(c: mqtt.Client, *_args: Any) -> None:
        c.subscribe(topic, qos=1)

    def on_subscribe(*_args: Any) -> None:
        ready.set()

    def on_message(_c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        probe = json.loads(message.payload)["probe"]
        # The same receiver, the same headers the webhook channel sends (no signature work).
        http.post(url, content=bytes(message.payload), headers={
            "Content-Type": "application/json", "Idempotency-Key": probe})

    client.on_connect, client.on_subscribe = on_connect, on_subscribe
    client.on_message = on_message
    client.connect("127.0.0.1", port, keepalive=30)
    client.loop_start()
    try:
        stop.wait(limit_s)
    finally:
        client.disconnect()
        client.loop_stop()
        http.close()


@dataclass
class FloorSubscriber:
    process: Any
    stop_event: Any

    def stop(self) -> None:
        self.stop_event.set()
        self.process.join(10)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)


def start_floor_subscriber(port: int, topic: str, url: str, limit_s: float,
                           timeout_s: float = 30.0) -> FloorSubscriber:
    """A paho-mqtt QoS 1 subscriber in its own process that POSTs each message's payload to
    ``url`` from its network thread; runs until stopped or ``limit_s``."""
    context = multiprocessing.get_context("spawn")
    ready, stop = context.Event(), context.Event()
    process = context.Process(target=_floor_main, name="kota-bench-floor",
                              args=(port, topic, url, ready, stop, limit_s))
    process.start()
    floor = FloorSubscriber(process, stop)
    if not ready.wait(timeout_s):
        floor.stop()
        raise TimeoutError(f"the floor subscriber did not subscribe within {timeout_s:.0f} s")
    return floor


# -- services as subprocesses ----------------------------------------------------------------
class ServiceProcess:
    """``python -m kota <command> --config <workdir>/kota.yaml``, its output in a log file."""

    def __init__(self, name: str, workdir: Path, section: str, settings: dict[str, Any],
                 command: list[str]) -> None:
        self.name, self.workdir = name, workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.config = workdir / "kota.yaml"
        self.config.write_text(yaml.safe_dump({section: settings}, allow_unicode=True),
                               encoding="utf-8")
        self.command = [sys.executable, "-m", "kota", *command, "--config", str(self.config)]
        self.log_path = workdir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self, ready_text: str | None = None, timeout_s: float = 60.0) -> ServiceProcess:
        env = dict(os.environ)
        env.pop("KOTA_CONFIG", None)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, cwd=self.workdir, env=env)
        log.close()
        deadline = time.monotonic() + timeout_s
        while ready_text is not None and ready_text not in self.log():
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}; log "
                                   f"{self.log_path}:\n{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"{self.name}: no '{ready_text}' within {timeout_s:.0f} s; "
                                   f"log {self.log_path}:\n{self.log()[-3000:]}")
            time.sleep(0.1)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def exited(self) -> int | None:
        return self.process.poll() if self.process is not None else None

    def stop(self, timeout_s: float = 20.0) -> int | None:
        process, self.process = self.process, None
        return stop_process(process, timeout_s)


def metric(port: int, name: str, client: httpx.Client) -> float | None:
    """One value from a Prometheus /metrics page (a counter's ``_total`` too)."""
    try:
        text = client.get(f"http://127.0.0.1:{port}/metrics").text
    except httpx.HTTPError:
        return None
    for line in text.splitlines():
        if line.startswith((name + " ", name + "_total ")):
            return float(line.split()[-1])
    return None


# -- commit times from the log ---------------------------------------------------------------
@dataclass(frozen=True)
class Commit:
    """``alert <rule> <scope>: <event> <level>``: kota alerts logs it right after the
    transaction that made the change has committed (AlertService._commit)."""

    at_s: float
    rule_id: str
    scope: str
    event: str


def commit_times(log_path: Path) -> list[Commit]:
    """Every committed alert event in a JSON log (``log_format: json``; ``ts`` in ms)."""
    commits: list[Commit] = []
    if not log_path.exists():
        return commits
    for line in log_path.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        text = str(entry.get("msg", ""))
        if entry.get("logger") != "kota.alerts" or not text.startswith("alert "):
            continue
        head, _, tail = text.partition(": ")
        parts = head.split(" ", 2)
        if len(parts) != 3 or not tail:
            continue
        stamp = datetime.fromisoformat(str(entry["ts"]).replace("Z", "+00:00")).timestamp()
        commits.append(Commit(stamp, parts[1], parts[2], tail.split(" ", 1)[0]))
    return commits
