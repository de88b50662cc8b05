"""``kota bench api``: the public reads and the live stream on a flood day (issue 14).

One run starts, in a temporary folder on loopback: Mosquitto and InfluxDB
(devstack.localstack), ``kota ingest`` and ``kota indicators``, ``kota simulate`` feeding them
(the past hour of the Jakarta registry as fast as it goes, then real time), ``kota api
--workers N`` and the floor: a bare FastAPI/uvicorn app (same workers) answering the bytes the
API gave for ``/api/v1/readings/latest``. Then:

* reads: ``wrk -t2 -c200 -d20s --latency`` against each public read and the floor, in turn;
* live: C concurrent stream clients (asyncio, one separate process; wrk cannot read
  server-sent events) held for a while, a probe reading published over MQTT every second;
  each client records when the probe's ``readings`` event arrived (publish → delivered), and
  the API's resident memory (all its processes) is read meanwhile.

Exit code 0 whether or not the targets are met: a measurement, not a test. Every process
started here is stopped by its PID; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click
import httpx
import orjson
import paho.mqtt.client as mqtt

__all__ = ["ApiBenchConfig", "api", "floor_app", "run_api_bench"]

Progress = Callable[[str], None]
DATABASE = "kota_bench_api"
READS = ("/api/v1/readings/latest", "/api/v1/indicators/ispu", "/api/v1/indicators/siaga",
         "/api/v1/devices")
STREAM = "/api/v1/stream?kind=air&kind=water&kind=rain&kind=noise&kind=safety"  # the page's
PROBE_DEVICE = "water-benchprobe"  # not in the registry: only the probes report as it
# Issue 14's targets on a 2-core machine with the whole stack running.
TARGET_FLOOR_SHARE = 0.5
TARGET_P99_MS = 250.0
TARGET_STREAMS = 2000
TARGET_RSS_MB = 300.0
TARGET_DELIVERY_P99_S = 2.0
FLOOR_BODY_ENV = "KOTA_BENCH_FLOOR_BODY"


@dataclass
class ApiBenchConfig:
    workers: int = os.cpu_count() or 1
    connections: int = 200
    threads: int = 2
    seconds: float = 20
    streams: int = TARGET_STREAMS
    hold_s: float = 30
    snapshot_interval_s: float = 1.0
    workdir: Path | None = None


# -- the floor -------------------------------------------------------------------------------
def floor_app() -> Any:
    """A bare FastAPI app answering one file's bytes at every GET (uvicorn factory)."""
    from fastapi import FastAPI
    from fastapi.responses import Response

    body = Path(os.environ[FLOOR_BODY_ENV]).read_bytes()
    app = FastAPI()

    @app.get("/{path:path}")
    async def same_bytes(path: str) -> Response:
        return Response(body, media_type="application/json")

    return app


# -- wrk -------------------------------------------------------------------------------------
_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if match is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return round(float(match.group(1)) * _UNITS_MS[match.group(2)], 2)


def parse_wrk(output: str) -> dict[str, Any]:
    """Requests/s, latency percentiles (ms), errors and non-2xx/3xx answers from wrk
    --latency."""
    result: dict[str, Any] = {"requests_per_s": None, "errors": 0, "non_2xx_3xx": 0}
    for percent, value in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", output, re.M):
        result[f"p{percent}_ms"] = _ms(value)
    if found := re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M):
        result["requests_per_s"] = float(found.group(1))
    if found := re.search(r"^\s+(\d+) requests in", output, re.M):
        result["requests"] = int(found.group(1))
    if found := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                          output):
        result["errors"] = sum(int(n) for n in found.groups())
    if found := re.search(r"Non-2xx or 3xx responses: (\d+)", output):
        result["non_2xx_3xx"] = int(found.group(1))
    return result


def run_wrk(url: str, config: ApiBenchConfig) -> dict[str, Any]:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise click.ClickException("wrk is not installed: scripts/install-services.sh bench "
                                   "(Debian package wrk)")
    done = subprocess.run([wrk, f"-t{config.threads}", f"-c{config.connections}",
                           f"-d{config.seconds:g}s", "--latency", url], capture_output=True,
                          text=True, timeout=config.seconds + 60, check=False)
    return {"url": url, **parse_wrk(done.stdout)}


# -- processes -------------------------------------------------------------------------------
def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (uvicorn's workers)."""
    found: list[int] = []
    queue = [pid]
    while queue and len(found) < 256:  # bounded
        current = queue.pop()
        found.append(current)
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        queue.extend(int(child) for child in children)
    return found


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its descendants, MB."""
    total_kb = 0
    for member in _tree(pid):
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except OSError:
            continue
    return round(total_kb / 1024, 1)


def _wait_http(url: str, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:  # bounded by timeout_s
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout_s:.0f} s")


# -- live-stream clients (a separate process) -------------------------------------------------
async def _client(number: int, port: int, deliveries: list[tuple[int, int, float]],
                  connected: list[int], stop: asyncio.Event) -> None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 24)
    except OSError:
        return
    writer.write(f"GET {STREAM} HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n"
                 .encode())
    status = await reader.readline()
    if b" 200 " not in status:
        writer.close()
        return
    connected[0] += 1
    deliveries.append((number, 0, 0.0))  # connected: probe 0 marks it (no probe is 0)
    event = b""
    try:
        while not stop.is_set():
            line = await reader.readline()
            if not line:
                break
            if line.startswith(b"event: "):
                event = line[7:].strip()
            elif (line.startswith(b"data: ") and event == b"readings"
                  and PROBE_DEVICE.encode() in line):
                arrived = time.time()
                for reading in orjson.loads(line[6:])["readings"]:
                    if reading["device"] == PROBE_DEVICE:
                        deliveries.append((number, int(reading["fields"]["level_cm"]),
                                           arrived))
    except (OSError, ValueError, asyncio.LimitOverrunError):
        pass
    finally:
        connected[0] -= 1
        writer.close()


def _clients_main(port: int, count: int, hold_s: float, ready: Any, out: Any) -> None:
    async def main() -> None:
        deliveries: list[tuple[int, int, float]] = []
        connected = [0]
        stop = asyncio.Event()
        tasks = []
        for start in range(0, count, 100):  # 100 connections every 50 ms
            tasks += [asyncio.create_task(_client(start + k, port, deliveries, connected,
                                                  stop))
                      for k in range(min(100, count - start))]
            await asyncio.sleep(0.05)
        deadline = time.monotonic() + 60
        while connected[0] < count and time.monotonic() < deadline:  # bounded
            await asyncio.sleep(0.2)
        ready.send(connected[0])
        await asyncio.sleep(hold_s)
        held = connected[0]
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        out.send({"held": held, "deliveries": deliveries})

    asyncio.run(main())


def measure_streams(api_pid: int, port: int, mqtt_port: int, config: ApiBenchConfig,
                    progress: Progress) -> dict[str, Any]:
    ready_recv, ready_send = multiprocessing.Pipe(duplex=False)
    out_recv, out_send = multiprocessing.Pipe(duplex=False)
    clients = multiprocessing.get_context("spawn").Process(
        target=_clients_main, args=(port, config.streams, config.hold_s, ready_send, out_send),
        name="kota-bench-sse", daemon=True)
    clients.start()
    result: dict[str, Any] = {"clients": config.streams}
    try:
        if not ready_recv.poll(120):
            raise TimeoutError("the stream clients did not connect within 120 s")
        result["connected"] = ready_recv.recv()
        progress(f"live: {result['connected']:,} streams open; a probe reading every second "
                 f"for {config.hold_s:g} s")
        publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="kota-bench-probe")
        publisher.connect("127.0.0.1", mqtt_port)
        publisher.loop_start()
        sent: dict[int, float] = {}
        peak = 0.0
        started = time.monotonic()
        number = 0
        while time.monotonic() - started < config.hold_s - 3:  # bounded by hold_s
            number += 1
            sent[number] = time.time()
            publisher.publish(f"kota/jakarta/water/{PROBE_DEVICE}",
                              orjson.dumps({"ts": sent[number], "level_cm": float(number)}),
                              qos=1)
            peak = max(peak, rss_mb(api_pid))
            time.sleep(1.0)
        publisher.loop_stop()
        publisher.disconnect()
        if not out_recv.poll(config.hold_s + 60):
            raise TimeoutError("the stream clients did not report")
        report = out_recv.recv()
    finally:
        clients.join(30)
        if clients.is_alive():
            clients.terminate()
    latencies, missed = _delivery_latencies(report["deliveries"], sent)
    result.update({
        "held_to_end": report["held"], "probes": len(sent),
        "probe_deliveries": len(latencies),
        "missed": missed, "api_rss_mb_peak": peak, **_percentiles(latencies)})
    return result


def _delivery_latencies(deliveries: list[tuple[int, int, float]], sent: dict[int, float]
                        ) -> tuple[list[float], int]:
    """Per client and probe: from its publish until the client held that probe's value or a
    newer one (the stream sends each device's latest reading: a probe superseded within one
    refresh arrives as the next one). The last probe may still be on its way when the clients
    stop: it is not counted as missed."""
    by_client: dict[int, list[tuple[float, int]]] = {}
    for client, probe, arrived in deliveries:
        arrivals = by_client.setdefault(client, [])
        if probe:  # 0: the client's connect mark
            arrivals.append((arrived, probe))
    latencies: list[float] = []
    missed = 0
    last = max(sent, default=0)
    for arrivals in by_client.values():
        arrivals.sort()
        for probe, sent_at in sent.items():
            first = next((at for at, seen in arrivals if seen >= probe), None)
            if first is not None:
                latencies.append(first - sent_at)
            elif probe != last:
                missed += 1
    return sorted(latencies), missed


def _percentiles(values_s: list[float]) -> dict[str, float | None]:
    from ingest.bench.latency import percentile

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 1)

    return {"p50_ms": ms(percentile(values_s, 0.5)), "p99_ms": ms(percentile(values_s, 0.99)),
            "max_ms": ms(values_s[-1] if values_s else None)}


# -- one run ---------------------------------------------------------------------------------
def _quiet(_message: str) -> None:
    pass


def run_api_bench(config: ApiBenchConfig, progress: Progress = _quiet) -> dict[str, Any]:
    from devstack.localstack import in_workdir

    return in_workdir(config.workdir, "kota-bench-api-",
                      lambda folder: _run(config, folder, progress))


def _run(config: ApiBenchConfig, workdir: Path, progress: Progress) -> dict[str, Any]:
    from alerts.bench.procs import REGISTRY, ServiceProcess
    from devstack.localstack import (
        LocalService,
        free_port,
        start_influxdb,
        start_mosquitto,
        stop_process,
    )
    from ingest.bench.procs import IngestRunner, machine_facts

    result: dict[str, Any] = {
        "benchmark": "api", "machine": machine_facts(),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}}
    services: list[LocalService] = []
    processes: list[ServiceProcess] = []
    ingest: IngestRunner | None = None
    floor: subprocess.Popen[bytes] | None = None
    try:
        progress(f"starting Mosquitto, InfluxDB, kota ingest, kota indicators in {workdir}")
        mosquitto = start_mosquitto(workdir / "mosquitto")
        services.append(mosquitto)
        influx = start_influxdb(workdir / "influxdb")
        services.append(influx)
        influx_settings = {"url": f"http://127.0.0.1:{influx.port}", "database": DATABASE}
        ingest = IngestRunner(workdir / "ingest", mosquitto.port, influx.port, DATABASE,
                              registry_file=str(REGISTRY)).start()
        processes.append(ServiceProcess("indicators", workdir / "indicators", "indicators", {
            "influx": influx_settings, "registry_file": str(REGISTRY), "metrics_port": 0},
            ["indicators"]).start())
        # The past hour first, as fast as it goes, so every device has a latest reading (in
        # real time most report every 5-15 minutes); then real time from now on.
        progress("kota simulate: the past hour of the Jakarta registry, then real time")
        backfill = ServiceProcess("backfill", workdir / "backfill", "simulate", {
            "mqtt": {"port": mosquitto.port, "client_id": "kota-bench-backfill"}},
            ["simulate", "--speed", "0", "--duration", "1h"]).start()
        deadline = time.monotonic() + 180
        while backfill.exited() is None and time.monotonic() < deadline:  # bounded
            time.sleep(0.5)
        backfill.stop()
        processes.append(ServiceProcess("simulate", workdir / "simulate", "simulate", {
            "mqtt": {"port": mosquitto.port}},
            ["simulate", "--speed", "1", "--duration", "12h"]).start())
        port = free_port()
        api = ServiceProcess("api", workdir / "api", "api", {
            "influx": influx_settings, "registry_file": str(REGISTRY), "port": port,
            "log_level": "warning", "snapshot_interval_s": config.snapshot_interval_s,
            "sse_max_clients": 10_000, "sse_max_clients_per_client": 10_000,
            "sse_max_duration_s": 3600,
            "database": {"url": f"sqlite:///{workdir / 'api' / 'kota.db'}",
                         "migrate_on_start": True}},
            ["api", "--workers", str(config.workers)])
        processes.append(api.start())
        assert api.process is not None
        base = f"http://127.0.0.1:{port}"
        _wait_http(f"{base}/healthz", api.process, 60)
        progress(f"kota api --workers {config.workers} on {base}; waiting for the simulated "
                 "devices' first reports")
        deadline = time.monotonic() + 90
        counts = [0]
        while time.monotonic() < deadline:  # bounded: until the count holds for 3 polls
            if api.exited() is not None:
                raise RuntimeError(f"kota api exited; log {api.log_path}:\n{api.log()[-3000:]}")
            try:
                counts.append(httpx.get(f"{base}/api/v1/readings/latest",
                                        timeout=10).json()["count"])
            except httpx.HTTPError as exc:
                progress(f"kota api: {exc}")
            if counts[-1] > 0 and counts[-3:] == [counts[-1]] * 3:
                break
            time.sleep(3)
        count = counts[-1]
        body = httpx.get(f"{base}/api/v1/readings/latest", timeout=10).content
        result["latest_readings"] = count
        result["latest_bytes"] = len(body)
        (workdir / "floor.json").write_bytes(body)
        floor_port = free_port()
        env = {**os.environ, FLOOR_BODY_ENV: str(workdir / "floor.json")}
        floor_log = (workdir / "floor.log").open("ab")
        floor = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.bench:floor_app", "--factory",
             "--workers", str(config.workers), "--port", str(floor_port), "--log-level",
             "warning", "--no-access-log"], env=env, stdout=floor_log,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        floor_log.close()
        _wait_http(f"http://127.0.0.1:{floor_port}/", floor, 60)
        reads: dict[str, Any] = {}
        for path in (*READS, "floor"):
            url = f"http://127.0.0.1:{floor_port}/" if path == "floor" else base + path
            progress(f"wrk -t{config.threads} -c{config.connections} -d{config.seconds:g}s "
                     f"{url}")
            reads[path] = run_wrk(url, config)
            reads[path]["api_rss_mb"] = rss_mb(api.process.pid)
        result["reads"] = reads
        stop_process(floor)
        floor = None
        if config.streams:
            result["streams"] = measure_streams(api.process.pid, port, mosquitto.port,
                                                config, progress)
        result["services_alive_at_end"] = {p.name: p.exited() is None for p in processes}
    finally:
        stop_process(floor)
        for process in reversed(processes):
            process.stop()
        if ingest is not None:
            ingest.stop()
        for service in reversed(services):
            service.stop()
    result["targets"] = targets(result)
    return result


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    reads = result.get("reads") or {}
    floor_rps = (reads.get("floor") or {}).get("requests_per_s") or 0.0
    out = []
    for path in READS:
        entry = reads.get(path) or {}
        rps, p99 = entry.get("requests_per_s") or 0.0, entry.get("p99_ms")
        share = rps / floor_rps if floor_rps else 0.0
        clean = entry.get("errors", 1) == 0 and entry.get("non_2xx_3xx", 1) == 0
        met = share >= TARGET_FLOOR_SHARE and p99 is not None and p99 <= TARGET_P99_MS and clean
        out.append({"id": path, "target": f"≥ {TARGET_FLOOR_SHARE:.0%} of the floor's req/s, "
                    f"p99 ≤ {TARGET_P99_MS:g} ms, no errors", "requests_per_s": rps,
                    "floor_share": round(share, 2), "p99_ms": p99,
                    "result": "PASS" if met else "MISS"})
    streams = result.get("streams")
    if streams:
        met = (streams.get("held_to_end", 0) >= TARGET_STREAMS
               and (streams.get("api_rss_mb_peak") or 1e9) <= TARGET_RSS_MB
               and (streams.get("p99_ms") or 1e9) <= TARGET_DELIVERY_P99_S * 1000
               and streams.get("missed", 1) == 0)
        out.append({"id": "streams", "target": f"{TARGET_STREAMS:,} streams held, RSS ≤ "
                    f"{TARGET_RSS_MB:g} MB, every update within {TARGET_DELIVERY_P99_S:g} s p99",
                    "held": streams.get("held_to_end"), "rss_mb": streams.get("api_rss_mb_peak"),
                    "p99_ms": streams.get("p99_ms"), "missed": streams.get("missed"),
                    "result": "PASS" if met else "MISS"})
    return out


def summary(result: dict[str, Any]) -> str:
    lines = [f"{'read':<28} {'req/s':>9} {'p50':>8} {'p90':>8} {'p99':>8} {'errors':>7} "
             f"{'floor':>6}  (ms)"]
    reads = result.get("reads") or {}
    floor_rps = (reads.get("floor") or {}).get("requests_per_s") or 0.0
    for path, entry in reads.items():
        rps = entry.get("requests_per_s") or 0.0
        lines.append(f"{path:<28} {rps:>9,.0f} {entry.get('p50_ms') or 0:>8} "
                     f"{entry.get('p90_ms') or 0:>8} {entry.get('p99_ms') or 0:>8} "
                     f"{entry.get('errors', 0) + entry.get('non_2xx_3xx', 0):>7} "
                     f"{(rps / floor_rps if floor_rps else 0):>6.2f}")
    streams = result.get("streams")
    if streams:
        lines.append(f"live: {streams['connected']:,} of {streams['clients']:,} streams "
                     f"connected, {streams['held_to_end']:,} held to the end; "
                     f"{streams['probe_deliveries']:,} probe deliveries ({streams['probes']} "
                     f"probes × streams; missed {streams['missed']:,}); publish → delivered p50 "
                     f"{streams['p50_ms']} ms, p99 {streams['p99_ms']} ms, max "
                     f"{streams['max_ms']} ms; API RSS peak {streams['api_rss_mb_peak']} MB")
    lines.append("kota bench api: " + ", ".join(f"{t['id']} {t['result']}"
                                                 for t in result.get("targets", [])))
    return "\n".join(lines)


@click.command("api")
@click.option("--workers", type=click.IntRange(1, 64), default=os.cpu_count() or 1,
              show_default="the cores", help="kota api --workers (and the floor's).")
@click.option("--connections", type=click.IntRange(1, 10_000), default=200, show_default=True,
              help="wrk -c: concurrent clients.")
@click.option("--seconds", type=click.FloatRange(1, 600), default=20, show_default=True,
              help="wrk -d: seconds per read.")
@click.option("--streams", type=click.IntRange(0, 20_000), default=TARGET_STREAMS,
              show_default=True, help="Concurrent live-stream clients (0: skip).")
@click.option("--hold", "hold_s", type=click.FloatRange(10, 3600), default=30,
              show_default=True, help="Seconds the streams are held, a probe every second.")
@click.option("--snapshot-interval", "snapshot_interval_s", type=click.FloatRange(0.1, 60),
              default=1.0, show_default=True,
              help="api.snapshot_interval_s of the API measured (a 2 s delivery target needs "
                   "a refresh below it).")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path),
              help="Keep services' data and logs here (default: a temporary folder).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Append the result to FILE as one JSON line.")
def api(workers: int, connections: int, seconds: float, streams: int, hold_s: float,
        snapshot_interval_s: float, workdir: Path | None, as_json: bool,
        output: Path | None) -> None:
    """The public reads (wrk) and the live stream (C clients) against the demo stack, beside
    a bare FastAPI/uvicorn floor answering the same bytes.

    Starts a private Mosquitto and InfluxDB, kota ingest, kota indicators, kota simulate and
    kota api on loopback; stops all of them by PID. Needs wrk (Debian package). Exit code 0
    whether or not the targets are met. Progress goes to stderr; the summary to stdout.

    \b
    Examples:
      kota bench api                              # 200 clients × 20 s per read, 2,000 streams
      kota bench api --streams 0 --seconds 5      # reads only, quickly
      kota bench api --output run/bench-api.jsonl
    """
    started = time.monotonic()

    def progress(message: str) -> None:
        click.echo(f"[{time.monotonic() - started:7.1f} s] {message}", err=True)

    config = ApiBenchConfig(workers=workers, connections=connections, seconds=seconds,
                            streams=streams, hold_s=hold_s,
                            snapshot_interval_s=snapshot_interval_s, workdir=workdir)
    result = run_api_bench(config, progress)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        with output.open("ab") as handle:
            handle.write(orjson.dumps(result) + b"\n")
        progress(f"result appended to {output}")
    if as_json:
        sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        click.echo(summary(result))
