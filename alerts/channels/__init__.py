"""The alert channels: one folder per type (``alerts/channels/<type>/``), the contract they
share (:mod:`alerts.channels._contract`) and the registry of types
(:mod:`alerts.channels.registry`: ``CHANNEL_TYPES``, the settings union, ``build_channels``).

This file imports only the contract: a process that needs no channel (``kota alerts deliver``)
does not load httpx and paho by importing the package.
"""

from __future__ import annotations

from alerts.channels._contract import SEVERITY_RANK, Channel, ChannelSettings, DeliveryError

__all__ = ["SEVERITY_RANK", "Channel", "ChannelSettings", "DeliveryError"]
