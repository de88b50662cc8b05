"""``kota bench alerts``: publish → alert committed → delivered to a local webhook, under load.

One run starts, in a temporary folder on loopback: Mosquitto, InfluxDB (devstack.localstack),
``kota ingest``, ``kota indicators``, ``kota alerts`` (SQLite, or PostgreSQL with
``--database postgresql``), a webhook receiver in this process and the floor's bare subscriber.
Then, for ``duration_s``:

* background: ``rate`` ordinary readings per second (air, water, noise of 1,500 devices that are
  not in the registry; ingest.bench.mqttload's paced publishers, one process per kind);
* probes, every ``probe_every_s``: a panic press (a fresh incident id) and a threshold crossing
  (a registry gauge from Normal to Siaga 2, back to Normal twice so flood-siaga resolves and can
  fire again; gauges take turns), and a floor probe on a topic only the bare subscriber reads.

Per probe: publish time (taken just before publish) → commit time (the JSON log line kota alerts
writes right after the transaction committed) → arrival at the receiver. Every process started
here is stopped by its PID at the end.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import paho.mqtt.client as mqtt

from alerts.bench.procs import (
    REGISTRY,
    Arrival,
    Commit,
    FloorSubscriber,
    ServiceProcess,
    WebhookReceiver,
    bench_rules,
    commit_times,
    metric,
    start_floor_subscriber,
)
from devstack.localstack import (
    LocalService,
    free_port,
    in_workdir,
    start_influxdb,
    start_mosquitto,
    start_postgres,
)
from ingest.bench.latency import percentile
from ingest.bench.mqttload import LivePublisher
from ingest.bench.procs import (
    IngestRunner,
    cpu_seconds,
    machine_busy_cpu_s,
    machine_facts,
    own_cpu_s,
    peak_rss_kb,
)
from ingest.bench.profile import PySpy, top_functions

__all__ = ["AlertsBenchConfig", "run_alerts_bench", "summary"]

Progress = Callable[[str], None]

DATABASE = "kota_bench_alerts"
TARGET_P99_S = 5.0  # issue 11: p99 ≤ 5 s for a panic press and a threshold crossing
FLOOR_TOPIC = "kota-bench/floor"  # outside kota/+/+/+: only the bare subscriber reads it
PANIC_TOPIC = "kota/jakarta/safety/panic-bench"
# Registry gauges that report level_cm (kota/standards/gauges.yaml): a level in the Siaga 2
# band (the probe's number is added to its start) and a Normal level.
GAUGES: tuple[tuple[str, str, float, float], ...] = (
    ("water-manggarai", "manggarai", 860.0, 600.0),   # Siaga 2 from 850, Siaga 1 from 950
    ("water-pulo-gadung", "pulo_gadung", 710.0, 400.0),  # Siaga 2 from 700, no Siaga 1
)
LEVEL_SPREAD = 80  # probe n's level is start + n % 80: its delivery is found by level_cm
NORMAL_AFTER_S = (1.5, 3.0)  # the Normal readings after a crossing (flood-siaga resolves)


@dataclass
class AlertsBenchConfig:
    rate: float = 10_000
    duration_s: float = 60
    probe_every_s: float = 5.0
    database: str = "sqlite"  # or "postgresql"
    grace_s: float = 60.0  # after the load, wait at most this for the last deliveries
    clear_after_s: float = 1.0  # flood-siaga's, so a gauge crosses again seconds later
    workdir: Path | None = None
    profile_dir: Path | None = None  # py-spy on kota alerts during the load


@dataclass
class _Probe:
    kind: str  # panic | crossing | floor
    number: int
    scope: str  # incident id, gauge id or floor key
    sent_s: float
    level_cm: float | None = None


def _quiet(_message: str) -> None:
    pass


def run_alerts_bench(config: AlertsBenchConfig, progress: Progress = _quiet) -> dict[str, Any]:
    return in_workdir(config.workdir, "kota-bench-alerts-",
                      lambda folder: _run(config, folder, progress))


def _run(config: AlertsBenchConfig, workdir: Path, progress: Progress) -> dict[str, Any]:
    result: dict[str, Any] = {
        "benchmark": "alerts", "machine": machine_facts(),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}}
    services: list[LocalService] = []
    processes: list[ServiceProcess] = []
    ingest: IngestRunner | None = None
    receiver = WebhookReceiver().start()
    floor: FloorSubscriber | None = None
    try:
        postgres_text = ", PostgreSQL" if config.database != "sqlite" else ""
        progress(f"starting Mosquitto, InfluxDB{postgres_text} in {workdir}")
        mosquitto = start_mosquitto(workdir / "mosquitto")
        services.append(mosquitto)
        influx = start_influxdb(workdir / "influxdb")
        services.append(influx)
        if config.database == "sqlite":
            database_url = f"sqlite:///{workdir / 'alerts' / 'kota.db'}"
        else:
            postgres = start_postgres(workdir / "postgres")
            services.append(postgres)
            database_url = postgres.url
        progress("starting kota ingest, kota indicators, kota alerts")
        ingest = IngestRunner(workdir / "ingest", mosquitto.port, influx.port, DATABASE).start()
        indicators = ServiceProcess("indicators", workdir / "indicators", "indicators", {
            "influx": {"url": f"http://127.0.0.1:{influx.port}", "database": DATABASE},
            "registry_file": str(REGISTRY), "metrics_port": 0}, ["indicators"])
        processes.append(indicators.start())
        alerts_port = free_port()
        alerts = ServiceProcess("alerts", workdir / "alerts", "alerts", {
            "registry_file": str(REGISTRY),
            "rules_file": str(bench_rules(workdir / "rules.yaml", config.clear_after_s)),
            "database": {"url": database_url},
            "mqtt": {"port": mosquitto.port, "client_id": "kota-bench-alerts"},
            "influx": {"url": f"http://127.0.0.1:{influx.port}", "database": DATABASE},
            "metrics_port": alerts_port, "log_format": "json",
            "channels": [{"type": "webhook", "name": "bench", "url": receiver.url,
                          "secret": uuid.uuid4().hex}],
        }, ["alerts"])
        processes.append(alerts.start("connected to MQTT", timeout_s=60))
        floor = start_floor_subscriber(mosquitto.port, f"{FLOOR_TOPIC}/+", receiver.url,
                                       config.duration_s + config.grace_s + 120)
        # PostgreSQL's CPU is in "others": its work is done by backends the server forks.
        pids = {"mosquitto": mosquitto.pid, "influxdb": influx.pid, "ingest": ingest.pid,
                "indicators": indicators.pid, "alerts": alerts.pid}
        result.update(_measure(config, workdir, mosquitto.port, receiver, ingest, alerts,
                               alerts_port, {k: v for k, v in pids.items() if v}, progress))
        result["services_alive_at_end"] = {
            "ingest": ingest.exited() is None, "indicators": indicators.exited() is None,
            "alerts": alerts.exited() is None}
    finally:
        if floor is not None:
            floor.stop()
        for process in reversed(processes):
            process.stop()
        if ingest is not None:
            ingest.stop()
        for service in reversed(services):
            service.stop()
        receiver.stop()
    result["targets"] = _targets(result)
    return result


def _measure(config: AlertsBenchConfig, workdir: Path, port: int, receiver: WebhookReceiver,
             ingest: IngestRunner, alerts: ServiceProcess, alerts_port: int,
             pids: dict[str, int], progress: Progress) -> dict[str, Any]:
    assert alerts.pid is not None
    http = httpx.Client(timeout=2)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="kota-bench-probes",
                         protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port, keepalive=30)
    client.loop_start()
    probes: list[_Probe] = []
    skipped = 0
    crossings = {gauge: 0 for _device, gauge, _high, _normal in GAUGES}
    later: list[tuple[float, str, dict[str, Any]]] = []  # (due, topic, payload)
    spy: PySpy | None = None
    try:
        readings_before = metric(alerts_port, "kota_alerts_readings", http) or 0.0
        cpu_before = {name: cpu_seconds(pid) or 0.0 for name, pid in pids.items()}
        busy_before, own_before, wall_before = machine_busy_cpu_s(), own_cpu_s(), time.monotonic()
        load = LivePublisher(port, config.rate, config.duration_s).start()
        load_start = time.monotonic() + 1.5  # LivePublisher starts 1.5 s from now
        if config.profile_dir is not None:
            config.profile_dir.mkdir(parents=True, exist_ok=True)
            spy = PySpy(alerts.pid, config.profile_dir / "alerts.raw")
            # Without it py-spy pauses kota alerts for every sample (200 a second), which
            # would add to the very latencies measured.
            spy.command.append("--nonblocking")
            spy.start()
        progress(f"load: {config.rate:,.0f} readings/s for {config.duration_s:g} s; a panic "
                 f"press and a Siaga crossing every {config.probe_every_s:g} s")
        # Probes from 3 s into the load (the publishers are up to pace) until its end.
        next_probe = load_start + 3.0
        load_end = load_start + config.duration_s
        next_report = time.monotonic() + 5
        number = 0
        while time.monotonic() < load_end:  # bounded by the load's duration
            now = time.monotonic()
            for item in [entry for entry in later if entry[0] <= now]:
                later.remove(item)
                _publish(client, item[1], {**item[2], "ts": time.time()})
            if now >= next_probe:
                skipped += _probe_round(client, number, probes, crossings, later, receiver)
                number += 1
                next_probe += config.probe_every_s
            if now >= next_report:
                delivered = _delivered_count(probes, receiver.snapshot())
                rate = metric(alerts_port, "kota_alerts_readings", http)
                progress(f"{now - load_start:5.0f} s: {len(probes)} probes sent, {delivered} "
                         f"delivered; kota alerts evaluated "
                         f"{(rate or 0) - readings_before:,.0f} readings")
                next_report += 5
            time.sleep(0.01)
        for due, topic, payload in sorted(later, key=lambda entry: entry[0]):
            time.sleep(max(0.0, due - time.monotonic()))
            _publish(client, topic, {**payload, "ts": time.time()})
        progress("load over; waiting for the last deliveries")
        deadline = time.monotonic() + config.grace_s
        while time.monotonic() < deadline:  # bounded by grace_s
            if _delivered_count(probes, receiver.snapshot()) >= len(probes):
                break
            time.sleep(0.1)
        load.finish()
        cpu = {name: round((cpu_seconds(pid) or 0.0) - cpu_before[name], 1)
               for name, pid in pids.items()}
        cpu["publishers"] = round(load.cpu_s, 1)
        cpu["bench"] = round(own_cpu_s() - own_before, 1)
        wall_s = time.monotonic() - wall_before
        busy = machine_busy_cpu_s() - busy_before
        cpu["others"] = round(max(0.0, busy - sum(cpu.values())), 1)
        readings_after = metric(alerts_port, "kota_alerts_readings", http) or 0.0
        rss_kb = peak_rss_kb(alerts.pid)
        ingest_written = ingest.metric_sum("kota_ingest_points_written")
    finally:
        client.disconnect()
        client.loop_stop()
        http.close()
        profile = None
        if spy is not None:
            raw = spy.stop()
            profile = top_functions(raw) if raw is not None else None
    time.sleep(0.5)  # the last log lines
    figures = _figures(probes, receiver.snapshot(), commit_times(alerts.log_path))
    return {
        "background": {"sent": load.sent, "acked_by_broker": load.acked,
                       "elapsed_s": round(load.elapsed_s, 2),
                       "achieved_rate": round(load.sent / load.elapsed_s, 1)
                       if load.elapsed_s else 0.0,
                       "publisher_cpu_s": round(load.cpu_s, 1),
                       "ingest_points_written": int(ingest_written),
                       "alerts_readings_evaluated": int(readings_after - readings_before)},
        "probes": figures,
        # CPU seconds from the load's start to the last delivery (or grace_s); "others": what
        # processes outside the benchmark used meanwhile (the machine is not ours alone).
        "cpu_s": cpu, "cpu_wall_s": round(wall_s, 1),
        "machine_capacity_cpu_s": round(wall_s * (os.cpu_count() or 1), 1),
        "skipped_crossings": skipped,
        "alerts_peak_rss_mb": round(rss_kb / 1024, 1) if rss_kb else None,
        "profile": profile,
        "workdir": str(workdir) if config.workdir is not None else None,
    }


def _publish(client: mqtt.Client, topic: str, payload: dict[str, Any]) -> None:
    client.publish(topic, orjson.dumps(payload), qos=1)


def _probe_round(client: mqtt.Client, number: int, probes: list[_Probe],
                 crossings: dict[str, int], later: list[tuple[float, str, dict[str, Any]]],
                 receiver: WebhookReceiver) -> int:
    """One panic press, one floor probe, and one crossing unless the gauge's last alert has not
    resolved yet (then it would be no crossing). Returns 1 when the crossing was skipped."""
    now = time.monotonic()
    incident = f"bench-{number:04d}-{uuid.uuid4().hex[:6]}"
    probes.append(_Probe("panic", number, incident, time.time()))
    _publish(client, PANIC_TOPIC, {"ts": time.time(), "event": "panic",
                                   "incident_id": incident, "message": "bench"})
    later.append((now + NORMAL_AFTER_S[0], PANIC_TOPIC,
                  {"event": "resolved", "incident_id": incident}))
    key = f"floor-{number:04d}"
    probes.append(_Probe("floor", number, key, time.time()))
    _publish(client, f"{FLOOR_TOPIC}/{number}", {"probe": key, "sent": time.time()})
    device, gauge, high_cm, normal_cm = GAUGES[number % len(GAUGES)]
    arrivals = receiver.snapshot()
    resolved = sum(1 for a in arrivals if a.rule_id == "flood-siaga" and a.scope == gauge
                   and a.msg_type == "Cancel")
    if resolved < crossings[gauge]:
        return 1
    crossings[gauge] += 1
    level = high_cm + number % LEVEL_SPREAD
    topic = f"kota/jakarta/water/{device}"
    probes.append(_Probe("crossing", number, gauge, time.time(), level))
    _publish(client, topic, {"ts": time.time(), "level_cm": level})
    for after_s in NORMAL_AFTER_S:
        later.append((now + after_s, topic, {"level_cm": normal_cm}))
    return 0


def _arrival_for(probe: _Probe, arrivals: list[Arrival]) -> Arrival | None:
    for arrival in arrivals:
        if arrival.at_s < probe.sent_s - 1:
            continue
        if probe.kind == "floor" and arrival.key == probe.scope:
            return arrival
        if (probe.kind == "panic" and arrival.rule_id == "safety-event"
                and arrival.scope == probe.scope and arrival.msg_type == "Alert"):
            return arrival
        if (probe.kind == "crossing" and arrival.rule_id == "flood-siaga"
                and arrival.scope == probe.scope and arrival.msg_type == "Alert"
                and arrival.level_cm == round(probe.level_cm or 0)):
            return arrival
    return None


def _delivered_count(probes: list[_Probe], arrivals: list[Arrival]) -> int:
    return sum(1 for probe in probes if _arrival_for(probe, arrivals) is not None)


def _commit_for(probe: _Probe, commits: list[Commit], used: set[int]) -> Commit | None:
    rule = {"panic": "safety-event", "crossing": "flood-siaga"}.get(probe.kind)
    for index, commit in enumerate(commits):
        if (index not in used and commit.rule_id == rule and commit.scope == probe.scope
                and commit.event == "fired" and commit.at_s >= probe.sent_s - 0.01):
            used.add(index)
            return commit
    return None


def _stats(values_s: list[float]) -> dict[str, Any]:
    ordered = sorted(values_s)

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 1)

    return {"samples": len(ordered), "p50_ms": ms(percentile(ordered, 0.50)),
            "p95_ms": ms(percentile(ordered, 0.95)), "p99_ms": ms(percentile(ordered, 0.99)),
            "max_ms": ms(ordered[-1] if ordered else None)}


def _figures(probes: list[_Probe], arrivals: list[Arrival],
             commits: list[Commit]) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    used: set[int] = set()
    detail: list[dict[str, Any]] = []  # per probe, ms after its publish (None: never)
    for kind in ("panic", "crossing", "floor"):
        chosen = [probe for probe in probes if probe.kind == kind]
        delivered, committed, to_commit, commit_to_hook = [], [], [], []
        for probe in chosen:
            arrival = _arrival_for(probe, arrivals)
            commit = _commit_for(probe, commits, used) if kind != "floor" else None
            detail.append({
                "kind": kind, "number": probe.number, "scope": probe.scope,
                "commit_ms": None if commit is None
                else round((commit.at_s - probe.sent_s) * 1000, 1),
                "webhook_ms": None if arrival is None
                else round((arrival.at_s - probe.sent_s) * 1000, 1)})
            if arrival is not None:
                delivered.append(arrival.at_s - probe.sent_s)
            if commit is not None:
                committed.append(probe)
                to_commit.append(commit.at_s - probe.sent_s)
                if arrival is not None:
                    commit_to_hook.append(arrival.at_s - commit.at_s)
        entry: dict[str, Any] = {"sent": len(chosen), "delivered": len(delivered),
                                 "publish_to_webhook": _stats(delivered)}
        if kind != "floor":
            entry.update({"committed": len(committed), "publish_to_commit": _stats(to_commit),
                          "commit_to_webhook": _stats(commit_to_hook)})
        figures[kind] = entry
    figures["detail"] = sorted(detail, key=lambda item: (item["number"], item["kind"]))
    keys = [arrival.key for arrival in arrivals]
    figures["duplicate_deliveries"] = len(keys) - len(set(keys))
    return figures


def _targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    targets = []
    for kind, name in (("panic", "panic press"), ("crossing", "threshold crossing")):
        entry = (result.get("probes") or {}).get(kind) or {}
        p99 = (entry.get("publish_to_webhook") or {}).get("p99_ms")
        complete = entry.get("sent", 0) > 0 and entry.get("delivered") == entry.get("sent")
        met = p99 is not None and p99 <= TARGET_P99_S * 1000 and complete
        targets.append({"id": f"{kind}_p99", "target": f"{name}: publish → webhook p99 ≤ "
                        f"{TARGET_P99_S:g} s, every probe delivered",
                        "measured_ms": p99, "result": "PASS" if met else "MISS"})
    return targets


def summary(result: dict[str, Any]) -> str:
    """The figures beside the floor, one line per probe kind, and the summary line."""
    probes = result.get("probes") or {}
    background = result.get("background") or {}
    lines = [f"{'probe':<10} {'delivered':>11} {'p50':>9} {'p95':>9} {'p99':>9} {'max':>9}  "
             f"(publish → webhook, ms; commit: publish → committed p50/p99)"]
    for kind in ("panic", "crossing", "floor"):
        entry = probes.get(kind)
        if not entry:
            continue
        hook = entry["publish_to_webhook"]
        line = (f"{kind:<10} {entry['delivered']:>5} / {entry['sent']:<4}"
                + "".join(f" {_ms(hook[key]):>9}" for key in ("p50_ms", "p95_ms", "p99_ms",
                                                               "max_ms")))
        if "publish_to_commit" in entry:
            commit = entry["publish_to_commit"]
            line += f"  commit {_ms(commit['p50_ms'])}/{_ms(commit['p99_ms'])}"
        lines.append(line)
    lines.append(f"background: {background.get('achieved_rate', 0):,.0f} readings/s achieved "
                 f"({background.get('sent', 0):,} sent); kota alerts evaluated "
                 f"{background.get('alerts_readings_evaluated', 0):,}; peak RSS of kota alerts "
                 f"{result.get('alerts_peak_rss_mb')} MB; crossings skipped (gauge not yet "
                 f"resolved): {result.get('skipped_crossings', 0)}")
    cpu = result.get("cpu_s") or {}
    if cpu:
        lines.append(f"CPU s over {result.get('cpu_wall_s')} s (capacity "
                     f"{result.get('machine_capacity_cpu_s')}): "
                     + ", ".join(f"{k} {v}" for k, v in cpu.items()))
    verdicts = ", ".join(f"{t['id']} {_ms(t['measured_ms'])} ms {t['result']}"
                         for t in result.get("targets", []))
    floor = (probes.get("floor") or {}).get("publish_to_webhook", {}).get("p99_ms")
    lines.append(f"kota bench alerts: {verdicts} (target p99 ≤ {TARGET_P99_S:g} s); floor p99 "
                 f"{_ms(floor)} ms")
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"
