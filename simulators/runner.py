"""Run a simulation: settings -> city + scenario + window -> stream -> paced publishing.

``run(settings, stop_event)`` is what ``kota simulate`` and the demo call. The simulated clock
is placed so that no message's ``ts`` is ever ahead of the real clock when it is sent.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from simulators.city import City, load_city
from simulators.generator import CityStream, SimMessage, StreamStats
from simulators.publisher import MqttPublisher
from simulators.scenario import Scenario, load_scenario
from simulators.settings import SimulateSettings

__all__ = ["RunSummary", "SimulationWindow", "build_stream", "run", "simulation_window"]

DEFAULT_DURATION_S = 86_400.0
_BACKFILL_TIME_LIMIT_S = 3600.0     # speed 0: stop after an hour of real time at most
_TIME_LIMIT_MARGIN_S = 60.0
_MAX_WAIT_SLICE_S = 0.5             # pacing waits in slices so stop_event is seen quickly

Sink = Callable[[SimMessage], None]


@dataclass(frozen=True)
class SimulationWindow:
    """``duration_s`` of simulated time at ``speed``, then ``live_s`` in real time."""

    start_s: float
    duration_s: float
    speed: float
    live_s: float = 0.0

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s + self.live_s

    @property
    def real_duration_s(self) -> float:
        return (self.duration_s / self.speed if self.speed > 0 else 0.0) + self.live_s


@dataclass
class RunSummary:
    """What a run did. ``sent`` counts the messages published over MQTT or, with a sink,
    handed to it (``sink_verb`` says how, e.g. "printed"); ``published``, ``acknowledged`` and
    ``failed`` are MQTT's alone, so 0 with a sink."""

    stats: StreamStats
    window: SimulationWindow
    seed: int
    sent: int = 0
    acknowledged: int = 0
    failed: int = 0
    elapsed_s: float = 0.0
    stopped_by: str = "end of window"
    scenario: str | None = None
    sent_by_kind: Counter[str] = field(default_factory=Counter)
    sink_verb: str | None = None  # None: published over MQTT
    sink_note: str = "nothing published over MQTT"

    @property
    def published(self) -> int:
        return self.sent if self.sink_verb is None else 0

    @property
    def verb(self) -> str:
        return self.sink_verb or "published"

    @property
    def rate_per_s(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def line(self) -> str:
        """The one-line summary printed at the end of a run."""
        kinds = ", ".join(f"{kind} {count}" for kind, count
                          in sorted(self.sent_by_kind.items()))
        faults = ", ".join(f"{name} {count}" for name, count in sorted(self.stats.faults.items()))
        start = _iso(self.window.start_s)
        end = _iso(self.window.end_s)
        live = f" then {self.window.live_s:g} s live" if self.window.live_s else ""
        delivery = (f"acknowledged {self.acknowledged}, failed {self.failed}"
                    if self.sink_verb is None else self.sink_note)
        return (f"{self.verb} {self.sent} messages in {self.elapsed_s:.1f} s "
                f"({self.rate_per_s:.1f} msg/s; {delivery}) [{kinds or 'none'}]; "
                f"faults {sum(self.stats.faults.values())}"
                f" [{faults or 'none'}]; outage-dropped {self.stats.outage_dropped}; "
                f"simulated {start} .. {end} at x{self.window.speed:g}{live}, seed {self.seed}"
                + (f", scenario {self.scenario}" if self.scenario else "")
                + f"; stopped by {self.stopped_by}")


def _iso(time_s: float) -> str:
    return datetime.fromtimestamp(time_s, UTC).isoformat(timespec="seconds").replace("+00:00",
                                                                                      "Z")


def simulation_window(settings: SimulateSettings, scenario: Scenario | None,
                      now_s: float) -> SimulationWindow:
    """Where the simulated clock runs. Without an explicit start, the window ends when the run
    ends in real time (speed 0: ends now), so every ts is in the past when it is published."""
    duration_s = settings.duration_s or (
        scenario.duration_h * 3600.0 if scenario and scenario.duration_h else DEFAULT_DURATION_S)
    speed = settings.speed
    if settings.start is not None:
        start_s = settings.start.timestamp()
    elif speed == 0:
        start_s = now_s - duration_s
    else:
        start_s = now_s - max(0.0, duration_s - duration_s / speed)
    return SimulationWindow(start_s, duration_s, speed, settings.live_s)


def build_stream(settings: SimulateSettings, now_s: float | None = None,
                 city: City | None = None) -> tuple[CityStream, SimulationWindow]:
    """The deterministic message stream the settings describe (no network)."""
    scenario = load_scenario(settings.scenario) if settings.scenario else None
    window = simulation_window(settings, scenario, time.time() if now_s is None else now_s)
    city = city or load_city(settings.city_dir(), settings.registry_path(),
                             devices=settings.devices, seed=settings.seed)
    stream = CityStream(city, seed=settings.seed, start_s=window.start_s,
                        duration_s=window.duration_s + window.live_s,
                        intervals=settings.intervals_s,
                        faults=settings.faults, scenario=scenario,
                        topic_prefix=settings.mqtt.topic_prefix)
    return stream, window


def run(settings: SimulateSettings, stop_event: threading.Event | None = None, *,
        on_progress: Callable[[str], None] | None = None, sink: Sink | None = None,
        sink_verb: str = "delivered", sink_note: str = "nothing published over MQTT",
        time_limit_s: float | None = None) -> RunSummary:
    """Simulate and publish until the window ends, ``max_messages`` are sent, ``stop_event``
    is set or the time limit passes. ``sink`` replaces MQTT (e.g. print to stdout); the
    summary and progress then say ``sink_verb`` (e.g. "printed") instead of "published", and
    the summary ``sink_note`` instead of the MQTT acknowledgements.

    Raises PublishError when the broker cannot be reached, DataFileError for bad data files.
    """
    stop_event = stop_event or threading.Event()
    stream, window = build_stream(settings)
    summary = RunSummary(stream.stats, window, settings.seed, scenario=settings.scenario,
                         sink_verb=None if sink is None else sink_verb, sink_note=sink_note)
    if time_limit_s is None:
        time_limit_s = (window.real_duration_s * 2 + _TIME_LIMIT_MARGIN_S if window.speed > 0
                        else _BACKFILL_TIME_LIMIT_S + window.live_s * 2)
    publisher = None if sink is not None else MqttPublisher(settings.mqtt).connect()
    wall_start = time.time()
    mono_start = time.monotonic()
    deadline = mono_start + time_limit_s
    next_progress = mono_start + settings.progress_interval_s
    min_gap_s = 1.0 / settings.max_rate_per_s if settings.max_rate_per_s else 0.0
    last_send = -1e9
    try:
        for message in stream:
            # Never before its own ts (so ingest never sees the future), and on the sim clock;
            # past the accelerated window (live_s) that makes it real time.
            due_wall = message.sim_time_s
            if window.speed > 0:
                due_wall = max(due_wall, wall_start + (message.sim_time_s - window.start_s)
                               / window.speed)
            due_mono = max(mono_start + (due_wall - wall_start), last_send + min_gap_s)
            if not _wait_until(due_mono, deadline, stop_event):
                summary.stopped_by = "stop request" if stop_event.is_set() else "time limit"
                break
            if publisher is not None:
                publisher.publish(message.topic, message.payload)
            else:
                assert sink is not None
                sink(message)
            last_send = time.monotonic()
            summary.sent += 1
            summary.sent_by_kind[message.kind] += 1
            if on_progress is not None and last_send >= next_progress:
                next_progress = last_send + settings.progress_interval_s
                on_progress(_progress(summary, message, last_send - mono_start))
            if settings.max_messages and summary.sent >= settings.max_messages:
                summary.stopped_by = "max_messages"
                break
    finally:
        if publisher is not None:
            publisher.flush()
            summary.acknowledged, summary.failed = publisher.acknowledged, publisher.failed
            publisher.close()
        summary.elapsed_s = time.monotonic() - mono_start
    return summary


def _wait_until(due_mono: float, deadline: float, stop_event: threading.Event) -> bool:
    """Sleep until ``due_mono``; False if stopped or past the deadline first."""
    for _ in range(10_000_000):  # bounded: each pass sleeps or returns
        if stop_event.is_set():
            return False
        now = time.monotonic()
        if now >= deadline:
            return False
        if now >= due_mono:
            return True
        stop_event.wait(min(_MAX_WAIT_SLICE_S, due_mono - now, deadline - now))
    return False


def _progress(summary: RunSummary, message: SimMessage, elapsed_s: float) -> str:
    done = ((message.sim_time_s - summary.window.start_s)
            / (summary.window.end_s - summary.window.start_s))
    return (f"{elapsed_s:7.1f} s  sim {_iso(message.sim_time_s)}  {done:6.1%}  "
            f"{summary.sent} {summary.verb} ({summary.sent / max(elapsed_s, 1e-9):.0f}/s), "
            f"faults {sum(summary.stats.faults.values())}")
