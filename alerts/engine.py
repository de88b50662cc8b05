"""The lifecycle of one alert, as a pure function: (rule timing, state, observation, now) →
the next state and what happened.

The semantics are those Grafana Alerting and ThingsBoard users expect:

* **pending**: the condition holds (grade ≥ the rule's firing grade) but not yet for
  ``pending_s``; nothing is sent. If it clears first, the pending alert is withdrawn.
* **firing**: version 1 is an Alert; a worse grade escalates at once (an Update); a better one
  must hold for ``clear_after_s`` before the alert de-escalates or resolves (hysteresis in time;
  rule kinds add hysteresis in value, e.g. centimetres below a Siaga threshold). A firing alert
  that is not acknowledged is repeated every ``repeat_s``.
* **acknowledged**: an operator has seen it; no more repeats. Escalation makes it firing again.
* **resolved**: the all-clear (a CAP Cancel), by the engine or an operator.

There is one active alert per rule and scope; the state module (alerts/state.py) stores it and
queues a notification for every version this module creates.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from alerts.model import AlertStatus

__all__ = ["AlertState", "Decision", "EventKind", "Observation", "Timing", "decide"]

EventKind = Literal["pending", "fired", "escalated", "deescalated", "repeated", "acknowledged",
                    "resolved", "withdrawn"]


@dataclass(frozen=True)
class Timing:
    """A rule's timing and threshold, in seconds and in the rule's own grades."""

    fire_grade: int = 1          # the lowest grade that is an alert
    pending_s: float = 0.0       # how long the condition must hold before firing
    clear_after_s: float = 0.0   # how long a better grade must hold before it is believed
    repeat_s: float | None = None   # re-send a firing, unacknowledged alert this often


@dataclass(frozen=True)
class Observation:
    """What a rule saw for one scope at one moment. ``grade`` 0 means the condition is clear;
    the rest describes the level for the messages (kept as the alert's latest view)."""

    scope: str
    at: datetime
    grade: int
    level: str = ""


@dataclass(frozen=True)
class AlertState:
    """What the engine needs of a stored alert."""

    status: AlertStatus
    grade: int
    version: int
    pending_since: datetime
    fired_at: datetime | None = None
    clear_since: datetime | None = None
    last_notified_at: datetime | None = None
    # The grade seen while waiting out clear_after_s: the worst since clear_since.
    clear_grade: int = 0


@dataclass(frozen=True)
class Decision:
    """The next state (None: no active alert) and the event, if anything happened. ``notify``:
    a new version to send (``state.version`` is its number)."""

    state: AlertState | None
    event: EventKind | None = None
    notify: bool = False


def _elapsed(since: datetime | None, now: datetime, seconds: float) -> bool:
    return since is not None and now - since >= timedelta(seconds=seconds)


def decide(timing: Timing, state: AlertState | None, observation: Observation | None,
           now: datetime) -> Decision:
    """One step. ``observation`` None: no new reading, only time passed (the service ticks)."""
    if state is None:
        if observation is None or observation.grade < timing.fire_grade:
            return Decision(None)
        pending = AlertState(status="pending", grade=observation.grade, version=0,
                             pending_since=observation.at)
        if timing.pending_s <= 0:
            return _fire(pending, now)
        return Decision(pending, "pending")

    if state.status == "pending":
        if observation is not None:
            if observation.grade < timing.fire_grade:
                return Decision(replace(state, status="resolved"), "withdrawn")
            state = replace(state, grade=observation.grade)
        if _elapsed(state.pending_since, now, timing.pending_s):
            return _fire(state, now)
        return Decision(state)

    # firing or acknowledged
    if observation is not None:
        if observation.grade > state.grade:
            escalated = replace(state, status="firing", grade=observation.grade,
                                version=state.version + 1, clear_since=None, clear_grade=0,
                                last_notified_at=now)
            return Decision(escalated, "escalated", notify=True)
        if observation.grade == state.grade:
            state = replace(state, clear_since=None, clear_grade=0)
        elif state.clear_since is None:
            state = replace(state, clear_since=observation.at, clear_grade=observation.grade)
        else:
            state = replace(state, clear_grade=max(state.clear_grade, observation.grade))
    if state.clear_since is not None and _elapsed(state.clear_since, now, timing.clear_after_s):
        if state.clear_grade < timing.fire_grade:
            resolved = replace(state, status="resolved", version=state.version + 1,
                               clear_since=None, last_notified_at=now)
            return Decision(resolved, "resolved", notify=True)
        lowered = replace(state, grade=state.clear_grade, version=state.version + 1,
                          clear_since=None, clear_grade=0, last_notified_at=now)
        return Decision(lowered, "deescalated", notify=True)
    if (state.status == "firing" and timing.repeat_s
            and _elapsed(state.last_notified_at, now, timing.repeat_s)):
        repeated = replace(state, version=state.version + 1, last_notified_at=now)
        return Decision(repeated, "repeated", notify=True)
    return Decision(state)


def _fire(state: AlertState, now: datetime) -> Decision:
    fired = replace(state, status="firing", version=1, fired_at=now, last_notified_at=now)
    return Decision(fired, "fired", notify=True)
