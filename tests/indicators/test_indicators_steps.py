"""The registry of indicator steps (indicators.steps): every indicator module registers its
computation, and IndicatorService.points_for runs them in order."""

from __future__ import annotations

import re

import pytest
from kota_testing import REPO as REPO_ROOT

import indicators.service  # noqa: F401  (importing it registers every step)
from indicators import steps
from indicators.outputs import OUTPUTS

ROOT = REPO_ROOT


def test_each_window_length_runs_its_steps_in_order() -> None:
    assert [s.name for s in steps.registered("1m")] == ["siaga-minute", "safety-incidents-minute"]
    assert [s.name for s in steps.registered("1h")] == ["air", "siaga", "rain", "noise", "safety",
                                                        "uptime"]
    assert [s.name for s in steps.registered("1d")][-1] == "city"


def test_every_module_that_writes_a_measurement_registers_a_step() -> None:
    writers = {spec.source for spec in OUTPUTS.values()} - {"indicators/service.py"}
    for source in writers:
        text = (ROOT / source).read_text(encoding="utf-8")
        assert re.search(r"^steps\.add\(", text, re.MULTILINE), source


def test_a_step_registered_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        steps.add("air", ("1h",), 1, steps.STEPS["air"].compute)
