"""What every rule kind gives the alert service.

A rule kind (one module in alerts/rules/, registered in ``RULE_KINDS``) turns what the service
sees into :class:`Finding` objects, one per scope (a gauge, a kecamatan, a device):

* ``on_reading`` — a decoded reading from the MQTT stream (rules on raw readings: a level
  crossing, a panic press, a battery), evaluated before the message is acknowledged;
* ``poll`` — InfluxQL queries over the indicator service's declared outputs (ISPU, rain
  categories), run every ``alerts.poll_interval_s``, and ``findings`` from their answers;
* ``on_tick`` — time alone (a device that fell silent).

The engine (alerts/engine.py) decides the alert's lifecycle from the finding's grade; the rest of
the finding (level, severity, texts, area, figures) becomes the alert's view.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from string import Formatter
from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from alerts.engine import Observation, Timing
from alerts.model import LANGUAGES, AlertText, Area, Audience, Certainty, Hazard, Severity, Urgency
from kota.registry import Device, Registry

__all__ = ["Finding", "MessageTemplates", "Reading", "RuleContext", "RuleKind", "RuleSettings",
           "Template", "render"]


class Template(BaseModel):
    """One language's message: ``str.format`` templates over the finding's ``details``."""

    model_config = ConfigDict(extra="forbid")

    headline: str
    description: str
    instruction: str = ""


MessageTemplates = dict[str, Template]   # by language code


class RuleSettings(BaseModel):
    """What every rule has; each kind's settings model adds its thresholds."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$",
                    description="The rule's name: alerts, CAP messages and silences use it")
    kind: str
    enabled: bool = True
    audience: Audience | None = Field(default=None,
                                      description="Who it is for; the kind's default if unset")
    pending_s: float = Field(default=0, ge=0,
                             description="How long the condition must hold before it fires")
    clear_after_s: float = Field(default=600, ge=0,
                                 description="How long a better level must hold before the "
                                             "alert lowers or resolves (no flapping)")
    repeat_s: float | None = Field(default=None, gt=0,
                                   description="Re-send a firing, unacknowledged alert this often")
    exercise: bool = Field(default=False,
                           description="A drill: its alerts carry CAP status Exercise and never "
                                       "reach the public")
    source: str = Field(default="", description="Where the thresholds come from")
    messages: dict[str, Template] | None = Field(
        default=None, description="Templates by language (id-ID, en-US); the kind's if unset")


SettingsT = TypeVar("SettingsT", bound=RuleSettings)


@dataclass(frozen=True)
class Reading:
    """One decoded, valid reading from the stream, with its device's registry entry."""

    city: str
    kind: str
    device_id: str
    fields: Mapping[str, object]
    at: datetime            # the device's time, or the time received if its clock is off
    received_at: datetime
    device_at: datetime | None   # the device's own time (None: it sent none)
    device: Device | None   # None: not in the registry


@dataclass
class RuleContext:
    """What rules may read: the registry (kept current by the service) and the city."""

    registry: Registry
    city: str


@dataclass(frozen=True)
class Finding:
    """One scope's condition at one moment, with what its message says."""

    scope: str
    at: datetime
    grade: int
    level: str
    severity: Severity
    urgency: Urgency
    certainty: Certainty
    area: Area
    city: str
    details: dict[str, Any] = field(default_factory=dict)
    texts: dict[str, AlertText] = field(default_factory=dict)   # set by the service

    def observation(self) -> Observation:
        return Observation(scope=self.scope, at=self.at, grade=self.grade, level=self.level)


def _fields(template: str) -> set[str]:
    return {name.split(".")[0].split("[")[0] for _, name, _, _ in Formatter().parse(template)
            if name}


def template_fields(templates: Mapping[str, Template]) -> set[str]:
    names: set[str] = set()
    for template in templates.values():
        for text in (template.headline, template.description, template.instruction):
            names |= _fields(text)
    return names


class _Defaulting(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"


def render(templates: Mapping[str, Template], details: Mapping[str, Any]) -> dict[str, AlertText]:
    """The texts in every language; a figure that is missing or None prints as "?" (never
    raises)."""
    values = _Defaulting({key: "?" if value is None else value
                          for key, value in details.items()})
    texts = {}
    for language in LANGUAGES:
        template = templates.get(language) or next(iter(templates.values()))
        texts[language] = AlertText(
            headline=template.headline.format_map(values),
            description=template.description.format_map(values),
            instruction=template.instruction.format_map(values))
    return texts


class RuleKind(Generic[SettingsT]):
    """One configured rule. Subclasses set the class variables and override what they use."""

    kind: ClassVar[str] = ""
    settings_model: ClassVar[type[RuleSettings]] = RuleSettings
    hazard: ClassVar[Hazard]
    default_audience: ClassVar[Audience] = "public"
    # Device kinds whose readings reach on_reading ("water", "safety", "*" for all).
    reading_kinds: ClassVar[frozenset[str]] = frozenset()
    # The figures its templates may use (checked when the rules file is loaded).
    detail_fields: ClassVar[frozenset[str]] = frozenset()
    default_messages: ClassVar[dict[str, dict[str, str]]] = {}
    grade_kind: ClassVar[Literal["level", "event"]] = "level"

    def __init__(self, settings: SettingsT, context: RuleContext) -> None:
        self.settings = settings
        self.context = context
        self.messages: MessageTemplates = settings.messages or {
            language: Template(**texts) for language, texts in self.default_messages.items()}

    @property
    def id(self) -> str:
        return self.settings.id

    @property
    def audience(self) -> Audience:
        return self.settings.audience or self.default_audience

    def timing(self) -> Timing:
        return Timing(fire_grade=1, pending_s=self.settings.pending_s,
                      clear_after_s=self.settings.clear_after_s, repeat_s=self.settings.repeat_s)

    def on_reading(self, reading: Reading) -> Sequence[Finding]:
        return ()

    def queries(self, now: datetime) -> Sequence[str]:
        """InfluxQL statements whose answers ``findings`` reads (none: the rule does not poll)."""
        return ()

    def findings(self, answers: Sequence[list[dict[str, Any]]], now: datetime
                 ) -> Sequence[Finding]:
        return ()

    def on_tick(self, now: datetime) -> Sequence[Finding]:
        return ()

    def heard(self, city: str, kind: str, device_id: str, at: datetime) -> Sequence[Finding]:
        """A message arrived from ``device_id`` whose payload no rule reads (the service does
        not decode it): for rules that only need to know a device is alive."""
        return ()

    def restore(self, scope: str, grade: int) -> None:
        """An alert of this rule is active at ``scope`` with ``grade`` (read back from the
        database at start or after a reload): rules that keep memory take it back."""

    def texts(self, finding: Finding) -> dict[str, AlertText]:
        return render(self.messages, finding.details)
