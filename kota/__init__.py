"""Kota Cerdas: the shared domain package (kinds, units, payloads, InfluxDB I/O, config, CLI)."""

__version__ = "0.1.0"
