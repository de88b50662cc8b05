"""The logging settings and the city name, shared by every service's settings model."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from kota.logs import LogFormat, LogLevel
from kota.registry import CITY_PATTERN

__all__ = ["CITY_PATTERN", "CityName", "LogFormat", "LogLevel", "LoggingSettings"]

# The city part of a topic (kota/<city>/<kind>/<device>): the registry's rule, one type.
CityName = Annotated[str, StringConstraints(pattern=CITY_PATTERN)]


class LoggingSettings(BaseModel):
    """``log_level`` and ``log_format`` of a service; its settings model extends this class,
    so the names stay top-level (``ingest.log_level``, ``KOTA_API__LOG_FORMAT``)."""

    model_config = ConfigDict(extra="forbid")

    log_level: LogLevel = Field(default="info", description="debug, info, warning or error")
    log_format: LogFormat = Field(default="text",
                                  description="text for people, json for log collectors "
                                              "(one object a line: ts, level, logger, msg and "
                                              "the record's context fields)")
