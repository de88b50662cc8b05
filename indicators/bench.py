"""Benchmark: one indicator pass over a day of data for N devices (time and peak memory).

    python -m indicators.bench --devices 1000 [--influx-url URL] [--output FILE.md]
    kota indicators bench --devices 1000

Starts a private InfluxDB 1.x on loopback (unless --influx-url), writes one simulated day for N
measuring devices (40 % air, 15 % water, 15 % rain, 20 % noise, 10 % safety; readings every 300 s
as the simulator sends them) plus a heartbeat device per measuring device (every 600 s), then
times the pass the service makes after a day of downtime: the 24 hourly windows and the day
window; then ten 1-minute windows at the day's end (Siaga and the open incidents), again after
adding a busy week of incidents (20 a day per safety device) to the lookback. Memory: peak
of Python allocations (tracemalloc, a second, untimed pass) and the process's maximum resident
set size.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import random
import resource
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from devstack.localstack import LocalService, start_influxdb
from indicators.context import Context, load_districts
from indicators.service import IndicatorService
from indicators.settings import DATA_DIR, IndicatorSettings
from indicators.windows import HOUR_MS
from kota.influx import InfluxSettings
from kota.registry import Device, Registry

GAUGES = ("katulampa", "depok", "manggarai", "karet", "pulo_gadung", "pasar_ikan")
MIX = (("air", 0.40), ("water", 0.15), ("rain", 0.15), ("noise", 0.20), ("safety", 0.10))
EVENTS = ("panic", "fire", "smoke", "crowd", "theft", "accident")


def build_registry(devices: int, districts: list[str]) -> Registry:
    rows: list[Device] = []
    counts = [(kind, max(1, round(devices * share))) for kind, share in MIX]
    number = 0
    for kind, count in counts:
        for index in range(count):
            district = districts[number % len(districts)]
            number += 1
            params: dict[str, str | float] = {}
            if kind == "water":
                params = {"gauge_id": GAUGES[index % len(GAUGES)]}
            elif kind in ("air", "noise"):
                params = {"zone": "residential"}
            device_id = f"bench-{kind}-{index:04d}"
            rows.append(Device(device_id=device_id, kind=kind, city="jakarta",
                               district=district, lat=-6.2, lon=106.8, params=params))
            rows.append(Device(device_id=f"{device_id}-status", kind="status", city="jakarta",
                               district=district, lat=-6.2, lon=106.8))
    return Registry(rows)


def day_lines(registry: Registry, day_start_ms: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    lines: list[str] = []
    for device in registry:
        tags = (f"city=jakarta,device={device.device_id},"
                f"district={device.district.replace(' ', chr(92) + ' ')},kind={device.kind}")
        step = 600_000 if device.kind == "status" else 300_000
        for t in range(day_start_ms - (24 * HOUR_MS if device.kind == "air" else 0),
                       day_start_ms + 24 * HOUR_MS, step):
            t_ms = t + rng.randrange(0, 30_000)
            if device.kind == "air":
                fields = f"pm25={rng.uniform(5, 90):.1f},pm10={rng.uniform(10, 150):.1f}"
            elif device.kind == "water":
                fields = f"level_cm={rng.uniform(100, 900):.1f}"
            elif device.kind == "rain":
                fields = f"rain_mm={rng.choice((0.0, 0.0, 0.0, 0.2, 0.6, 2.0))}"
            elif device.kind == "noise":
                fields = f"laeq_db={rng.uniform(45, 75):.1f},lamax_db={rng.uniform(70, 95):.1f}"
            elif device.kind == "status":
                fields = f"uptime_s={float(t // 1000 % 100000)},battery_pct=80.0"
            else:
                if rng.random() > 0.05:
                    continue
                tags_event = f"{tags},event={rng.choice(EVENTS)}"
                lines.append(f"safety,{tags_event} count=1.0 {t_ms}")
                continue
            lines.append(f"{device.kind},{tags} {fields} {t_ms}")
    return lines


def incident_week_lines(registry: Registry, end_ms: int, per_day: int = 20,
                        seed: int = 2) -> list[str]:
    """A busy week for the open-incident lookback: ``per_day`` incidents per safety device and
    day over the 7 days before ``end_ms``, each with an incident_id, 80 % resolved later."""
    rng = random.Random(seed)
    lines = []
    for device in registry:
        if device.kind != "safety":
            continue
        tags = (f"city=jakarta,device={device.device_id},"
                f"district={device.district.replace(' ', chr(92) + ' ')},kind=safety")
        for number in range(per_day * 7):
            t_ms = end_ms - rng.randrange(1, 7 * 24 * HOUR_MS)
            incident = f'incident_id="{device.device_id}-{number}"'
            lines.append(f"safety,{tags},event={rng.choice(EVENTS)} count=1.0,{incident} {t_ms}")
            if rng.random() < 0.8:
                resolved_ms = min(end_ms - 1, t_ms + rng.randrange(60_000, 2 * HOUR_MS))
                lines.append(f"safety,{tags},event=resolved count=1.0,{incident} {resolved_ms}")
    return lines


def write_lines(url: str, database: str, lines: list[str]) -> None:
    with httpx.Client(base_url=url, timeout=120) as client:
        client.post("/query", params={"q": f'CREATE DATABASE "{database}"'})
        for index in range(0, len(lines), 20_000):
            response = client.post("/write", params={"db": database, "precision": "ms"},
                                   content="\n".join(lines[index:index + 20_000]).encode())
            response.raise_for_status()


class _TimedService(IndicatorService):
    """The service, with the time spent waiting for InfluxDB's answers added up."""

    query_s = 0.0
    write_s = 0.0

    async def _query(self, influxql: str) -> list[dict[str, Any]]:
        started = time.perf_counter()
        try:
            return await super()._query(influxql)
        finally:
            _TimedService.query_s += time.perf_counter() - started

    async def _write(self, body: bytes) -> None:
        started = time.perf_counter()
        try:
            await super()._write(body)
        finally:
            _TimedService.write_s += time.perf_counter() - started


async def one_pass(settings: IndicatorSettings, context: Context, since_ms: int,
                   until_ms: int) -> tuple[int, int]:
    service = _TimedService(settings, context)
    try:
        report = await service.recompute(since_ms, until_ms)
    finally:
        await service.close()
    return len(report.windows), report.points


def main(devices: int = 1000, influx_url: str | None = None, output: str | None = None) -> None:
    districts_table = load_districts(DATA_DIR / "jakarta" / "districts.csv")
    registry = build_registry(devices, districts_table.names())
    context = Context(registry, districts_table)
    day_start = int(datetime(2026, 11, 19, 17, tzinfo=UTC).timestamp() * 1000)  # WIB midnight
    service: LocalService | None = None
    with tempfile.TemporaryDirectory(prefix="kota-bench-indicators-") as tmp:
        if influx_url is None:
            service = start_influxdb(Path(tmp) / "influxdb")
            influx_url = f"http://127.0.0.1:{service.port}"
        try:
            started = time.perf_counter()
            lines = day_lines(registry, day_start)
            write_lines(influx_url, "bench_indicators", lines)
            load_s = time.perf_counter() - started
            settings = IndicatorSettings(
                influx=InfluxSettings(url=influx_url, database="bench_indicators",
                                      timeout_s=300),
                windows=["1h", "1d"], metrics_port=0)
            started = time.perf_counter()
            windows, points = asyncio.run(one_pass(settings, context, day_start,
                                                   day_start + 24 * HOUR_MS))
            pass_s = time.perf_counter() - started
            query_s, write_s = _TimedService.query_s, _TimedService.write_s
            # the live minute: Siaga per gauge and the incidents open (reads the safety events
            # of incident_lookback_h), ten windows at the end of the day
            minute_settings = settings.model_copy(update={"windows": ["1m"]})
            day_end = day_start + 24 * HOUR_MS
            started = time.perf_counter()
            minutes, _ = asyncio.run(one_pass(minute_settings, context, day_end - 10 * 60_000,
                                              day_end))
            minute_ms = (time.perf_counter() - started) / max(1, minutes) * 1000
            # the same with a busy week of incidents in the lookback (incident_lookback_h, 7 d)
            week = incident_week_lines(registry, day_end)
            write_lines(influx_url, "bench_indicators", week)
            started = time.perf_counter()
            asyncio.run(one_pass(minute_settings, context, day_end - 10 * 60_000, day_end))
            busy_minute_ms = (time.perf_counter() - started) / max(1, minutes) * 1000
            tracemalloc.start()
            asyncio.run(one_pass(settings, context, day_start, day_start + 24 * HOUR_MS))
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        finally:
            if service is not None:
                service.stop()
    max_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    measuring = sum(1 for d in registry if d.kind != "status")
    report = (
        f"| measuring devices (+ heartbeat twins) | {measuring} (+{len(registry) - measuring}) |\n"
        f"| raw points for the day | {len(lines):,} (written in {load_s:.1f} s) |\n"
        f"| windows computed | {windows} (24 × 1h + 1 × 1d) |\n"
        f"| indicator points written | {points:,} |\n"
        f"| pass time | {pass_s:.2f} s ({pass_s / windows * 1000:.0f} ms per window) |\n"
        f"| of which waiting for InfluxDB queries / writes | {query_s:.2f} s / {write_s:.2f} s |\n"
        f"| one 1-minute window (Siaga + open incidents), mean of {minutes} | "
        f"{minute_ms:.0f} ms |\n"
        f"| the same with a busy week of incidents in the lookback ({len(week):,} safety events) "
        f"| {busy_minute_ms:.0f} ms |\n"
        f"| peak Python allocations (tracemalloc) | {peak / 2**20:.1f} MiB |\n"
        f"| max RSS of the process | {max_rss_mb:.0f} MiB |\n")
    header = (f"Machine: {platform.node()} — {platform.processor() or platform.machine()}, "
              f"Python {platform.python_version()}, {platform.system()} {platform.release()}\n"
              f"Date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}\n"
              f"Command: python -m indicators.bench --devices {devices}\n\n"
              "| what | figure |\n|---|---|\n")
    print(header + report)
    if output:
        Path(output).write_text(header + report, encoding="utf-8")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--influx-url")
    parser.add_argument("--output")
    arguments = parser.parse_args()
    main(arguments.devices, arguments.influx_url, arguments.output)
