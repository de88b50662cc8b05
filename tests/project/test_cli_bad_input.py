"""Every command that reads kota.yaml answers a broken file or a bad value with short lines that
name the file and line (or the environment variable) and the setting; never a traceback.

Each command runs as a subprocess in an empty folder, with a configuration that stops it before
anything starts (--check, or `config check`/`config show`, or `deadletter`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from kota_testing import REPO

# command (FILE = the configuration file) -> the section it reads, a setting of that section
# whose value must be an integer, and a good value for it.
COMMANDS: dict[str, tuple[list[str], str, str, str]] = {
    "ingest": (["ingest", "--config", "FILE", "--check"], "ingest", "metrics_port", "9108"),
    "config check": (["config", "check", "FILE"], "ingest", "batch_max_points", "5000"),
    "config show": (["config", "show", "api", "--config", "FILE"], "api", "port", "8000"),
    "simulate": (["simulate", "--config", "FILE", "--check"], "simulate", "seed", "1"),
    "api": (["api", "--config", "FILE", "--check"], "api", "port", "8000"),
    "indicators": (["indicators", "--config", "FILE", "--check"], "indicators", "metrics_port",
                   "9110"),
    "rollup plan": (["indicators", "rollup", "plan", "--config", "FILE"], "indicators",
                    "write_batch_points", "5000"),
    "deadletter": (["deadletter", "--config", "FILE", "--summary"], "ingest", "metrics_port",
                   "9108"),
}


def _case(name: str, section: str, key: str, good: str) -> tuple[str, dict[str, str], str]:
    """(file text, environment, the start of the expected error after 'FILE')."""
    typo = section[0] + section[2] + section[1] + section[3:]  # ingest -> ignest
    return {
        "broken YAML": (f"{section}:\n  {key}: {good}\n   {key}: [1\n", {},
                        ":3: not valid YAML: "),
        "a list": (f"- {section}\n- {key}\n", {}, ":1: expected sections like ingest:, "),
        "a scalar section": (f"{section}: {good}\n", {},
                             f":1: {section}: expected a mapping of settings"),
        "unknown section": (f"{section}:\n  {key}: {good}\n{typo}:\n  {key}: 1\n", {},
                            f":3: unknown section {typo!r} (did you mean {section!r}?)"),
        "unknown key": (f"{section}:\n  {key}x: {good}\n", {},
                        f":2: {section}.{key}x: unknown setting (did you mean {key!r}?)"),
        "wrong type": (f"{section}:\n  {key}: lots\n", {},
                       f":2: {section}.{key}: Input should be a valid integer"),
        "bad environment variable": (
            f"{section}:\n  {key}: {good}\n", {f"KOTA_{section.upper()}__{key.upper()}": "lots"},
            f"KOTA_{section.upper()}__{key.upper()}='lots': {section}.{key}: Input should be a "
            "valid integer"),
    }[name]


CASES = ["broken YAML", "a list", "a scalar section", "unknown section", "unknown key",
         "wrong type", "bad environment variable"]


def _run(tmp_path: Path, argv: list[str], text: str | None,
         env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], Path]:
    config = tmp_path / "settings.yaml"
    if text is not None:
        config.write_text(text, encoding="utf-8")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KOTA_")}
    environ["PYTHONPATH"] = str(REPO)
    argv = [str(config) if arg == "FILE" else arg for arg in argv]
    result = subprocess.run([sys.executable, "-m", "kota", *argv], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120,
                            env={**environ, **env})
    return result, config


def _assert_short_error(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    matching = [line for line in errors if expected in line]
    assert matching, f"expected {expected!r} in:\n{result.stderr}"
    assert all(len(line) < 300 for line in errors), result.stderr
    # One line per problem (config check adds a count); nothing else.
    assert len(errors) <= 2, result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("command", list(COMMANDS))
def test_bad_configuration_is_one_line_naming_file_line_or_variable(
        tmp_path: Path, command: str, case: str) -> None:
    argv, section, key, good = COMMANDS[command]
    text, env, expected = _case(case, section, key, good)
    result, config = _run(tmp_path, argv, text, env)
    _assert_short_error(result, expected if expected.startswith("KOTA_") else f"{config}{expected}")


@pytest.mark.slow
@pytest.mark.parametrize("command", list(COMMANDS))
def test_missing_configuration_file_is_one_line(tmp_path: Path, command: str) -> None:
    argv = COMMANDS[command][0]
    result, config = _run(tmp_path, argv, None, {})
    _assert_short_error(result, f"{config}: configuration file not found")
    result, _ = _run(tmp_path, [a for a in argv if a not in ("--config", "FILE")], None,
                     {"KOTA_CONFIG": str(tmp_path / "gone.yaml")})
    _assert_short_error(result, f"$KOTA_CONFIG points to {tmp_path / 'gone.yaml'}, which does "
                                "not exist")


# Every command that reads the device registry, with a registry that is not valid YAML.
REGISTRY_COMMANDS = {
    "ingest": ["ingest", "--registry", "REGISTRY", "--check"],
    "api": ["api", "--registry", "REGISTRY", "--check"],
    "indicators": ["indicators", "--registry", "REGISTRY", "--check"],
    "broker acl": ["broker", "acl", "--registry", "REGISTRY"],
}


@pytest.mark.slow
@pytest.mark.parametrize("command", list(REGISTRY_COMMANDS))
def test_broken_registry_is_one_line_naming_file_and_line(tmp_path: Path, command: str) -> None:
    registry = tmp_path / "devices.yaml"
    registry.write_text("devices:\n  - {device_id: aq-1, kind: air\n", encoding="utf-8")
    argv = [str(registry) if arg == "REGISTRY" else arg for arg in REGISTRY_COMMANDS[command]]
    result, _config = _run(tmp_path, argv, None, {})
    _assert_short_error(result, f"{registry}:2: not valid YAML")
