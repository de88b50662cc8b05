"""Known data for the API tests, written with line protocol into a fresh database of the real
InfluxDB, and a real uvicorn to serve an app (the fixtures are in tests/api/conftest.py).

Known data (times relative to now; ``HOUR`` = 3 600 000 ms):
- air-menteng (Menteng): pm25 40, pm10 80 in each of the last 24 hours → ISPU ≈ 80.70 (pm25:
  (100−50)/(55.4−15.5)·(40−15.5)+50), Sedang; latest point 1 min ago with temperature 30.5.
- air-tebet (Tebet): pm25 20 in the last 3 hours only → insufficient (needs 18 of 24 hours).
- water-manggarai (Tebet, gauge manggarai 750/850/950 cm): 800, 830, 860 cm over 50 min →
  Siaga 2, rising.
- water-kali (Menteng, gauge_id not in the table): 120 cm → no status.
- rain-tebet: 2.5 mm; panic-monas (Gambir): a panic event.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import uvicorn
from fastapi import FastAPI

from api.settings import ApiSettings
from devstack.localstack import LocalService, free_port
from indicators.windows import HOUR_MS
from kota.influx import InfluxSettings
from kota.registry import Device, Registry

HOUR = HOUR_MS
MINUTE = 60_000


def api_registry() -> Registry:
    def device(device_id: str, kind: str, district: str, lat: float, lon: float,
               **params: float | str) -> Device:
        return Device(device_id=device_id, kind=kind, city="jakarta", district=district,
                      kelurahan=district, lat=lat, lon=lon, name=device_id.title(),
                      params=params)

    return Registry([
        device("air-menteng", "air", "Menteng", -6.196, 106.823, zone="roadside"),
        device("air-tebet", "air", "Tebet", -6.23, 106.852),
        device("water-manggarai", "water", "Tebet", -6.209, 106.849, gauge_id="manggarai",
               river="Ciliwung"),
        device("water-kali", "water", "Menteng", -6.20, 106.83, gauge_id="kali_kecil"),
        device("rain-tebet", "rain", "Tebet", -6.21, 106.85),
        device("panic-monas", "safety", "Gambir", -6.1796, 106.82),
    ])


def write_lines(influx: LocalService, database: str, lines: list[str]) -> None:
    response = httpx.post(f"http://127.0.0.1:{influx.port}/write",
                          params={"db": database, "precision": "ms"},
                          content="\n".join(lines).encode(), timeout=30)
    assert response.status_code == 204, response.text


def tags(device: str, kind: str, district: str) -> str:
    return (f"city=jakarta,device={device},district={district},kelurahan={district},"
            f"kind={kind}")


@dataclass
class Seeded:
    now_ms: int
    menteng_latest_ms: int
    manggarai_latest_ms: int


def seed(influx: LocalService, database: str) -> Seeded:
    now_ms = int(time.time() * 1000)
    current_hour = now_ms // HOUR * HOUR
    lines = []
    menteng = tags("air-menteng", "air", "Menteng")
    latest_ms = now_ms - MINUTE
    for k in range(1, 24):
        lines.append(f"air,{menteng} pm25=40.0,pm10=80.0,temperature=29.0 "
                     f"{current_hour - k * HOUR + 30 * MINUTE}")
    lines.append(f"air,{menteng} pm25=40.0,pm10=80.0,temperature=30.5 {latest_ms}")
    tebet = tags("air-tebet", "air", "Tebet")
    for k in range(3):
        lines.append(f"air,{tebet} pm25=20.0 {now_ms - k * HOUR - 2 * MINUTE}")
    gauge = tags("water-manggarai", "water", "Tebet")
    for minutes, level in ((50, 800.0), (25, 830.0), (1, 860.0)):
        lines.append(f"water,{gauge} level_cm={level} {now_ms - minutes * MINUTE}")
    lines.append(f"water,{tags('water-kali', 'water', 'Menteng')} level_cm=120.0 "
                 f"{now_ms - 5 * MINUTE}")
    lines.append(f"rain,{tags('rain-tebet', 'rain', 'Tebet')} rain_mm=2.5,tips=9.0 "
                 f"{now_ms - 3 * MINUTE}")
    lines.append(f"safety,{tags('panic-monas', 'safety', 'Gambir')},event=panic "
                 f"count=1.0,confidence=0.9 {now_ms - 4 * MINUTE}")
    write_lines(influx, database, lines)
    return Seeded(now_ms=now_ms, menteng_latest_ms=latest_ms,
                  manggarai_latest_ms=now_ms - MINUTE)


@contextlib.contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Run ``app`` under a real uvicorn on a free loopback port; yield its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def make_settings(influx: LocalService, database: str, **extra: object) -> ApiSettings:
    values: dict[str, object] = {
        "influx": InfluxSettings(url=f"http://127.0.0.1:{influx.port}", database=database,
                                 create_database=False),
        "sse_interval_s": 0.3, "sse_max_duration_s": 5,
    }
    values.update(extra)
    return ApiSettings.model_validate(values)
