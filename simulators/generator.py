"""The pure part of the simulator: a deterministic stream of MQTT messages from a seed.

``CityStream(city, seed=..., start_s=..., duration_s=...)`` yields :class:`SimMessage` in
simulated-time order. Same city, seed, window, intervals, faults and scenario give the same bytes.
No clock, no network: the publisher (publisher.py) paces and sends them.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

import orjson

from kota.registry import Device
from simulators.city import City
from simulators.faults import FaultInjector
from simulators.models.air import AirModel, AirStation, HazeTimeline
from simulators.models.common import (
    SECONDS_PER_HOUR,
    clamp_to_kind,
    derive_rng,
    derive_seed,
)
from simulators.models.hydrology import (
    RainField,
    RiverLevels,
    random_rain_cells,
    scenario_rain_cells,
)
from simulators.models.noise import NoiseModel
from simulators.models.safety import SafetyDevice, SafetyModel
from simulators.models.status import Heartbeat, StatusModel
from simulators.scenario import OutageEvent, SafetyBurstEvent, Scenario
from simulators.settings import FaultSettings, IntervalSettings

__all__ = ["CityStream", "SimMessage", "StreamStats"]

_INTERVAL_JITTER = 0.02  # devices' report clocks drift by up to 2 % per interval
_TS_FORMATS = ("epoch_ms", "epoch_s", "rfc3339")  # what different firmwares send as ts


@dataclass(frozen=True, slots=True)
class SimMessage:
    topic: str
    payload: bytes
    sim_time_s: float
    kind: str
    device_id: str
    fault: str | None = None
    expected_reason: str | None = None  # the rejection reason ingest should give, if any


@dataclass
class StreamStats:
    messages_by_kind: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    outage_dropped: int = 0

    @property
    def messages(self) -> int:
        return sum(self.messages_by_kind.values())


@dataclass(slots=True)
class _Source:
    """One publishing device and its model state."""

    device: Device
    rng: random.Random
    fault_rng: random.Random  # separate, so faults never change the clean signal
    ts_format: str
    interval_s: float
    state: object
    seq: int = 0
    previous_fields: dict[str, object] | None = None


class CityStream:
    """Iterate to get the messages of a simulated window ``[start_s, start_s + duration_s)``."""

    def __init__(self, city: City, *, seed: int, start_s: float, duration_s: float,
                 intervals: IntervalSettings | None = None, faults: FaultSettings | None = None,
                 scenario: Scenario | None = None, topic_prefix: str = "kota") -> None:
        self.city = city
        self.seed = seed
        self.start_s = start_s
        self.end_s = start_s + duration_s
        self.intervals = intervals or IntervalSettings()
        self.scenario = scenario
        self.topic_prefix = topic_prefix
        self.stats = StreamStats()
        self.faults = FaultInjector(faults or FaultSettings(), self.end_s)
        profile = city.profile
        offset = profile.utc_offset_h
        spin_up_s = city.rivers.spin_up_h * SECONDS_PER_HOUR
        cells = random_rain_cells(profile.rain, derive_rng(seed, "rain"), start_s - spin_up_s,
                                  self.end_s, offset, scenario, start_s)
        self.rain = RainField(cells + scenario_rain_cells(scenario, start_s))
        self.rivers = RiverLevels(city.rivers, self.rain, start_s, self.end_s)
        haze = HazeTimeline(profile.air, derive_rng(seed, "haze"), start_s, self.end_s,
                            scenario, start_s)
        self.air = AirModel(profile.air, offset, self.rain, haze)
        self.noise = NoiseModel(profile.noise, offset, self.rain, profile.air.rush_hours_local)
        self.safety = SafetyModel(profile.safety, offset, start_s)
        self.status = StatusModel(profile.status, offset, self.rain, self.air.temperature_degc)
        self.outages = [e for e in (scenario.of_type(OutageEvent) if scenario else [])
                        if isinstance(e, OutageEvent)]

    # -- set-up --------------------------------------------------------------------------------
    def _sources(self) -> list[_Source]:
        sources = []
        safety_devices = [d for d in self.city.devices if d.kind == "safety"]
        for device in self.city.devices:
            sources.append(self._source(device, self._state(device, safety_devices)))
            twin = self.city.heartbeats[device.device_id]
            rng = derive_rng(self.seed, "device", twin.device_id)
            beat = self.status.device(rng, device.kind, twin.lat, twin.lon, self.start_s)
            sources.append(self._source(twin, beat, rng))
        return sources

    def _source(self, device: Device, state: object, rng: random.Random | None = None) -> _Source:
        rng = rng or derive_rng(self.seed, "device", device.device_id)
        ts_format = _TS_FORMATS[derive_seed(self.seed, "ts-format", device.device_id)
                                % len(_TS_FORMATS)]
        interval = float(getattr(self.intervals, device.kind, 0.0))
        return _Source(device, rng, derive_rng(self.seed, "faults", device.device_id), ts_format,
                       interval, state)

    def _state(self, device: Device, safety_devices: list[Device]) -> object:
        rng = derive_rng(self.seed, "state", device.device_id)
        if device.kind == "air":
            return self.air.station(rng, str(device.params.get("zone", "other")),
                                    device.device_id.startswith("air-ref-"), device.lat,
                                    device.lon)
        if device.kind == "safety":
            return self.safety.device(device.device_id, self._burst_shares(device, safety_devices))
        if device.kind == "rain":
            return [0.0]  # rain not yet counted as a tip (the bucket's partial fill), mm
        return None

    def _burst_shares(self, device: Device,
                      safety_devices: list[Device]) -> list[tuple[float, SafetyBurstEvent]]:
        """This device's share of each scenario safety burst (split over the devices it names)."""
        shares = []
        for event in self.scenario.of_type(SafetyBurstEvent) if self.scenario else []:
            assert isinstance(event, SafetyBurstEvent)
            named = [d for d in safety_devices
                     if not event.districts or d.district in event.districts] or safety_devices
            if device in named:
                shares.append((1.0 / len(named), event))
        return shares

    # -- the stream ----------------------------------------------------------------------------
    def __iter__(self) -> Iterator[SimMessage]:
        sources = self._sources()
        queue: list[tuple[float, int]] = []
        safety_next: dict[int, str] = {}
        for index, source in enumerate(sources):
            first = self._next_time(index, source, self.start_s, safety_next, first=True)
            if first is not None:
                queue.append((first, index))
        heapq.heapify(queue)
        while queue:
            time_s, index = heapq.heappop(queue)
            if time_s >= self.end_s:
                break
            source = sources[index]
            message = self._message(source, time_s, safety_next.pop(index, ""))
            following = self._next_time(index, source, time_s, safety_next)
            if following is not None and following < self.end_s:
                heapq.heappush(queue, (following, index))
            if message is not None:
                yield message

    def _next_time(self, index: int, source: _Source, after_s: float,
                   safety_next: dict[int, str], first: bool = False) -> float | None:
        if source.device.kind == "safety":
            assert isinstance(source.state, SafetyDevice)
            found = self.safety.next_event(source.state, source.rng, self.end_s)
            if found is None:
                return None
            safety_next[index] = found[1]
            return found[0]
        if first:
            return after_s + source.rng.uniform(0, source.interval_s)
        jitter = 1.0 + source.rng.uniform(-_INTERVAL_JITTER, _INTERVAL_JITTER)
        return after_s + source.interval_s * jitter

    def _fields(self, source: _Source, time_s: float, event: str) -> dict[str, object]:
        device, rng = source.device, source.rng
        if device.kind == "air":
            assert isinstance(source.state, AirStation)
            return self.air.reading(source.state, time_s, rng)
        if device.kind == "noise":
            return self.noise.reading(str(device.params.get("zone", "other")), device.lat,
                                      device.lon, time_s, rng)
        if device.kind == "status":
            assert isinstance(source.state, Heartbeat)
            return self.status.reading(source.state, time_s, rng)
        if device.kind == "safety":
            assert isinstance(source.state, SafetyDevice)
            return self.safety.payload(event, source.state.profile_name, rng)
        if device.kind == "rain":
            return self._rain(source, time_s)
        if device.kind == "water":
            return self._water(source, time_s)
        raise ValueError(f"no signal model for kind {device.kind!r}")

    def _rain(self, source: _Source, time_s: float) -> dict[str, object]:
        device = source.device
        bucket = source.state
        assert isinstance(bucket, list)
        mm_per_tip = float(device.params.get("mm_per_tip", 0.2))
        bucket[0] += self.rain.depth_mm(device.lat, device.lon, time_s - source.interval_s,
                                        time_s)
        tips = math.floor(bucket[0] / mm_per_tip)
        bucket[0] -= tips * mm_per_tip
        return {"rain_mm": round(tips * mm_per_tip, 4), "tips": float(tips)}

    def _water(self, source: _Source, time_s: float) -> dict[str, object]:
        device = source.device
        gauge_id = str(device.params.get("gauge_id", ""))
        if self.rivers.gauge(gauge_id) is None:
            raise ValueError(f"water device {device.device_id}: gauge_id {gauge_id!r} is not in "
                             f"rivers.yaml ({', '.join(self.city.rivers.gauges)})")
        level = self.rivers.level_cm(gauge_id, time_s) + source.rng.gauss(0.0, 1.0)
        mount = device.params.get("mount_height_cm")
        if isinstance(mount, float):
            return {"distance_cm": round(max(0.0, mount - level), 1)}
        return {"level_cm": round(level, 1)}

    def _timestamp(self, source: _Source, time_s: float) -> object:
        if source.ts_format == "epoch_ms":
            return math.floor(time_s * 1000)
        if source.ts_format == "epoch_s":
            return round(time_s, 3)
        offset = timezone(timedelta(hours=self.city.profile.utc_offset_h))
        moment = datetime.fromtimestamp(math.floor(time_s * 1000) / 1000, UTC).astimezone(offset)
        return moment.isoformat(timespec="milliseconds")

    def _in_outage(self, device: Device, time_s: float) -> bool:
        hours = (time_s - self.start_s) / SECONDS_PER_HOUR
        return any(event.active(hours)
                   and (not event.districts or device.district in event.districts)
                   and (not event.kinds or device.kind in event.kinds)
                   for event in self.outages)

    def _message(self, source: _Source, time_s: float, event: str) -> SimMessage | None:
        device = source.device
        fields = clamp_to_kind(device.kind, self._fields(source, time_s, event))
        source.seq += 1
        fault = self.faults.choose(source.fault_rng)
        if self._in_outage(device, time_s):
            self.stats.outage_dropped += 1
            return None
        element: dict[str, object] = {"ts": self._timestamp(source, time_s), "seq": source.seq,
                                      **fields}
        previous, source.previous_fields = source.previous_fields, fields
        expected_reason = None
        if fault is None:
            payload: bytes | None = orjson.dumps(element)
        else:
            self.stats.faults[fault] += 1
            result = self.faults.apply(fault, device.kind, element, previous, source.fault_rng)
            payload, expected_reason = result.payload, result.expected_reason
        if payload is None:
            return None
        self.stats.messages_by_kind[device.kind] += 1
        topic = f"{self.topic_prefix}/{device.city}/{device.kind}/{device.device_id}"
        return SimMessage(topic, payload, time_s, device.kind, device.device_id, fault,
                          expected_reason)
