"""Device formats, one folder each (``__init__.py`` with the decoder, ``README.md``, a sample).

A format decodes an MQTT message (topic and payload) into readings; the kinds then validate
them and kota/lineproto.py encodes them, so a new device format is a new folder here plus one
line in ``FORMATS`` below, and nothing else changes. The contract is in ``_contract.py``.
"""

from __future__ import annotations

from pathlib import Path

from kota.formats._contract import (
    REASONS,
    Decoded,
    DecodeRules,
    DeviceFormat,
    Reading,
    Refusal,
    Source,
)
from kota.formats.kota_json import KotaJson

__all__ = ["DEFAULT_FORMAT", "FORMATS", "FORMATS_DIR", "REASONS", "DecodeRules", "Decoded",
           "DeviceFormat", "Reading", "Refusal", "Source"]

FORMATS_DIR = Path(__file__).parent

FORMATS: dict[str, type[DeviceFormat]] = {
    "kota_json": KotaJson,
}

DEFAULT_FORMAT = "kota_json"
