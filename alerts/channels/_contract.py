"""What every alert channel gives the dispatcher (alerts/outbox.py).

A channel is one folder, ``alerts/channels/<type>/``, with ``__init__.py`` (a :class:`Channel`
subclass and its settings model, a pydantic model whose ``type`` field is the folder's name), a
README and a sample configuration. Channels are configured by name under ``alerts.channels``:

    alerts:
      channels:
        - name: bpbd-oncall
          type: webhook
          url: https://bpbd.example.go.id/hooks/kota
          audiences: [public, operators]
          min_severity: Moderate

The engine writes one outbox row per (alert version, channel that :meth:`Channel.accepts` it) in
the same transaction as the state change; the dispatcher calls :meth:`Channel.send` until it
succeeds, backing off between tries, or gives up after ``max_attempts`` (the row is then
``failed``, visible in the API and /metrics). ``send`` may therefore be called more than once
for the same (alert, version): it passes ``idempotency_key`` on so a receiver can drop repeats.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from alerts.model import SEVERITY_RANK, AlertView, Audience, Hazard

__all__ = ["SEVERITY_RANK", "Channel", "ChannelSettings", "DeliveryError"]



class DeliveryError(Exception):
    """A send that did not succeed. ``retryable`` False: trying again cannot help (a 4xx other
    than 408/429, an address refused); the row fails at once. ``retry_after_s``: the receiver
    said when to come back."""

    def __init__(self, message: str, *, retryable: bool = True,
                 retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after_s = retry_after_s


class ChannelSettings(BaseModel):
    """The settings every channel has; each channel's model adds its own and a ``type``."""

    model_config = ConfigDict(extra="forbid")

    type: str
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$",
                      description="This channel's name (outbox rows, logs, metrics)")
    audiences: list[Audience] = Field(
        default=["public", "operators", "field"],
        description="Which alerts it receives: public, operators (safety: never public), field "
                    "(device health)")
    hazards: list[Hazard] | None = Field(
        default=None, description="Only these hazards (flood, air, rain, safety, device); "
                                  "empty: all")
    min_severity: Literal["Minor", "Moderate", "Severe", "Extreme"] = Field(
        default="Minor", description="Lowest CAP severity sent")
    exercises: bool = Field(
        default=False,
        description="Also receive drills (CAP status Exercise/Test). Only for operators' own "
                    "channels: a drill must never reach the public")
    resolved: bool = Field(default=True, description="Also send the all-clear (CAP Cancel)")


SettingsT = TypeVar("SettingsT", bound=ChannelSettings)


class Channel(ABC, Generic[SettingsT]):
    """One configured channel. Instances live as long as the dispatcher; :meth:`send` is
    called for one notification at a time per channel, :meth:`close` once at the end."""

    kind: ClassVar[str] = ""   # the folder's name, the settings' ``type``
    settings_model: ClassVar[type[ChannelSettings]] = ChannelSettings

    def __init__(self, settings: SettingsT) -> None:
        self.settings = settings

    @property
    def name(self) -> str:
        return self.settings.name

    def accepts(self, view: AlertView) -> bool:
        """Whether this version of the alert goes to this channel (decided when it is queued)."""
        settings = self.settings
        if view.audience not in settings.audiences:
            return False
        if settings.hazards and view.hazard not in settings.hazards:
            return False
        if view.cap_status != "Actual" and not settings.exercises:
            return False  # drills go only to channels that opted in (operators' own)
        if view.msg_type == "Cancel":
            return settings.resolved
        return SEVERITY_RANK[view.severity] >= SEVERITY_RANK[settings.min_severity]

    @abstractmethod
    async def send(self, view: AlertView, idempotency_key: str) -> None:
        """Deliver one notification, or raise :class:`DeliveryError`."""

    async def close(self) -> None:
        """Release connections (an SMTP session, an HTTP pool)."""
