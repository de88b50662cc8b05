"""``kota bench notify``: a Siaga 1 alert to 100,000 subscribers, timed at local sinks.

One run, in a temporary folder on loopback: a private Mosquitto (and PostgreSQL with
``--database postgresql``; SQLite otherwise), ``subscribers`` rows written in bulk (half email,
half webhook, spread evenly over the 44 kecamatan of indicators/data/jakarta/districts.csv,
hazard flood, lowest severity Moderate, active), an SMTP sink (aiosmtpd) and a webhook sink (a
bare asyncio HTTP/1.1 server), each in its own process, recording the arrival time of every
Message-ID / Idempotency-Key. Then:

1. ``kota alerts`` (its own rules file: flood-siaga at Manggarai, whose area names the alert's
   kecamatan), a water reading at Siaga 1 published to Mosquitto, and the wait until every
   expected notification arrived (``grace_s`` at most). By default kota alerts only queues
   (``delivery.in_process: false``) and one ``kota alerts deliver --channel X`` process per
   channel sends; ``single_process`` sends from kota alerts itself. With ``kill_at`` the
   sending processes are SIGKILLed once that fraction arrived and started again;
2. the floor, ``floor_rounds`` times: a bare ``smtplib`` loop (one connection, N mails) and a
   bare ``httpx`` loop (keep-alive, as many concurrent requests as the notifier has workers per
   channel), N = the notifications each channel got, both at once, into the same sinks, each
   sending **the bytes kota sent** (the first mail and the first webhook request the sinks
   received from kota, with the floor's own Message-ID / Idempotency-Key): the floor is the
   transport and the sink for the same messages, without kota. The fastest round of each
   channel is the floor (the figure least flattering to kota); every round is in the result.
   Before 2026-12-03 the floor sent a mail of 17 lines where kota's has about 50, and
   aiosmtpd's cost grows with the lines (docs/benchmarks.md).

Times are from "alert committed" (the JSON log line kota alerts writes after the commit) to the
first and last arrival per channel; throughput is notifications per second from the first to
the last arrival of a channel, the same measure for the floor. Every process is stopped by PID.
"""

from __future__ import annotations

import asyncio
import csv
import json
import multiprocessing
import re
import secrets
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import orjson
import paho.mqtt.client as mqtt
import yaml
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from alerts.bench.procs import REGISTRY, ServiceProcess, commit_times
from alerts.subscriptions.settings import DeliverySettings, SmtpSettings
from devstack.localstack import (
    LocalService,
    free_port,
    in_workdir,
    start_mosquitto,
    start_postgres,
    stop_process,
)
from ingest.bench.procs import cpu_seconds, machine_facts, peak_rss_kb
from ingest.bench.profile import PySpy, top_functions
from store.db import ensure_schema, make_engine
from store.subscription_models import Notification, Subscriber

__all__ = ["NotifyBenchConfig", "notify", "run_notify_bench", "summary"]

Progress = Callable[[str], None]

REPO = Path(__file__).resolve().parents[2]
DISTRICTS_CSV = REPO / "indicators" / "data" / "jakarta" / "districts.csv"
# The alert's area: Manggarai's Ciliwung reach (alerts/rules/jakarta.yaml) and its neighbours.
ALERT_KECAMATAN = ("Tebet", "Jatinegara", "Kramat Jati", "Pancoran", "Pasar Minggu",
                   "Jagakarsa", "Matraman", "Setiabudi", "Mampang Prapatan", "Menteng")
GAUGE_DEVICE, GAUGE = "water-manggarai", "manggarai"
SIAGA_1_LEVEL_CM = 1000.0  # Manggarai: Siaga 1 from 950 cm (kota/standards/gauges.yaml)
FROM_ADDRESS = "peringatan@kota.example.go.id"
# Issue 12's targets on the 2-core machine.
TARGET_FLOOR_SHARE = 0.5
TARGET_FIRST_S = 5.0
TARGET_RSS_MB = 300.0
# Sends in flight per SIGKILL, both channels: the shipped smtp.pool_size and
# delivery.workers_per_channel (the run uses the shipped delivery settings).
IN_FLIGHT_PER_KILL = SmtpSettings().pool_size + DeliverySettings().workers_per_channel
_KEY = re.compile(r"alert-(\d+)-v(\d+)-subscriber-(\d+)")
_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*<([^>\r\n]*)>", re.MULTILINE | re.IGNORECASE)


@dataclass
class NotifyBenchConfig:
    subscribers: int = 100_000
    database: str = "sqlite"  # or "postgresql"
    kill_at: float | None = None  # SIGKILL kota alerts after this fraction arrived
    grace_s: float = 600.0  # after the alert, wait at most this for the last notification
    workdir: Path | None = None
    profile_dir: Path | None = None  # py-spy on the email sender during delivery
    # True: kota alerts sends itself (delivery.in_process); False: it only queues and one
    # `kota alerts deliver --channel X` process per channel sends.
    single_process: bool = False
    floor_rounds: int = 3  # the floor runs this often after kota; the fastest round counts


def kecamatan() -> list[str]:
    with DISTRICTS_CSV.open(encoding="utf-8") as handle:
        return [row["kecamatan"] for row in csv.DictReader(handle) if row["city"] == "jakarta"]


# -- the sinks: each in its own process, one line per arrival in a file ----------------------
def _sample_path(arrivals_path: str | Path) -> Path:
    """Where a sink keeps the first message kota sent it (the floor replays it)."""
    return Path(str(arrivals_path).replace("-arrivals.txt", "-sample.bin"))


def _smtp_sink_main(port: int, path: str, ready: Any, stop: Any, limit_s: float) -> None:
    from aiosmtpd.controller import Controller

    out = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 (closed below)
    sample = _sample_path(path)

    class Handler:
        async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
            at_s = time.time()
            content = bytes(envelope.content)
            head_end = content.find(b"\r\n\r\n")
            found = _MESSAGE_ID.search(content, 0, head_end if head_end >= 0 else len(content))
            out.write(f"{at_s:.6f} {found.group(1).decode() if found else '-'}\n")
            if found and b"-subscriber-" in found.group(1) and not sample.exists():
                sample.write_bytes(content)
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    try:
        stop.wait(limit_s)
    finally:
        controller.stop()
        out.close()


def _webhook_sink_main(port: int, path: str, ready: Any, stop: Any, limit_s: float) -> None:
    out = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 (closed below)
    sample = _sample_path(path)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:  # keep-alive: one request after another until the client closes
                head = await reader.readuntil(b"\r\n\r\n")
                at_s = time.time()
                length, key = 0, "-"
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"idempotency-key":
                        key = value.strip().decode()
                body = await reader.readexactly(length) if length else b""
                out.write(f"{at_s:.6f} {key}\n")
                if "-subscriber-" in key and not sample.exists():
                    sample.write_bytes(head + body)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=256)
        ready.set()
        deadline = time.monotonic() + limit_s
        while not stop.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        server.close()

    try:
        asyncio.run(main())
    finally:
        out.close()


@dataclass
class _Sink:
    name: str
    port: int
    path: Path
    process: Any
    stop_event: Any
    _offset: int = 0
    _rest: str = ""
    arrivals: list[tuple[float, str]] = field(default_factory=list)

    def read(self) -> list[tuple[float, str]]:
        """Every arrival so far (the file is read on from where the last call stopped)."""
        with self.path.open("r", encoding="utf-8") as handle:
            handle.seek(self._offset)
            text = handle.read()
            self._offset = handle.tell()
        lines = (self._rest + text).split("\n")
        self._rest = lines.pop()
        for line in lines:
            stamp, _, key = line.partition(" ")
            self.arrivals.append((float(stamp), key))
        return self.arrivals

    def stop(self) -> None:
        self.stop_event.set()
        self.process.join(10)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)


def _start_sink(name: str, target: Callable[..., None], workdir: Path,
                limit_s: float) -> _Sink:
    context = multiprocessing.get_context("spawn")
    ready, stop = context.Event(), context.Event()
    port, path = free_port(), workdir / f"{name}-arrivals.txt"
    path.write_text("", encoding="utf-8")
    process = context.Process(target=target, name=f"kota-bench-{name}",
                              args=(port, str(path), ready, stop, limit_s))
    process.start()
    sink = _Sink(name, port, path, process, stop)
    if not ready.wait(30):
        sink.stop()
        raise TimeoutError(f"the {name} sink did not start within 30 s")
    return sink


# -- the floor ---------------------------------------------------------------------------------
# About the size of an alert's text, in lines a mail may carry (RFC 5321: ≤ 998 octets).
_FLOOR_TEXT = "\r\n".join(["Siaga 1 Manggarai: air Ciliwung 1000 cm. Warga di bantaran sungai "
                            "bersiap mengungsi; ikuti arahan BPBD."] * 12)


def _smtp_floor_main(port: int, count: int, prefix: str, sample: bytes | None) -> None:
    import smtplib

    if sample is not None:   # kota's mail, with the floor's Message-ID
        found = _MESSAGE_ID.search(sample)
        assert found is not None
        before, after = sample[:found.start(1)], sample[found.end(1):]
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        for number in range(count):
            key = f"{prefix}{number}"
            if sample is not None:
                mail = before + f"{key}@floor".encode() + after
            else:
                mail = (f"From: {FROM_ADDRESS}\r\nTo: floor{number}@example.org\r\n"
                        f"Subject: Siaga 1 Manggarai\r\nMessage-ID: <{key}@floor>\r\n"
                        f"\r\n{_FLOOR_TEXT}\r\n").encode()
            smtp.sendmail(FROM_ADDRESS, [f"floor{number}@example.org"], mail)


# Headers httpx sets itself (or that name the request): not copied from kota's request.
_OWN_HEADERS = {b"host", b"content-length", b"idempotency-key", b"connection", b"accept",
                b"accept-encoding", b"user-agent"}


def _http_floor_main(port: int, count: int, concurrency: int, prefix: str,
                     sample: bytes | None) -> None:
    import httpx

    headers = {"Content-Type": "application/json"}
    body = orjson.dumps({"alerts": [{"headline": "Siaga 1 Manggarai", "text": _FLOOR_TEXT}],
                         "digest": False})
    if sample is not None:   # kota's request: its body and its own headers
        head, _, body = sample.partition(b"\r\n\r\n")
        headers = {}
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() not in _OWN_HEADERS:
                headers[name.strip().decode()] = value.strip().decode()

    async def main() -> None:
        numbers = iter(range(count))
        async with httpx.AsyncClient(timeout=30) as client:
            async def worker() -> None:
                for number in numbers:
                    await client.post(f"http://127.0.0.1:{port}/floor/{number}", content=body,
                                      headers={**headers,
                                               "Idempotency-Key": f"{prefix}{number}"})
            await asyncio.gather(*(worker() for _ in range(concurrency)))

    asyncio.run(main())


def _run_floor(smtp: _Sink, hook: _Sink, email_n: int, webhook_n: int, concurrency: int,
               prefix: str, samples: dict[str, bytes | None], timeout_s: float) -> None:
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_smtp_floor_main,
                                 args=(smtp.port, email_n, prefix, samples["email"])),
                 context.Process(target=_http_floor_main,
                                 args=(hook.port, webhook_n, concurrency, prefix,
                                       samples["webhook"]))]
    for process in processes:
        process.start()
    deadline = time.monotonic() + timeout_s
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.terminate()
            process.join(5)


def _floor(config: NotifyBenchConfig, smtp: _Sink, hook: _Sink, counts: dict[str, int],
           progress: Progress) -> dict[str, Any]:
    """``floor_rounds`` rounds; per channel the fastest round, and every round's figures."""
    workers = DeliverySettings().workers_per_channel   # the run's (shipped) setting
    # What kota sent, read once (None: kota sent nothing there, the floor's own text goes).
    samples = {channel: path.read_bytes() if path.exists() else None
               for channel, path in (("email", _sample_path(smtp.path)),
                                     ("webhook", _sample_path(hook.path)))}
    rounds: list[dict[str, Any]] = []
    for number in range(1, config.floor_rounds + 1):
        progress(f"floor {number}/{config.floor_rounds}: smtplib (1 connection) and httpx "
                 f"({workers} concurrent) into the same sinks, kota's own messages, the same "
                 "counts")
        prefix = f"floor-r{number}-"
        _run_floor(smtp, hook, counts["email"], counts["webhook"], workers, prefix, samples,
                   config.grace_s)
        time.sleep(0.5)
        rounds.append({
            "email": _channel_figures(smtp.read(), "email", None, set(), floor=prefix),
            "webhook": _channel_figures(hook.read(), "webhook", None, set(), floor=prefix)})
    best = {channel: max((entry[channel] for entry in rounds),
                         key=lambda figures: figures.get("per_s") or 0.0)
            for channel in ("email", "webhook")}
    message = {channel: {"kotas_message": data is not None, "bytes": len(data or b""),
                         "lines": (data or b"").count(b"\n")}
               for channel, data in samples.items()}
    return {"floor": best, "floor_rounds": [{channel: entry[channel].get("per_s")
                                             for channel in entry} for entry in rounds],
            "floor_message": message}


# -- the subscribers ---------------------------------------------------------------------------
def _write_subscribers(database_url: str, count: int, webhook_base: str
                       ) -> dict[str, set[int]]:
    """``count`` active subscribers in bulk; returns the ids the alert goes to, by channel."""
    names = kecamatan()
    engine = make_engine(database_url)
    try:
        ensure_schema(engine, migrate=True)
        now = datetime.now(UTC)
        rows = [{"channel": "email" if index % 2 == 0 else "webhook",
                 "address": (f"warga{index}@example.org" if index % 2 == 0
                             else f"{webhook_base}/hook/{index}"),
                 "address_hash": f"{index:064x}", "status": "active",
                 "language": "id-ID" if index % 3 else "en-US",
                 # index // 2: email and webhook subscribers alike spread over all 44.
                 "districts": [names[(index // 2) % len(names)]], "kelurahan": [],
                 "hazards": ["flood"], "min_severity": "Moderate", "created_by": "bench",
                 "created_at": now, "updated_at": now}
                for index in range(count)]
        with Session(engine) as session, session.begin():
            for start in range(0, len(rows), 5000):
                session.execute(insert(Subscriber), rows[start:start + 5000])
        expected: dict[str, set[int]] = {"email": set(), "webhook": set()}
        with Session(engine) as session:
            for subscriber_id, channel, districts in session.execute(
                    select(Subscriber.id, Subscriber.channel, Subscriber.districts)):
                if set(districts) & set(ALERT_KECAMATAN):
                    expected[channel].add(subscriber_id)
        return expected
    finally:
        engine.dispose()


def _statuses(database_url: str) -> dict[str, dict[str, int]]:
    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            counts: dict[str, dict[str, int]] = {}
            for channel, status, count in session.execute(
                    select(Notification.channel, Notification.status, func.count())
                    .group_by(Notification.channel, Notification.status)):
                counts.setdefault(channel, {})[status] = int(count)
            return counts
    finally:
        engine.dispose()


def _rules(path: Path) -> Path:
    document = {"rules": [{
        "id": "flood-siaga", "kind": "siaga", "fire_at_status": 3, "clear_after_s": 3600,
        "source": "kota bench notify: the shipped flood-siaga rule with a ten-kecamatan area",
        "areas": {GAUGE: {"districts": list(ALERT_KECAMATAN), "radius_km": 6,
                          "source": "bench", "confidence": "unverified"}}}]}
    path.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False),
                    encoding="utf-8")
    return path


def _fanout_done_s(log_path: Path) -> float | None:
    """When the fan-out's rows were committed (its JSON log line), epoch seconds."""
    if not log_path.exists():
        return None
    for line in log_path.read_text(errors="replace").splitlines():
        if '"fan-out: ' in line and "queued for" in line:
            entry = json.loads(line)
            return datetime.fromisoformat(str(entry["ts"]).replace("Z", "+00:00")).timestamp()
    return None


# -- the run -----------------------------------------------------------------------------------
def _quiet(_message: str) -> None:
    pass


def run_notify_bench(config: NotifyBenchConfig, progress: Progress = _quiet) -> dict[str, Any]:
    return in_workdir(config.workdir, "kota-bench-notify-",
                      lambda folder: _run(config, folder, progress))


def _run(config: NotifyBenchConfig, workdir: Path, progress: Progress) -> dict[str, Any]:
    result: dict[str, Any] = {
        "benchmark": "notify", "machine": machine_facts(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}}
    services: list[LocalService] = []
    sinks: list[_Sink] = []
    limit_s = config.grace_s + 1800
    try:
        progress(f"starting Mosquitto{', PostgreSQL' if config.database != 'sqlite' else ''}"
                 f" and the sinks in {workdir}")
        mosquitto = start_mosquitto(workdir / "mosquitto")
        services.append(mosquitto)
        if config.database == "sqlite":
            (workdir / "alerts").mkdir(parents=True, exist_ok=True)
            database_url = f"sqlite:///{workdir / 'alerts' / 'kota.db'}"
        else:
            postgres = start_postgres(workdir / "postgres")
            services.append(postgres)
            database_url = postgres.url
        smtp = _start_sink("smtp", _smtp_sink_main, workdir, limit_s)
        sinks.append(smtp)
        hook = _start_sink("webhook", _webhook_sink_main, workdir, limit_s)
        sinks.append(hook)
        started = time.monotonic()
        expected = _write_subscribers(database_url, config.subscribers,
                                      f"http://127.0.0.1:{hook.port}")
        result["subscribers"] = {"written": config.subscribers,
                                 "write_s": round(time.monotonic() - started, 1),
                                 "expected": {k: len(v) for k, v in expected.items()},
                                 "alert_kecamatan": list(ALERT_KECAMATAN)}
        progress(f"{config.subscribers:,} subscribers written in "
                 f"{result['subscribers']['write_s']} s; the alert goes to "
                 f"{len(expected['email']):,} by email and {len(expected['webhook']):,} by "
                 "webhook")
        settings: dict[str, Any] = {
            "registry_file": str(REGISTRY), "rules_file": str(_rules(workdir / "rules.yaml")),
            "rules_reload_s": 0, "database": {"url": database_url},
            "mqtt": {"port": mosquitto.port, "client_id": "kota-bench-notify"},
            "influx_events": False, "metrics_port": 0, "log_format": "json",
            "subscriptions": {"secret": secrets.token_hex(32),
                              "smtp": {"host": "127.0.0.1", "port": smtp.port,
                                       "from_address": FROM_ADDRESS}}}
        result.update(_deliver(config, workdir, settings, mosquitto.port, smtp, hook,
                               expected, progress))
        result.update(_floor(config, smtp, hook, {k: len(v) for k, v in expected.items()},
                             progress))
        result["notifications_in_database"] = _statuses(database_url)
    finally:
        for sink in sinks:
            sink.stop()
        for service in reversed(services):
            service.stop()
    result["targets"] = _targets(result)
    return result


def _deliver(config: NotifyBenchConfig, workdir: Path, settings: dict[str, Any], port: int,
             smtp: _Sink, hook: _Sink, expected: dict[str, set[int]],
             progress: Progress) -> dict[str, Any]:
    total = sum(len(ids) for ids in expected.values())
    runs: list[ServiceProcess] = []  # every process started, kota alerts first
    senders: list[ServiceProcess] = []  # the processes that send (SIGKILLed with kill_at)
    rss_kb: dict[int, int] = {}  # peak RSS of each process, last seen
    spy: PySpy | None = None
    kills: list[dict[str, Any]] = []
    cpu_s: dict[int, float] = {}  # CPU seconds of each process, last seen
    cpu_start_s = 0.0
    channels = [channel for channel in ("email", "webhook") if expected[channel]]
    if not config.single_process:
        settings = {**settings, "subscriptions": {
            **settings["subscriptions"], "delivery": {"in_process": False}}}

    pids: dict[str, int] = {}

    def start(name: str, command: list[str], ready: str) -> ServiceProcess:
        service = ServiceProcess(name, workdir / "alerts", "alerts", settings, command)
        runs.append(service.start(ready, timeout_s=120))
        assert service.pid is not None
        pids[name] = service.pid
        return service

    def start_senders(suffix: str) -> list[ServiceProcess]:
        return [start(f"deliver-{channel}{suffix}", ["alerts", "deliver", "--channel", channel],
                      "deliver: sending") for channel in channels]

    def arrived() -> int:
        return sum(len({key for _at, key in sink.read() if "-subscriber-" in key})
                   for sink in (smtp, hook))

    alerts = start("alerts", ["alerts"], "connected to MQTT")
    senders = [alerts] if config.single_process else start_senders("")
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="kota-bench-notify-gauge",
                         protocol=mqtt.MQTTv5)
    try:
        profiled = senders[0].pid
        assert profiled is not None
        if config.profile_dir is not None:
            config.profile_dir.mkdir(parents=True, exist_ok=True)
            spy = PySpy(profiled, config.profile_dir / "alerts.raw")
            # On CPU only (no --idle): what the notifier spends its CPU on, in every thread.
            spy.command.remove("--idle")
            spy.command.append("--nonblocking")
            spy.start()
        client.connect("127.0.0.1", port, keepalive=30)
        client.loop_start()
        for run in runs:
            if run.pid is not None:
                cpu_start_s += cpu_seconds(run.pid) or 0.0
        published_s = time.time()
        client.publish(f"kota/jakarta/water/{GAUGE_DEVICE}",
                       orjson.dumps({"ts": published_s, "level_cm": SIAGA_1_LEVEL_CM}),
                       qos=1).wait_for_publish(10)
        progress(f"Siaga 1 published at Manggarai ({SIAGA_1_LEVEL_CM:g} cm); waiting for "
                 f"{total:,} notifications"
                 + ("" if config.single_process else
                    f" (kota alerts queues, {len(senders)} deliver processes send)"))
        deadline = time.monotonic() + config.grace_s
        next_report = time.monotonic() + 5
        count = 0

        def sample() -> None:
            for run in runs:
                if run.pid is not None:
                    rss_kb[run.pid] = max(rss_kb.get(run.pid, 0), peak_rss_kb(run.pid) or 0)
                    cpu_s[run.pid] = cpu_seconds(run.pid) or cpu_s.get(run.pid, 0.0)

        while time.monotonic() < deadline:  # bounded by grace_s
            count = arrived()
            sample()
            if count >= total:
                break
            if (config.kill_at is not None and not kills
                    and count >= config.kill_at * total):
                if spy is not None:
                    spy.stop()
                    spy = None
                for sender in senders:
                    process, sender.process = sender.process, None
                    stop_process(process, 10, signal.SIGKILL)
                kills.append({"after_arrivals": count, "at_s": round(time.time(), 3),
                              "processes": [sender.name for sender in senders]})
                progress(f"SIGKILL {', '.join(sender.name for sender in senders)} after "
                         f"{count:,} arrivals; starting again")
                senders = ([start("alerts-restarted", ["alerts"], "connected to MQTT")]
                           if config.single_process else start_senders("-restarted"))
            if time.monotonic() >= next_report:
                progress(f"{count:,} of {total:,} notifications arrived")
                next_report += 5
            time.sleep(0.2)
        time.sleep(2.0)  # a late duplicate still arrives in the figures
        sample()
    finally:
        client.loop_stop()
        client.disconnect()
        profile = None
        if spy is not None:
            raw = spy.stop()
            profile = top_functions(raw) if raw is not None else None
        for run in runs:
            run.stop()
    commits = [commit for run in runs for commit in commit_times(run.log_path)
               if commit.rule_id == "flood-siaga" and commit.event == "fired"]
    committed_s = commits[0].at_s if commits else None
    fanout_s = _fanout_done_s(runs[0].log_path)
    # What kota alerts and its senders hold together: the sum of their peaks, for the first
    # senders or the restarted ones, whichever is more.
    rss_by_name = {name: rss_kb.get(pid, 0) for name, pid in pids.items()}
    generations = [[name for name in rss_by_name if not name.endswith("-restarted")],
                   [name for name in rss_by_name if name.endswith("-restarted")
                    or (name == "alerts" and not config.single_process)]]
    peak_kb = max(sum(rss_by_name[name] for name in names) for names in generations)
    figures = {"email": _channel_figures(smtp.read(), "email", committed_s, expected["email"]),
               "webhook": _channel_figures(hook.read(), "webhook", committed_s,
                                           expected["webhook"])}
    return {
        "alert": {"published_to_committed_ms": None if committed_s is None
                  else round((committed_s - published_s) * 1000, 1),
                  "committed_to_fanout_done_ms": None if committed_s is None or fanout_s is None
                  else round((fanout_s - committed_s) * 1000, 1),
                  "fired_commits": len(commits)},
        "delivery": figures,
        "kills": kills,
        "processes": [run.name for run in runs],
        # From the publish to the last arrival, every process (kota alerts, the deliver
        # processes, the restarted ones) together.
        "alerts_cpu_s": round(sum(cpu_s.values()) - cpu_start_s, 1),
        "delivery_wall_s": round(time.time() - published_s, 1),
        "alerts_peak_rss_mb": round(peak_kb / 1024, 1) if peak_kb else None,
        "rss_mb_by_process": {name: round(kb / 1024, 1) for name, kb in rss_by_name.items()},
        "profile": profile,
        "workdir": str(workdir) if config.workdir is not None else None,
    }


def _channel_figures(arrivals: list[tuple[float, str]], channel: str, committed_s: float | None,
                     expected: set[int], floor: str | None = None) -> dict[str, Any]:
    """Arrivals of kota's notifications (or of the floor round whose keys start ``floor``),
    counted raw and by key."""
    if floor:
        chosen = [(at, key) for at, key in arrivals if key.startswith(floor)]
    else:
        chosen = [(at, key) for at, key in arrivals if "-subscriber-" in key]
    times = sorted(at for at, _key in chosen)
    keys = [key for _at, key in chosen]
    unique = set(keys)
    span_s = times[-1] - times[0] if len(times) > 1 else 0.0
    figures: dict[str, Any] = {
        "arrivals_raw": len(keys), "arrivals_unique": len(unique),
        "duplicates": len(keys) - len(unique),
        "first_to_last_s": round(span_s, 2),
        "per_s": round((len(unique) - 1) / span_s, 1) if span_s > 0 else None}
    if floor:
        return figures
    # Per (subscriber, alert version): the key is <identifier>-subscriber-<id>.
    versions: dict[int, set[tuple[int, int]]] = {}
    for key in unique:
        found = _KEY.search(key)
        if found:
            alert_id, version, subscriber_id = map(int, found.groups())
            versions.setdefault(subscriber_id, set()).add((alert_id, version))
    got = set(versions)
    figures.update({
        "expected": len(expected), "missing": len(expected - got),
        "unexpected": len(got - expected),
        "subscribers_with_more_than_one_version": sum(1 for v in versions.values()
                                                       if len(v) > 1)})
    if committed_s is not None and times:
        figures["committed_to_first_s"] = round(times[0] - committed_s, 2)
        figures["committed_to_last_s"] = round(times[-1] - committed_s, 2)
    return figures


def _targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    delivery, floor = result.get("delivery") or {}, result.get("floor") or {}
    targets: list[dict[str, Any]] = []
    for channel in ("email", "webhook"):
        ours = (delivery.get(channel) or {}).get("per_s")
        bare = (floor.get(channel) or {}).get("per_s")
        share = round(ours / bare, 2) if ours and bare else None
        targets.append({"id": f"{channel}_throughput",
                        "target": f"{channel}: ≥ {TARGET_FLOOR_SHARE:.0%} of the floor's "
                                  "notifications/s", "measured": share,
                        "result": "PASS" if share is not None and share >= TARGET_FLOOR_SHARE
                        else "MISS"})
    firsts = [entry.get("committed_to_first_s") for entry in delivery.values()]
    first = min((value for value in firsts if value is not None), default=None)
    targets.append({"id": "first_notification", "target": f"first notification ≤ "
                    f"{TARGET_FIRST_S:g} s after the alert is committed", "measured": first,
                    "result": "PASS" if first is not None and first <= TARGET_FIRST_S
                    else "MISS"})
    rss = result.get("alerts_peak_rss_mb")
    targets.append({"id": "rss", "target": f"kota alerts (and its deliver processes) peak "
                                           f"RSS ≤ {TARGET_RSS_MB:g} MB",
                    "measured": rss,
                    "result": "PASS" if rss is not None and rss <= TARGET_RSS_MB else "MISS"})
    lost = sum(entry.get("missing", 0) for entry in delivery.values())
    complete = bool(delivery) and all("missing" in entry for entry in delivery.values())
    kills = len(result.get("kills") or [])
    targets.append({"id": "nothing_lost",
                    "target": "every expected notification arrived"
                              + (" (SIGKILL mid-fan-out)" if kills else ""),
                    "measured": {"missing": lost},
                    "result": "PASS" if complete and lost == 0 else "MISS"})
    raw = sum(entry.get("duplicates", 0) for entry in delivery.values())
    by_key = sum(entry.get("subscribers_with_more_than_one_version", 0)
                 for entry in delivery.values())
    # A send the receiver accepted and kota had not yet journaled when SIGKILL came cannot
    # be told from one that never left: those few go again, with the same key (at-least-once;
    # SMTP and HTTP have no two-phase commit). Everything else must arrive once.
    bound = kills * IN_FLIGHT_PER_KILL
    targets.append({"id": "nothing_twice",
                    "target": "no notification twice: by key none, raw repeats only the sends in "
                              f"flight at a SIGKILL (≤ {IN_FLIGHT_PER_KILL} per kill: "
                              "smtp.pool_size + delivery.workers_per_channel)",
                    "measured": {"raw_repeats": raw, "in_flight_bound": bound,
                                 "twice_by_key": by_key},
                    "result": "PASS" if complete and by_key == 0 and raw <= bound else "MISS"})
    return targets


def summary(result: dict[str, Any]) -> str:
    lines = [f"{'channel':<8} {'expected':>9} {'unique':>8} {'raw':>8} {'dup':>5} "
             f"{'missing':>7} {'first s':>8} {'last s':>8} {'per s':>8} {'floor/s':>8}"]
    for channel, entry in (result.get("delivery") or {}).items():
        floor = (result.get("floor") or {}).get(channel) or {}
        lines.append(f"{channel:<8} {entry.get('expected', 0):>9,} "
                     f"{entry['arrivals_unique']:>8,} {entry['arrivals_raw']:>8,} "
                     f"{entry['duplicates']:>5} {entry.get('missing', 0):>7} "
                     f"{_num(entry.get('committed_to_first_s')):>8} "
                     f"{_num(entry.get('committed_to_last_s')):>8} "
                     f"{_num(entry.get('per_s')):>8} {_num(floor.get('per_s')):>8}")
    alert = result.get("alert") or {}
    lines.append(f"alert: published → committed {_num(alert.get('published_to_committed_ms'))}"
                 f" ms; committed → fan-out rows committed "
                 f"{_num(alert.get('committed_to_fanout_done_ms'))} ms; processes "
                 f"{len(result.get('processes', []))}, peak RSS "
                 f"{result.get('alerts_peak_rss_mb')} MB, CPU {result.get('alerts_cpu_s')} s over "
                 f"{result.get('delivery_wall_s')} s; SIGKILLs {len(result.get('kills', []))}")
    rounds = result.get("floor_rounds") or []
    if rounds:
        sizes = result.get("floor_message") or {}
        lines.append("floor rounds (per s): " + "; ".join(
            f"{channel} " + " / ".join(_num(entry.get(channel)) for entry in rounds)
            + (f" ({sizes[channel]['bytes']:,} bytes, {sizes[channel]['lines']} lines"
               f"{'' if sizes[channel]['kotas_message'] else ', not kota’s'})"
               if channel in sizes else "")
            for channel in ("email", "webhook")) + "; the fastest counts")
    lines.append("kota bench notify: " + ", ".join(
        f"{t['id']} {t['measured']} {t['result']}" for t in result.get("targets", [])))
    return "\n".join(lines)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


@click.command("notify")
@click.option("--subscribers", type=click.IntRange(100, 1_000_000), default=100_000,
              show_default=True, help="Subscribers written (half email, half webhook, over "
                                      "the 44 kecamatan).")
@click.option("--database", type=click.Choice(["sqlite", "postgresql"]), default="sqlite",
              show_default=True, help="kota alerts' database: a SQLite file in the run's "
                                      "folder, or a private PostgreSQL.")
@click.option("--kill-at", "kill_at", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help="SIGKILL the sending processes (the deliver processes, or kota alerts with "
                   "--single-process) after this fraction of the notifications arrived, start "
                   "them again, and check nothing was lost or sent twice.")
@click.option("--single-process", is_flag=True,
              help="kota alerts sends itself (delivery.in_process: true, the default "
                   "setting) instead of one `kota alerts deliver --channel X` per channel.")
@click.option("--grace", "grace_s", type=click.FloatRange(10, 7200), default=600,
              show_default=True, help="After the alert, wait at most this for the last "
                                      "notification.")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path),
              help="Keep services' data, logs and the sinks' arrival files here.")
@click.option("--profile", "profile_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Record the email sender (kota alerts with --single-process) with py-spy "
                   "(non-blocking) during delivery.")
@click.option("--floor-rounds", type=click.IntRange(1, 10), default=3, show_default=True,
              help="Times the floor runs after kota (both bare loops at once); the fastest "
                   "round of each channel is the floor.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Append the result to FILE as one JSON line.")
def notify(subscribers: int, database: str, kill_at: float | None, single_process: bool,
           grace_s: float, workdir: Path | None, profile_dir: Path | None, floor_rounds: int,
           as_json: bool, output: Path | None) -> None:
    """A Siaga 1 alert over 10 kecamatan to subscribers, timed at local SMTP and webhook sinks.

    Starts a private Mosquitto (and PostgreSQL with --database postgresql), an aiosmtpd sink
    and a webhook sink, writes the subscribers, runs kota alerts and, unless --single-process,
    one `kota alerts deliver --channel X` per channel (kota alerts only queues), then the
    floor: bare smtplib and httpx loops sending the same mail and request bytes kota sent into
    the same sinks, --floor-rounds times; stops all of them by PID.
    Exit code 0 whether or not the targets are met. Progress goes to stderr; the summary
    (or --json) to stdout.

    \b
    Examples:
      kota bench notify                          # 100,000 subscribers, SQLite
      kota bench notify --kill-at 0.3 --output run/bench-notify.jsonl
      kota bench notify --subscribers 2000 --database postgresql
    """
    started = time.monotonic()

    def progress(message: str) -> None:
        click.echo(f"[{time.monotonic() - started:7.1f} s] {message}", err=True)

    config = NotifyBenchConfig(subscribers=subscribers, database=database, kill_at=kill_at,
                               single_process=single_process,
                               grace_s=grace_s, workdir=workdir, profile_dir=profile_dir,
                               floor_rounds=floor_rounds)
    result = run_notify_bench(config, progress)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        with output.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(result, ensure_ascii=False) + "\n")
        progress(f"result appended to {output}")
    if as_json:
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        click.echo(summary(result))
