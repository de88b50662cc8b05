"""Settings: file < environment < options; errors name the setting and the line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ingest.settings import IngestSettings
from kota.cli import configuration_markdown
from kota.config import ConfigError, load_settings
from kota.settings_doc import settings_rows

REPO = Path(__file__).resolve().parent.parent


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kota.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_file_then_environment_then_overrides(tmp_path: Path) -> None:
    path = _write(tmp_path, "ingest:\n  mqtt:\n    host: broker.file\n    port: 1884\n"
                            "  batch_max_points: 100\n")
    settings = load_settings(IngestSettings, "ingest", path,
                             overrides={"batch_max_points": 7},
                             environ={"KOTA_INGEST__MQTT__PORT": "1999",
                                      "KOTA_INGEST__MQTT__TOPICS": '["a/#", "b/#"]'})
    assert settings.mqtt.host == "broker.file"
    assert settings.mqtt.port == 1999
    assert settings.mqtt.topics == ["a/#", "b/#"]
    assert settings.batch_max_points == 7


@pytest.mark.parametrize(("text", "expected"), [
    ("ingest:\n  influx:\n    timeout_s: -1\n", "ingest.influx.timeout_s (%s:3)"),
    ("ingest:\n  mqtt:\n    port: 99999\n", "ingest.mqtt.port (%s:3)"),
    ("ingest:\n  batch_max_points: 10\n  colour: blue\n", "ingest.colour (%s:3)"),
    ("ingest:\n  buffer:\n    when_full: panic\n", "ingest.buffer.when_full (%s:3)"),
    ("ingest:\n  min_timestamp: 2020-01-01T00:00:00\n", "ingest (%s:1)"),
])
def test_errors_name_the_setting_and_its_line(tmp_path: Path, text: str, expected: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        load_settings(IngestSettings, "ingest", path, environ={})
    if expected.startswith("ingest ("):
        assert "time zone" in str(error.value)
    else:
        assert expected % path in str(error.value)


def test_environment_errors_name_the_setting() -> None:
    with pytest.raises(ConfigError, match=r"ingest\.mqtt\.port: Input should be a valid integer"):
        load_settings(IngestSettings, "ingest", None, environ={"KOTA_INGEST__MQTT__PORT": "x"})


def test_config_check_command_points_at_the_bad_line(tmp_path: Path) -> None:
    good = _write(tmp_path, "ingest:\n  mqtt:\n    host: 127.0.0.1\n")
    result = subprocess.run([sys.executable, "-m", "kota", "config", "check", str(good)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("ingest:\n  mqtt:\n    host: 127.0.0.1\n    prot: 1883\nweather: {}\n")
    result = subprocess.run([sys.executable, "-m", "kota", "config", "check", str(bad)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"ingest.mqtt.prot ({bad}:4)" in result.stderr
    assert "unknown section 'weather'" in result.stderr


def test_ingest_help_documents_every_setting() -> None:
    result = subprocess.run([sys.executable, "-m", "kota", "ingest", "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    rows = settings_rows(IngestSettings, "ingest")
    assert len(rows) > 30
    for dotted, env, _default, description in rows:
        assert dotted in result.stdout and env in result.stdout, dotted
        assert description, f"{dotted} has no description"


def test_configuration_doc_is_generated_from_the_models() -> None:
    documented = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert documented == configuration_markdown(), (
        "docs/configuration.md is stale: run `kota config docs --write docs/configuration.md`")


def test_ingest_sample_config_validates() -> None:
    settings = load_settings(IngestSettings, "ingest", REPO / "ingest" / "sample.yaml",
                             environ={})
    assert settings.influx.database == "kota"
    assert settings.registry_file is not None and (REPO / settings.registry_file).exists()
