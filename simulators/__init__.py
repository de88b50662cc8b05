"""Kota Cerdas simulators: a believable city published over real MQTT.

Public API (see README.md beside this file):

- ``run(settings, stop_event, on_progress=..., sink=...) -> RunSummary``: simulate and publish.
- ``build_stream(settings, now_s) -> (CityStream, SimulationWindow)``: the pure message stream.
- ``SimulateSettings``: the ``simulate:`` section of kota.yaml.
- ``load_scenario(name_or_path) -> Scenario``.
"""

from simulators.generator import CityStream, SimMessage, StreamStats
from simulators.runner import RunSummary, SimulationWindow, build_stream, run, simulation_window
from simulators.scenario import Scenario, load_scenario, scenario_names
from simulators.settings import FAULT_TYPES, SimulateSettings

__all__ = [
    "FAULT_TYPES",
    "CityStream",
    "RunSummary",
    "Scenario",
    "SimMessage",
    "SimulateSettings",
    "SimulationWindow",
    "StreamStats",
    "build_stream",
    "load_scenario",
    "run",
    "scenario_names",
    "simulation_window",
]
