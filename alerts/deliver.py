"""``kota alerts deliver``'s settings: the part of section ``alerts:`` a delivery-only process
uses.

A deliver process needs the database, the subscription settings, its log settings and the
metrics address; it reads them from the same ``alerts:`` section as ``kota alerts`` and leaves
the rest (rules, channels, MQTT, InfluxDB) to ``kota alerts``, which validates them. Not
importing that model keeps a deliver process about 30 MB smaller (the rule kinds and the
channels' client libraries): with one process per channel that is what keeps kota alerts and
its deliver processes within issue 12's 300 MB (docs/benchmarks.md).
"""

from __future__ import annotations

from pydantic import ConfigDict, Field

from alerts.subscriptions.settings import SubscriptionSettings
from kota.settings import LoggingSettings
from store.settings import DatabaseSettings

__all__ = ["DeliverSettings"]


class DeliverSettings(LoggingSettings):
    """What ``kota alerts deliver`` reads of ``alerts:`` (the other keys are ``kota alerts``'
    and are checked by it)."""

    model_config = ConfigDict(extra="ignore")

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    subscriptions: SubscriptionSettings = Field(default_factory=SubscriptionSettings)
    metrics_host: str = Field(default="127.0.0.1", description="Prometheus /metrics address")
