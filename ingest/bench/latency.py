"""Publish -> queryable latency of the live phase, by polling InfluxDB counts.

Method (count-based, in order, on probe series): every ``interval_s`` the tracker asks
InfluxDB, per measurement, how many probe points (city tag PROBE_CITY: one device in
PROBE_EVERY) have ``time >= t``, where ``t`` is the publish time of the oldest probe not yet
seen. Each payload's ``ts`` is its publish time in ms, so those points are exactly the probes
published at or after ``t``; the first ``count`` of them in publish order are taken as visible,
and each gets latency = (time the poll's answer arrived) - (publish time). Latencies are
therefore upper bounds with a resolution of one poll interval plus the query time; messages
stored out of order (several workers) shift individual latencies but not the count.
Counting only probe series keeps the polls cheap: counting every live series each 100 ms made
InfluxDB spend several CPU seconds on the benchmark's own queries.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ingest.bench.procs import InfluxCounter
from ingest.bench.workload import KINDS, PROBE_CITY

__all__ = ["LatencyTracker", "percentile"]


def percentile(sorted_values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile of an ascending list; None when empty."""
    if not sorted_values:
        return None
    rank = max(1, min(len(sorted_values), round(fraction * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


@dataclass
class LatencyTracker:
    counter: InfluxCounter
    sent_ms: list[list[int]]  # per kind, probe publish times in publish order (appended live)
    interval_s: float = 0.1
    refresh: Callable[[], None] | None = None  # called before each poll to update sent_ms
    latencies_ms: list[float] = field(default_factory=list)
    seen: list[int] = field(default_factory=lambda: [0 for _ in KINDS])
    polls: int = 0
    query_s_total: float = 0.0

    def outstanding(self) -> int:
        return sum(len(sent) - seen for sent, seen in zip(self.sent_ms, self.seen, strict=True))

    def poll(self) -> None:
        if self.refresh is not None:
            self.refresh()
        since: dict[str, int] = {}
        first_index: list[int] = []
        for number, kind in enumerate(KINDS):
            sent, seen = self.sent_ms[number], self.seen[number]
            low_ms = sent[seen] if seen < len(sent) else time.time_ns() // 1_000_000
            # Earlier messages of the same millisecond were already seen; they count too.
            start = bisect.bisect_left(sent, low_ms, 0, seen) if seen < len(sent) else len(sent)
            since[kind.name] = low_ms
            first_index.append(start)
        asked = time.perf_counter()
        counts = self.counter.counts(since, f"\"city\" = '{PROBE_CITY}'")
        answered_ms = time.time_ns() / 1_000_000
        self.query_s_total += time.perf_counter() - asked
        self.polls += 1
        for number, kind in enumerate(KINDS):
            sent = self.sent_ms[number]
            visible_to = min(len(sent), first_index[number] + counts[kind.name])
            for index in range(self.seen[number], visible_to):
                self.latencies_ms.append(answered_ms - sent[index])
            self.seen[number] = max(self.seen[number], visible_to)

    def run_until(self, done: float, still_publishing: Callable[[], bool]) -> None:
        """Poll every ``interval_s`` until the publisher stopped and all is seen, or ``done``
        (a time.monotonic() deadline)."""
        while time.monotonic() < done:
            next_poll = time.monotonic() + self.interval_s
            self.poll()
            if not still_publishing() and self.outstanding() == 0:
                return
            time.sleep(max(0.0, next_poll - time.monotonic()))

    def summary(self) -> dict[str, float | int | None]:
        values = sorted(self.latencies_ms)
        return {
            "samples": len(values),
            "p50_ms": _round(percentile(values, 0.50)),
            "p90_ms": _round(percentile(values, 0.90)),
            "p99_ms": _round(percentile(values, 0.99)),
            "max_ms": _round(values[-1] if values else None),
            "polls": self.polls,
            "mean_query_ms": _round(1000 * self.query_s_total / self.polls if self.polls
                                    else None),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
