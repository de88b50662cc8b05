"""The indicator service's counters on Prometheus ``/metrics``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


@dataclass
class IndicatorCounters:
    windows: dict[str, int] = field(default_factory=dict)
    points_written: int = 0
    errors: int = 0
    last_pass_s: float = 0.0
    watermark_ms: dict[str, int] = field(default_factory=dict)
    influx_up: bool = True


class _Collector(Collector):
    def __init__(self, counters: IndicatorCounters) -> None:
        self.counters = counters

    def collect(self) -> Iterator[Metric]:
        windows = CounterMetricFamily("kota_indicators_windows_computed",
                                      "Windows computed, by window length", labels=["window"])
        for name, count in sorted(self.counters.windows.items()):
            windows.add_metric([name], float(count))
        yield windows
        yield CounterMetricFamily("kota_indicators_points_written",
                                  "Indicator points written to InfluxDB",
                                  value=float(self.counters.points_written))
        yield CounterMetricFamily("kota_indicators_errors", "Passes that failed",
                                  value=float(self.counters.errors))
        yield GaugeMetricFamily("kota_indicators_last_pass_seconds",
                                "Duration of the last pass", value=self.counters.last_pass_s)
        yield GaugeMetricFamily("kota_indicators_influx_up", "1 while InfluxDB answers",
                                value=float(self.counters.influx_up))
        watermark = GaugeMetricFamily("kota_indicators_watermark_seconds",
                                      "End of the latest computed window (epoch s)",
                                      labels=["window"])
        for name, value in sorted(self.counters.watermark_ms.items()):
            watermark.add_metric([name], value / 1000)
        yield watermark


def serve_metrics(counters: IndicatorCounters, host: str, port: int) -> None:
    if not port:
        return
    registry = CollectorRegistry()
    registry.register(_Collector(counters))
    start_http_server(port, addr=host, registry=registry)
