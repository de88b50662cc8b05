"""Setting models every service shares: the MQTT connection, logging, the city name.

Services compose them into their own models (``ingest.mqtt`` and ``simulate.mqtt`` extend
:class:`MqttConnection`; every service model extends :class:`LoggingSettings`), so one setting
is spelt, bounded and validated the same everywhere. Loaded by ``kota.config.load_settings``.
"""

from kota.settings.common import CITY_PATTERN, CityName, LogFormat, LoggingSettings, LogLevel
from kota.settings.mqtt import AccountBoundConnection, MqttConnection

__all__ = ["CITY_PATTERN", "AccountBoundConnection", "CityName", "LogFormat", "LogLevel",
           "LoggingSettings", "MqttConnection"]
