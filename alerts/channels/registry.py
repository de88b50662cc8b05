"""The alert channels, by type: the registry, the settings union and building them.

Adding a channel: a folder ``alerts/channels/<type>/`` (settings model with
``type: Literal["<type>"]``, a :class:`Channel` subclass, README.md, sample.yaml), one line in
:data:`CHANNEL_TYPES` and its settings model in :data:`ChannelConfig`. Kept out of the
package's ``__init__`` so that what needs only the contract (the subscription senders of
``kota alerts deliver``) does not load every channel's client library.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import Field

from alerts.channels._contract import Channel, ChannelSettings
from alerts.channels.email import EmailChannel, EmailSettings
from alerts.channels.mqtt import MqttChannel, MqttChannelSettings
from alerts.channels.webhook import WebhookChannel, WebhookSettings

__all__ = ["CHANNEL_TYPES", "ChannelConfig", "build_channels", "duplicate_names"]

CHANNEL_TYPES: dict[str, type[Channel[Any]]] = {
    "webhook": WebhookChannel,
    "email": EmailChannel,
    "mqtt": MqttChannel,
}

# One entry of ``alerts.channels``: the model is chosen by ``type``.
ChannelConfig = Annotated[WebhookSettings | EmailSettings | MqttChannelSettings,
                          Field(discriminator="type")]


def duplicate_names(configs: Sequence[ChannelSettings]) -> str | None:
    """A one-line problem if two channels share a name (outbox rows are addressed by name)."""
    first: dict[str, int] = {}
    for index, config in enumerate(configs):
        if config.name in first:
            return (f"channels: the name {config.name!r} is given to entries {first[config.name]}"
                    f" and {index} (counting from 0); each channel needs its own name")
        first[config.name] = index
    return None


def build_channels(configs: Sequence[ChannelSettings]) -> list[Channel[Any]]:
    """One channel per configuration, in order; ``ValueError`` on a duplicate name or a type
    with no channel."""
    problem = duplicate_names(configs)
    if problem:
        raise ValueError(problem)
    channels: list[Channel[Any]] = []
    for config in configs:
        channel_type = CHANNEL_TYPES.get(config.type)
        if channel_type is None:
            raise ValueError(f"channels: {config.name}: unknown type {config.type!r}; known: "
                             f"{', '.join(sorted(CHANNEL_TYPES))}")
        channels.append(channel_type(config))
    return channels
