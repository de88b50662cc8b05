"""``kota broker acl|passwords --agent``: an agent id that owns no registered device is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from kota.broker import agent_candidates, unmatched_agents
from kota.broker_cli import broker
from kota.registry import Device, Registry

REGISTRY_YAML = """\
devices:
  - {device_id: pi-01-air, kind: air, city: jakarta, district: Menteng, lat: -6.2, lon: 106.8}
  - {device_id: pi-01-status, kind: status, city: jakarta, district: Menteng, lat: -6.2,
     lon: 106.8}
  - {device_id: pi-02-water, kind: air, city: jakarta, district: Menteng, lat: -6.2, lon: 106.8}
  - {device_id: aq-1, kind: air, city: jakarta, district: Menteng, lat: -6.2, lon: 106.8}
  - {device_id: aq-1-status, kind: status, city: jakarta, district: Menteng, lat: -6.2,
     lon: 106.8}
"""


def _device(device_id: str, kind: str) -> Device:
    return Device(device_id=device_id, kind=kind, city="jakarta", district="Menteng", lat=-6.2,
                  lon=106.8)


def test_unmatched_agents_and_candidates() -> None:
    registry = Registry([_device("pi-01-air", "air"), _device("pi-01-status", "status"),
                         _device("pi-02-water", "air"), _device("aq-1", "air"),
                         _device("aq-1-status", "status"), _device("tebet-noise", "noise")])
    # pi-02-water is of kind air: not pi-02's; aq-1-status is aq-1's heartbeat twin
    assert unmatched_agents(registry, ["pi-01", "pi-02", "pi-01", "aq"]) == ["pi-02", "aq"]
    assert agent_candidates(registry) == ["pi-01", "tebet"]
    assert agent_candidates(Registry([_device("aq-1", "air")])) == []


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    path = tmp_path / "devices.yaml"
    path.write_text(REGISTRY_YAML)
    return path


def test_acl_with_a_matching_agent_grants_its_devices(registry: Path) -> None:
    result = CliRunner().invoke(broker, ["acl", "--registry", str(registry), "--agent", "pi-01"])
    assert result.exit_code == 0, result.output
    assert ("user pi-01\ntopic write kota/jakarta/air/pi-01-air\n"
            "topic write kota/jakarta/status/pi-01-status\n") in result.stdout


@pytest.mark.parametrize("command", ["acl", "passwords"])
def test_an_agent_without_devices_is_refused_with_how_devices_match(
        registry: Path, tmp_path: Path, command: str) -> None:
    file = tmp_path / "device-passwords.txt"
    args = [command, "--registry", str(registry), "--agent", "pi-01", "--agent", "pi-02"]
    if command == "passwords":
        args += ["--file", str(file)]
    result = CliRunner().invoke(broker, args)
    assert result.exit_code == 1
    assert result.stdout == ""  # no ACL printed: a half-right one would be installed
    assert not file.exists()
    message = " ".join(result.stderr.split())
    assert message.startswith("Error: --agent pi-02: no device in "), message
    assert "ID-<kind> with <kind> their own kind" in message
    assert "pi-02-air of kind air" in message
    assert message.endswith("Agent ids the registry has devices for: pi-01.")


def test_a_registry_without_agent_devices_says_so(tmp_path: Path) -> None:
    path = tmp_path / "devices.yaml"
    path.write_text(REGISTRY_YAML.replace("pi-01", "aq-9").replace("pi-02-water", "wl-2"))
    result = CliRunner().invoke(broker, ["acl", "--registry", str(path), "--agent", "pi-01"])
    assert result.exit_code == 1
    assert "Agent ids the registry has devices for: aq-9" in result.stderr
    none = tmp_path / "plain.yaml"
    none.write_text("devices:\n" + "\n".join(REGISTRY_YAML.splitlines()[-3:]) + "\n")
    result = CliRunner().invoke(broker, ["acl", "--registry", str(none), "--agent", "pi-01"])
    assert result.exit_code == 1
    assert "The registry has no device named like that" in " ".join(result.stderr.split())


def test_help_explains_the_refusal() -> None:
    result = CliRunner().invoke(broker, ["acl", "--help"])
    assert "owns no registered device is an error" in " ".join(result.output.split())
