"""Ties it together: one thread per sensor, one for the heartbeat, one publisher.

Sensor threads read on their schedule, screen each reading (sensor range from the driver,
plausible range and field names from the kind, kota/kinds/<kind>/kind.yaml) and queue what
passed; values that did not pass go to ``<state_dir>/flagged.jsonl`` with the reason, never to
the platform. A driver that fails to open or read is retried with backoff; one bad sensor never
stops the others.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.config import AgentConfig, sensor_label
from agent.drivers import Driver, build, kind_of
from agent.drivers.base import Limits, Reading, SensorConfig, screen
from agent.heartbeat import collect
from agent.publisher import Publisher
from agent.queue import ReadingQueue

__all__ = ["Agent", "kind_fields", "screen_for_kind"]

log = logging.getLogger("kota_agent")

FLAGGED_MAX_BYTES = 10 * 1024 * 1024


def kind_fields(kind: str) -> tuple[set[str], Limits]:
    """Field names (tags included) and plausible ranges the platform accepts for ``kind``,
    from the same kind.yaml that ingest validates against (kota/kinds/<kind>/)."""
    from kota.kinds import KINDS

    spec = KINDS[kind].spec
    ranges = {name: (f.min if f.min is not None else float("-inf"),
                     f.max if f.max is not None else float("inf"))
              for name, f in spec.fields.items() if f.type == "float"}
    return set(spec.fields) | set(spec.tags), ranges


def screen_for_kind(reading: Reading, limits: Limits) -> Reading:
    """Flag values outside the sensor's or the kind's range, unknown keys and tag values the
    kind does not accept (e.g. a safety ``event`` outside its list)."""
    from kota.kinds import KINDS

    names, ranges = kind_fields(reading.kind)
    screen(reading, limits, ranges)
    tags = KINDS[reading.kind].spec.tags
    for name in list(reading.fields):
        value = reading.fields[name]
        if name not in names:
            reading.flags[name] = f"not a field of kind {reading.kind}"
        elif name in tags and not tags[name].allow_other and value not in tags[name].values:
            reading.flags[name] = f"{value!r} is not one of the {name} values of {reading.kind}"
        else:
            continue
        del reading.fields[name]
    return reading


class FlaggedLog:
    """JSON lines of readings (or values) that were not published, with the reason."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._lock = threading.Lock()

    def write(self, device_id: str, reading: Reading, ts: float) -> None:
        entry = {"ts": round(ts, 3), "device": device_id, "kind": reading.kind,
                 "flags": reading.flags, "raw": reading.raw}
        with self._lock:
            self.count += 1
            try:
                if self.path.exists() and self.path.stat().st_size > FLAGGED_MAX_BYTES:
                    self.path.replace(self.path.with_suffix(".jsonl.1"))
                with self.path.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(entry) + "\n")
            except OSError as exc:
                log.error("cannot write %s: %s", self.path, exc)


class Agent:
    def __init__(self, config: AgentConfig,
                 make_driver: Callable[[SensorConfig], Driver] = build,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.make_driver = make_driver
        config.agent.state_dir.mkdir(parents=True, exist_ok=True)
        self.queue = ReadingQueue(config.queue_path, config.queue.max_readings)
        self.flagged = FlaggedLog(config.agent.state_dir / "flagged.jsonl")
        self.publisher = Publisher(
            self.queue, config.mqtt, client_id=config.client_id,
            status_topic=config.topic("status", config.status_device),
            batch_max=config.queue.batch_max, max_inflight=config.queue.max_inflight,
            clock=clock)
        self.stop_event = threading.Event()
        self.read_errors: dict[str, int] = {}
        # The latest air temperature any sensor of this agent measured (value, monotonic time):
        # the ultrasonic driver corrects the speed of sound with it.
        self.air_temperature: tuple[float, float] | None = None

    def enqueue(self, device_id: str, reading: Reading, limits: Limits) -> int | None:
        """Screen and queue one reading; returns its seq, or None if nothing was publishable."""
        ts = reading.ts if reading.ts is not None else self.clock()
        screen_for_kind(reading, limits)
        if reading.flags:
            self.flagged.write(device_id, reading, ts)
            log.warning("%s: not published: %s", device_id, reading.flags)
        if not reading.fields or (reading.kind == "safety" and "event" not in reading.fields):
            return None
        temperature = reading.fields.get("temperature")
        if reading.kind == "air" and isinstance(temperature, float):
            self.air_temperature = (temperature, time.monotonic())
        return self.queue.put(self.config.topic(reading.kind, device_id), device_id,
                              reading.fields, ts)

    def heartbeat(self) -> int | None:
        """Queue one status reading (screened like any other)."""
        fields = collect(self.config.heartbeat, self.queue.depth, self.queue.dropped)
        return self.enqueue(self.config.status_device, Reading("status", fields), {})

    # -- threads ----------------------------------------------------------------------------
    def _sensor_loop(self, sensor: SensorConfig) -> None:
        device_id = self.config.device_id(sensor)
        label = sensor.name or f"{sensor.driver}:{device_id}"
        driver: Any = None
        backoff = 1.0
        next_read = time.monotonic()
        while not self.stop_event.is_set():
            if driver is None:
                try:
                    driver = self.make_driver(sensor)
                    driver.open()
                    backoff = 1.0
                except Exception as exc:  # hardware absent, permission, bad port…
                    log.error("%s: cannot open: %s (retry in %.0f s)", label, exc, backoff)
                    if driver is not None:  # release what a half-done open claimed (pins, port)
                        self._close(driver, label)
                    driver = None
                    self.stop_event.wait(backoff)
                    backoff = min(backoff * 2, 300)
                    continue
            if self.stop_event.wait(max(0.0, next_read - time.monotonic())):
                break
            next_read += sensor.interval_s
            if next_read < time.monotonic():
                next_read = time.monotonic() + sensor.interval_s
            try:
                self.share_context(driver)
                readings = driver.read()
                self.read_errors[label] = 0
            except Exception as exc:
                errors = self.read_errors.get(label, 0) + 1
                self.read_errors[label] = errors
                log.warning("%s: read failed (%d in a row): %s", label, errors, exc)
                if errors % 5 == 0:  # reopen: USB adapters and I2C buses come back that way
                    self._close(driver, label)
                    driver = None
                continue
            for reading in readings:
                try:
                    self.enqueue(device_id, reading, driver.limits)
                except Exception:
                    log.exception("%s: cannot queue a reading", label)
        if driver is not None:
            self._close(driver, label)

    def share_context(self, driver: Any, max_age_s: float = 900.0) -> None:
        """Give a driver that wants it the agent's latest air temperature (≤ 15 min old)."""
        setter = getattr(driver, "set_air_temperature", None)
        if setter is not None and self.air_temperature is not None:
            value, measured_at = self.air_temperature
            if time.monotonic() - measured_at <= max_age_s:
                setter(value)

    @staticmethod
    def _close(driver: Any, label: str) -> None:
        try:
            driver.close()
        except Exception as exc:
            log.warning("%s: close: %s", label, exc)

    def _heartbeat_loop(self) -> None:
        while True:
            try:
                self.heartbeat()
            except Exception:
                log.exception("heartbeat")
            if self.stop_event.wait(self.config.heartbeat.interval_s):
                return

    def run(self) -> None:
        """Run until ``stop_event`` is set (the CLI sets it on SIGTERM / SIGINT)."""
        threads = [threading.Thread(target=self.publisher.run, args=(self.stop_event,),
                                    name="publisher", daemon=True),
                   threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)]
        threads += [threading.Thread(target=self._sensor_loop, args=(sensor,), daemon=True,
                                     name=f"sensor-{index}-{sensor.driver}")
                    for index, sensor in enumerate(self.config.sensor)]
        log.info("kota-agent %s: %d sensors, %d readings queued", self.config.agent.id,
                 len(self.config.sensor), self.queue.depth)
        for thread in threads:
            thread.start()
        self.stop_event.wait()
        for thread in threads:
            thread.join(timeout=60)
        self.queue.close()


def describe(config: AgentConfig, sensor: SensorConfig, index: int) -> str:
    """``sensor 1 (sds011) → kota/jakarta/air/jkt-pi-01-air``: what validate shows."""
    device_id = config.device_id(sensor)
    return f"{sensor_label(index, sensor)} → {config.topic(kind_of(sensor), device_id)}"
