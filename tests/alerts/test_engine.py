"""The alert lifecycle as a pure function, step by step (alerts/engine.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alerts.engine import AlertState, Observation, Timing, decide

T0 = datetime(2026, 1, 1, 6, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def run(timing: Timing, steps: list[tuple[float, int | None]]) -> list[tuple[str | None, str,
                                                                              int, int]]:
    """Feed (minute, grade or None for a tick) and collect (event, status, grade, version)."""
    state: AlertState | None = None
    trace = []
    for minute, grade in steps:
        observation = None if grade is None else Observation("g", at(minute), grade)
        decision = decide(timing, state, observation, at(minute))
        state = decision.state
        trace.append((decision.event, state.status if state else "-",
                      state.grade if state else 0, state.version if state else 0))
        if state is not None and state.status == "resolved":
            state = None
    return trace


def test_fires_at_once_escalates_and_deescalates_after_the_clear_time() -> None:
    timing = Timing(fire_grade=1, pending_s=0, clear_after_s=600)
    trace = run(timing, [(0, 0), (1, 1), (2, 2), (3, 3), (4, 2), (10, 2), (14, 2), (20, 0),
                         (25, 0), (30, 0)])
    assert trace == [
        (None, "-", 0, 0),
        ("fired", "firing", 1, 1),
        ("escalated", "firing", 2, 2),
        ("escalated", "firing", 3, 3),
        (None, "firing", 3, 3),            # lower, waiting out clear_after_s
        (None, "firing", 3, 3),
        ("deescalated", "firing", 2, 4),   # 10 min after the first lower reading
        (None, "firing", 2, 4),
        (None, "firing", 2, 4),
        ("resolved", "resolved", 2, 5),    # clear for 10 min
    ]


def test_a_level_hovering_at_the_threshold_does_not_flap() -> None:
    timing = Timing(fire_grade=1, clear_after_s=900)
    grades = [1, 0, 1, 0, 1, 0, 1, 0, 1, 0]
    trace = run(timing, [(minute * 5, grade) for minute, grade in enumerate(grades)])
    assert [event for event, *_ in trace if event] == ["fired"]


def test_pending_fires_only_after_the_pending_duration_and_withdraws_if_it_clears() -> None:
    timing = Timing(fire_grade=1, pending_s=3600)
    trace = run(timing, [(0, 1), (30, 1), (59, 1), (60, None)])
    assert [t[:2] for t in trace] == [("pending", "pending"), (None, "pending"),
                                      (None, "pending"), ("fired", "firing")]
    withdrawn = run(timing, [(0, 1), (30, 0), (40, 1)])
    assert [t[:2] for t in withdrawn] == [("pending", "pending"), ("withdrawn", "resolved"),
                                          ("pending", "pending")]


def test_repeats_while_firing_but_not_once_acknowledged() -> None:
    timing = Timing(fire_grade=1, repeat_s=3600)
    state = decide(timing, None, Observation("g", at(0), 1), at(0)).state
    assert state is not None and state.version == 1
    assert decide(timing, state, None, at(59)).event is None
    repeated = decide(timing, state, None, at(60))
    assert repeated.event == "repeated" and repeated.notify and repeated.state is not None
    assert repeated.state.version == 2
    acknowledged = AlertState(**{**state.__dict__, "status": "acknowledged"})
    assert decide(timing, acknowledged, None, at(600)).event is None
    # ... until it escalates: firing again, notified.
    escalated = decide(timing, acknowledged, Observation("g", at(601), 2), at(601))
    assert escalated.event == "escalated" and escalated.state is not None
    assert escalated.state.status == "firing"


@pytest.mark.parametrize(("fire_grade", "grades", "fired"), [
    (1, [0, 0, 0], False),
    (1, [0, 1], True),
    (2, [1, 1, 1], False),
    (2, [1, 2], True),
    (3, [3], True),
])
def test_the_firing_grade(fire_grade: int, grades: list[int], fired: bool) -> None:
    trace = run(Timing(fire_grade=fire_grade), [(m, g) for m, g in enumerate(grades)])
    assert any(event == "fired" for event, *_ in trace) is fired
