"""Ingest: the MQTT consumer that validates device messages and writes them to InfluxDB.

Entry point: ``kota ingest`` (kota/cli.py). See README.md in this folder.
"""

from ingest.service import IngestService
from ingest.settings import IngestSettings

__all__ = ["IngestService", "IngestSettings"]
