"""``kota bench ingest``: backlog drain, live latency and two floors, on one machine.

One run starts its own Mosquitto and InfluxDB (devstack.localstack) in a temporary folder and stops
them by PID at the end. Phases, in order:

1. session: ingest starts once (its persistent session subscribes) and stops (SIGTERM).
2. backlog: N messages at QoS 1 while it is away, so the broker queues N for it.
3. drain: ingest starts; time until all N points are queryable (SELECT count per measurement).
4. live: R msg/s for T s while ingest runs; publish -> queryable latency (ingest.bench.latency).
5. floors: ingest's session is ended; a bare paho subscriber creates its own, the same N are
   queued for it and it drains them; then InfluxDB alone takes the same N lines in batches.

Every wait is bounded; ``run_ingest_bench`` returns a JSON-able dict (see ingest.bench.report).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from devstack.localstack import LocalService, in_workdir, start_influxdb, start_mosquitto
from ingest.bench.latency import LatencyTracker
from ingest.bench.mqttload import (
    LivePublisher,
    create_session,
    delete_session,
    drain_bare_subscriber,
    publish_backlog,
)
from ingest.bench.procs import (
    InfluxCounter,
    IngestRunner,
    cpu_seconds,
    machine_busy_cpu_s,
    machine_facts,
    own_cpu_s,
)
from ingest.bench.profile import PySpy, top_functions
from ingest.bench.report import evaluate_targets
from ingest.bench.workload import KINDS, PROBE_CITY, PROBE_EVERY, backlog_messages
from kota.payload import MessageParser

__all__ = ["BenchConfig", "run_ingest_bench"]

Progress = Callable[[str], None]

DATABASE = "kota_bench"
FLOOR_DATABASE = "kota_bench_floor"
FLOOR_CLIENT_ID = "kota-bench-bare-subscriber"
FLOOR_BATCH_LINES = 5000
DRAIN_POLL_S = 0.05  # ingest's points_written counter (cheap)
DRAIN_COUNT_S = 1.0  # SELECT count(...) in InfluxDB (costly over many points)
STALL_S = 30.0  # give up on a drain that stored nothing new for this long


@dataclass
class BenchConfig:
    messages: int = 200_000
    rate: float = 10_000
    seconds: float = 20
    workers: int = 1
    live: bool = True
    floors: bool = True
    publishers: int = 2  # backlog publisher processes
    workdir: Path | None = None  # default: a temporary folder, removed afterwards
    live_interval_s: float = 0.1
    profile_dir: Path | None = None  # py-spy record ingest during the drain (ingest.bench.profile)

    def drain_timeout_s(self) -> float:
        return max(60.0, self.messages / 1000)


def _quiet(_message: str) -> None:
    pass


def run_ingest_bench(config: BenchConfig, progress: Progress = _quiet) -> dict[str, Any]:
    return in_workdir(config.workdir, "kota-bench-",
                      lambda folder: _run(config, folder, progress))


def _run(config: BenchConfig, workdir: Path, progress: Progress) -> dict[str, Any]:
    result: dict[str, Any] = {"benchmark": "ingest", "machine": machine_facts(),
                              "config": {k: (str(v) if isinstance(v, Path) else v)
                                         for k, v in asdict(config).items()}}
    progress(f"starting Mosquitto and InfluxDB in {workdir}")
    mosquitto = start_mosquitto(workdir / "mosquitto")
    services: list[LocalService] = [mosquitto]
    ingest: IngestRunner | None = None
    try:
        influx = start_influxdb(workdir / "influxdb")
        services.append(influx)
        ingest = IngestRunner(workdir / "ingest", mosquitto.port, influx.port, DATABASE,
                              config.workers)
        result["drain"] = _drain_phase(config, mosquitto, influx, ingest, progress)
        if config.live:
            result["live"] = _live_phase(config, mosquitto, influx, ingest, progress)
        peaks = ingest.peak_rss_kb()
        if peaks:
            result["drain"]["peak_rss_mb_end"] = {k: round(v / 1024, 1) for k, v in peaks.items()}
        ingest.stop()
        if config.floors:
            result["floors"] = _floor_phase(config, mosquitto, influx, result["drain"],
                                            ingest.client_ids(), progress)
    finally:
        if ingest is not None:
            ingest.stop()
        for service in reversed(services):
            service.stop()
    result["targets"] = evaluate_targets(result)
    return result


def _cpu(pids: dict[str, int | None]) -> dict[str, float]:
    return {name: cpu_seconds(pid) or 0.0 for name, pid in pids.items() if pid}


def _drain_phase(config: BenchConfig, mosquitto: LocalService, influx: LocalService,
                 ingest: IngestRunner, progress: Progress) -> dict[str, Any]:
    count = config.messages
    progress("creating ingest's persistent session (start, subscribe, SIGTERM)")
    ingest.start()
    ingest.stop()
    base_ms = time.time_ns() // 1_000_000 - 3_600_000  # an hour ago: valid, and apart from live
    progress(f"publishing a backlog of {count:,} messages at QoS 1 "
             f"({config.publishers} publisher processes)")
    acked, publish_s = publish_backlog(mosquitto.port, count, base_ms, config.publishers,
                                       timeout_s=max(120.0, count / 500))
    progress(f"backlog: {acked:,} acknowledged by the broker in {publish_s:.1f} s "
             f"({acked / publish_s:,.0f} msg/s)")
    counter = InfluxCounter(influx.port, DATABASE, {k.name: k.count_field for k in KINDS})
    service_pids = {"mosquitto": mosquitto.pid, "influxdb": influx.pid}
    cpu_before = _cpu(service_pids)
    busy_before, own_before = machine_busy_cpu_s(), own_cpu_s()
    started_wall = time.time()
    started = time.perf_counter()
    ingest.start(wait=False)
    spy = None
    if config.profile_dir is not None and ingest.pid is not None:
        config.profile_dir.mkdir(parents=True, exist_ok=True)
        spy = PySpy(ingest.pid, config.profile_dir / "ingest-drain.txt",
                    subprocesses=config.workers > 1).start()
    progress(f"ingest started (pid {ingest.pid}); polling its points_written counter every "
             f"{DRAIN_POLL_S} s and InfluxDB every {DRAIN_COUNT_S} s and at the end")
    stored = written = 0
    last_change = last_count = last_report = started
    first_point: float | None = None
    deadline = started + config.drain_timeout_s()
    done = started
    outcome = "complete"
    while True:
        poll_started = time.perf_counter()
        # Ingest counts points as written once InfluxDB answered 204, when InfluxDB 1.x has
        # them queryable; a count in InfluxDB confirms before the drain is declared complete.
        now_written = int(ingest.metric_sum("kota_ingest_points_written"))
        now = time.perf_counter()
        if now_written > written:
            written, last_change = now_written, now
            first_point = first_point or now
        if written >= count or now - last_count >= DRAIN_COUNT_S:
            stored, last_count = _total(counter), time.perf_counter()
            if stored >= count:
                done = now if written >= count else last_count
                break
        done = now
        ingest.find_workers()
        if ingest.exited() is not None:
            outcome = f"ingest exited with code {ingest.exited()}"
            break
        if done > deadline:
            outcome = f"timed out after {config.drain_timeout_s():.0f} s"
            break
        if done - last_change > STALL_S:
            outcome = f"stalled (nothing new for {STALL_S:.0f} s)"
            break
        if done - last_report >= 2:
            last_report = done
            progress(f"drain: {written:,} written, {stored:,} / {count:,} counted in InfluxDB "
                     f"after {done - started:.1f} s")
        time.sleep(max(0.0, DRAIN_POLL_S - (time.perf_counter() - poll_started)))
    stored = _total(counter)
    profile = None
    if spy is not None:
        raw = spy.stop()
        profile = top_functions(raw) if raw else {"error": f"no output; see {spy.output}.log"}
    cpu_after = _cpu(service_pids)
    ingest_cpu = sum(cpu_seconds(pid) or 0.0 for pid in ingest.pids())
    busy = machine_busy_cpu_s() - busy_before
    bench_cpu = own_cpu_s() - own_before
    peaks = ingest.peak_rss_kb()
    from_start = done - started
    # Ingest's start-up (interpreter, imports, settings) ends at its first log line, written
    # before it connects to MQTT; the drain is timed from there. Not from the MQTT connect:
    # under a backlog the SUBACK queues behind 65,535 messages, so "connected" comes late.
    ready = ingest.ready_time()
    startup = ready - started_wall if ready is not None else 0.0
    net = max(from_start - startup, DRAIN_POLL_S)
    progress(f"drain {outcome}: {stored:,} / {count:,} points {net:.2f} s after ingest was "
             f"ready ({stored / net:,.0f} msg/s); {from_start:.2f} s after process start")
    counter.close()
    return {
        "messages": count,
        "published_acked": acked,
        "publish_s": round(publish_s, 2),
        "outcome": outcome,
        "stored": stored,
        "lost": count - stored,
        "startup_s": round(startup, 3) if ready is not None else None,
        "seconds_from_start": round(from_start, 3),
        "seconds_from_ready": round(net, 3),
        "first_point_s": round(first_point - started, 3) if first_point else None,
        "msg_per_s": round(stored / net),
        "msg_per_s_incl_startup": round(stored / from_start) if from_start > 0 else None,
        "poll_interval_s": DRAIN_POLL_S,
        "completion": ("ingest's points_written counter reached N, polled every "
                       f"{DRAIN_POLL_S} s, then confirmed by SELECT count in InfluxDB"),
        "rejected": int(ingest.metric_sum("kota_ingest_rejected")),
        "buffered": int(ingest.metric_sum("kota_ingest_points_buffered")),
        "peak_rss_mb": {k: round(v / 1024, 1) for k, v in peaks.items()},
        **({"profile": profile} if profile is not None else {}),
        "cpu_s": _cpu_report({"ingest": ingest_cpu, "bench": bench_cpu,
                              **{k: cpu_after.get(k, 0.0) - v for k, v in cpu_before.items()}},
                             busy, from_start),
    }


def _cpu_report(used: dict[str, float], machine_busy: float, wall_s: float) -> dict[str, float]:
    """CPU seconds per process in a phase, the machine's total, and what was left: processes
    outside this benchmark (anything else running on the machine distorts the figures)."""
    report = {name: round(value, 2) for name, value in used.items()}
    report["machine_busy"] = round(machine_busy, 2)
    report["others"] = round(max(0.0, machine_busy - sum(used.values())), 2)
    report["machine_capacity"] = round(wall_s * (os.cpu_count() or 1), 2)
    return report


def _total(counter: InfluxCounter) -> int:
    return sum(counter.counts().values())


def _live_phase(config: BenchConfig, mosquitto: LocalService, influx: LocalService,
                ingest: IngestRunner, progress: Progress) -> dict[str, Any]:
    progress(f"live: {config.rate:,.0f} msg/s for {config.seconds:g} s while ingest runs")
    counter = InfluxCounter(influx.port, DATABASE, {k.name: k.count_field for k in KINDS})
    live_start_ms = time.time_ns() // 1_000_000
    publisher = LivePublisher(mosquitto.port, config.rate, config.seconds)
    tracker = LatencyTracker(counter, publisher.probe_ms, config.live_interval_s,
                             refresh=publisher.collect)
    service_pids = {"mosquitto": mosquitto.pid, "influxdb": influx.pid}
    cpu_before = {**_cpu(service_pids),
                  "ingest": sum(cpu_seconds(pid) or 0.0 for pid in ingest.pids()),
                  "bench": own_cpu_s()}
    busy_before, live_started = machine_busy_cpu_s(), time.perf_counter()
    publisher.start()
    tracker.run_until(time.monotonic() + config.seconds + 40, lambda: publisher.running)
    publisher.finish()
    cpu_after = {**_cpu(service_pids),
                 "ingest": sum(cpu_seconds(pid) or 0.0 for pid in ingest.pids()),
                 "bench": own_cpu_s()}
    busy, live_wall = machine_busy_cpu_s() - busy_before, time.perf_counter() - live_started
    stored = sum(counter.counts({k.name: live_start_ms for k in KINDS}).values())
    counter.close()
    latency = tracker.summary()
    achieved = publisher.sent / publisher.elapsed_s if publisher.elapsed_s else 0.0
    progress(f"live: sent {publisher.sent:,} at {achieved:,.0f} msg/s; {stored:,} stored; "
             f"latency p50 {latency['p50_ms']} ms, p99 {latency['p99_ms']} ms")
    return {
        "rate_target": config.rate,
        "seconds": config.seconds,
        "sent": publisher.sent,
        "acked_by_broker": publisher.acked,
        "achieved_rate": round(achieved),
        "pacer_behind_max": publisher.behind_max,
        "stored": stored,
        "lost": publisher.sent - stored,
        "probes": sum(len(times) for times in publisher.probe_ms),
        "latency": latency,
        "latency_method": (
            f"probe messages (1 device in {PROBE_EVERY}, city={PROBE_CITY}), count-based in "
            f"publish order: every {config.live_interval_s * 1000:.0f} ms, SELECT count per "
            "measurement WHERE city = probe AND time >= publish time of the oldest unseen "
            "probe; latency = poll answer time - publish time (payload ts, ms): an upper "
            "bound, resolution one poll interval + query time"),
        "cpu_s": _cpu_report({**{k: cpu_after.get(k, 0.0) - v for k, v in cpu_before.items()},
                              "publishers": publisher.cpu_s}, busy, live_wall),
    }


def _floor_phase(config: BenchConfig, mosquitto: LocalService, influx: LocalService,
                 drain: dict[str, Any], ingest_client_ids: list[str],
                 progress: Progress) -> dict[str, Any]:
    count = config.messages
    # The same backlog, queued the same way, on a broker that holds only this queue: ingest's
    # sessions are ended first, so their queues do not grow meanwhile.
    for client_id in ingest_client_ids:
        delete_session(mosquitto.port, client_id)
    create_session(mosquitto.port, FLOOR_CLIENT_ID)
    progress(f"floor 1: publishing the same {count:,} messages for a bare paho subscriber")
    base_ms = time.time_ns() // 1_000_000 - 3_600_000
    acked, publish_s = publish_backlog(mosquitto.port, count, base_ms, config.publishers,
                                       timeout_s=max(120.0, count / 500))
    progress(f"floor 1: {acked:,} acknowledged in {publish_s:.1f} s; draining")
    received, seconds = drain_bare_subscriber(mosquitto.port, FLOOR_CLIENT_ID, count,
                                              timeout_s=config.drain_timeout_s())
    mqtt_rate = received / seconds if seconds > 0 else 0.0
    progress(f"floor 1: {received:,} messages in {seconds:.2f} s ({mqtt_rate:,.0f} msg/s)")

    progress(f"floor 2: InfluxDB alone takes the same {count:,} points in "
             f"{FLOOR_BATCH_LINES:,}-line batches")
    parser = MessageParser()
    received_ms = time.time_ns() // 1_000_000
    base_ms = received_ms - 3_600_000
    lines: list[str] = []
    for topic, payload in backlog_messages(count, base_ms):
        lines.extend(parser.parse(topic, payload, received_ms).lines)
    bodies = ["\n".join(lines[i:i + FLOOR_BATCH_LINES]).encode()
              for i in range(0, len(lines), FLOOR_BATCH_LINES)]
    base = f"http://127.0.0.1:{influx.port}"
    with httpx.Client(timeout=60) as http:
        http.post(f"{base}/query", params={"q": f'CREATE DATABASE "{FLOOR_DATABASE}"'})
        started = time.perf_counter()
        for body in bodies:
            response = http.post(f"{base}/write", params={"db": FLOOR_DATABASE,
                                                          "precision": "ms"}, content=body)
            response.raise_for_status()
        influx_s = time.perf_counter() - started
    counter = InfluxCounter(influx.port, FLOOR_DATABASE, {k.name: k.count_field for k in KINDS})
    influx_stored = _total(counter)
    counter.close()
    influx_rate = len(lines) / influx_s if influx_s > 0 else 0.0
    progress(f"floor 2: {len(lines):,} points in {influx_s:.2f} s ({influx_rate:,.0f} points/s;"
             f" {influx_stored:,} queryable)")
    ingest_rate = drain.get("msg_per_s") or 0
    return {
        "mqtt_bare_subscriber": {"published_acked": acked, "received": received,
                                 "seconds": round(seconds, 3), "msg_per_s": round(mqtt_rate)},
        "influx_only": {"points": len(lines), "stored": influx_stored,
                        "batch_lines": FLOOR_BATCH_LINES, "seconds": round(influx_s, 3),
                        "points_per_s": round(influx_rate)},
        "ingest_vs_mqtt_floor": round(ingest_rate / mqtt_rate, 3) if mqtt_rate else None,
        "ingest_vs_influx_floor": round(ingest_rate / influx_rate, 3) if influx_rate else None,
    }
