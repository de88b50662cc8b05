"""Kota Cerdas: the shared domain package (kinds, units, payloads, InfluxDB I/O, config, CLI).

The ground of the code: it imports no service above it (docs/architecture.md).
"""

__version__ = "0.1.0"
