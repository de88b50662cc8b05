"""Ingest's own counters, exposed on Prometheus ``/metrics`` and written as ``kota_ingest``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


@dataclass
class IngestCounters:
    """Plain counters the service updates on its hot path; Prometheus reads them on scrape."""

    received: int = 0
    written: int = 0
    rejected: int = 0
    buffered: int = 0
    replayed: int = 0
    dropped: int = 0
    influx_refused: int = 0
    deadletters_dropped: int = 0
    pending: int = 0
    buffer_bytes: int = 0
    lag_s: float = 0.0
    data_lag_s: float = 0.0
    mqtt_connected: bool = False
    influx_up: bool = True
    rejected_by_reason: dict[str, int] = field(default_factory=dict)

    def reject(self, reason: str) -> None:
        self.rejected += 1
        self.rejected_by_reason[reason] = self.rejected_by_reason.get(reason, 0) + 1

    def fields(self) -> dict[str, float]:
        return {
            "received": float(self.received), "written": float(self.written),
            "rejected": float(self.rejected), "buffered": float(self.buffered),
            "replayed": float(self.replayed), "dropped": float(self.dropped),
            "influx_refused": float(self.influx_refused), "pending": float(self.pending),
            "deadletters_dropped": float(self.deadletters_dropped),
            "buffer_bytes": float(self.buffer_bytes), "lag_s": self.lag_s,
            "mqtt_connected": float(self.mqtt_connected), "influx_up": float(self.influx_up),
        }


_COUNTERS = {
    "received": ("kota_ingest_messages_received", "MQTT messages received"),
    "written": ("kota_ingest_points_written", "Points written to InfluxDB"),
    "rejected": ("kota_ingest_rejected", "Messages or elements sent to dead-letter"),
    "buffered": ("kota_ingest_points_buffered", "Points stored in the disk buffer"),
    "replayed": ("kota_ingest_points_replayed", "Buffered points later written"),
    "dropped": ("kota_ingest_points_dropped", "Points dropped (buffer full with drop_oldest)"),
    "influx_refused": ("kota_ingest_influx_refused", "Points InfluxDB refused (HTTP 400)"),
    "deadletters_dropped": ("kota_ingest_deadletters_dropped",
                            "Dead-letter records removed, oldest first, to stay within "
                            "deadletter.max_mb"),
}
_GAUGES = {
    "pending": ("kota_ingest_pending_messages", "Received, not yet stored"),
    "buffer_bytes": ("kota_ingest_buffer_bytes", "Size of the disk buffer"),
    "lag_s": ("kota_ingest_lag_seconds", "Receive-to-stored time of the last batch's oldest"),
    "data_lag_s": ("kota_ingest_data_lag_seconds",
                   "Now minus the newest reading's timestamp in the last batch written"),
    "mqtt_connected": ("kota_ingest_mqtt_connected", "1 while connected to the broker"),
    "influx_up": ("kota_ingest_influx_up", "1 while InfluxDB takes writes"),
}


class _CountersCollector(Collector):
    def __init__(self, counters: IngestCounters) -> None:
        self.counters = counters

    def collect(self) -> Iterator[Metric]:
        for attribute, (name, doc) in _COUNTERS.items():
            yield CounterMetricFamily(name, doc, value=float(getattr(self.counters, attribute)))
        for attribute, (name, doc) in _GAUGES.items():
            yield GaugeMetricFamily(name, doc, value=float(getattr(self.counters, attribute)))
        by_reason = CounterMetricFamily("kota_ingest_rejected_by_reason",
                                        "Rejections by reason code (see docs/protocol.md)",
                                        labels=["reason"])
        for reason, count in sorted(self.counters.rejected_by_reason.items()):
            by_reason.add_metric([reason], float(count))
        yield by_reason


class MetricsPortError(OSError):
    """/metrics cannot listen where the settings say (the port is taken)."""


def serve_metrics(counters: IngestCounters, host: str, port: int) -> CollectorRegistry:
    """Register the counters and, unless ``port`` is 0, serve them over HTTP."""
    registry = CollectorRegistry()
    registry.register(_CountersCollector(counters))
    if port:
        try:
            start_http_server(port, addr=host, registry=registry)
        except OSError as exc:
            raise MetricsPortError(
                f"ingest.metrics_port: cannot serve /metrics on {host}:{port}: "
                f"{exc.strerror or exc} (another process has it? choose another port, or 0 "
                "for none)") from None
    return registry
