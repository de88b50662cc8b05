"""Settings: file < environment < options; errors name the setting and the line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from kota_testing import REPO

from ingest.settings import IngestSettings
from kota.cli import configuration_markdown
from kota.config import ConfigError, load_settings
from kota.settings_doc import settings_rows


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
    ("ingest:\n  influx:\n    timeout_s: -1\n", "%s:3: ingest.influx.timeout_s: "),
    ("ingest:\n  mqtt:\n    port: 99999\n", "%s:3: ingest.mqtt.port: "),
    ("ingest:\n  batch_max_points: 10\n  colour: blue\n", "%s:3: ingest.colour: unknown setting"),
    ("ingest:\n  buffer:\n    when_full: panic\n", "%s:3: ingest.buffer.when_full: "),
    # A check of the whole model names its setting first: the line is that setting's.
    ("ingest:\n  min_timestamp: 2020-01-01T00:00:00\n",
     "%s:2: ingest.min_timestamp: min_timestamp needs a time zone"),
])
def test_errors_name_the_setting_and_its_line(tmp_path: Path, text: str, expected: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        load_settings(IngestSettings, "ingest", path, environ={})
    assert str(error.value).startswith(expected % path)
    assert len(error.value.problems) == 1 and "\n" not in str(error.value)


def test_environment_errors_name_the_variable_not_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"ingest\.mqtt\.port: Input should be a valid integer"):
        load_settings(IngestSettings, "ingest", None, environ={"KOTA_INGEST__MQTT__PORT": "x"})
    path = _write(tmp_path, "ingest:\n  mqtt:\n    port: 1883\n")
    with pytest.raises(ConfigError) as error:
        load_settings(IngestSettings, "ingest", path, environ={"KOTA_INGEST__MQTT__PORT": "abc"})
    assert str(error.value).startswith(
        "KOTA_INGEST__MQTT__PORT='abc': ingest.mqtt.port: Input should be a valid integer")
    assert str(path) not in str(error.value)
    with pytest.raises(ConfigError) as error:
        load_settings(IngestSettings, "ingest", path, environ={"KOTA_INGEST__MQTT__PROT": "1"})
    assert str(error.value) == ("KOTA_INGEST__MQTT__PROT='1': ingest.mqtt.prot: unknown setting "
                                "(did you mean 'port'?)")


def test_secrets_are_not_echoed() -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(IngestSettings, "ingest", None,
                      environ={"KOTA_INGEST__INFLUX__TOKEN": "[s3cret]"})
    assert "KOTA_INGEST__INFLUX__TOKEN=<hidden>: ingest.influx.token" in str(error.value)
    assert "s3cret" not in str(error.value)


def test_a_password_inside_a_url_is_not_echoed() -> None:
    from alerts.settings import AlertsSettings

    with pytest.raises(ConfigError) as error:
        load_settings(AlertsSettings, "alerts", None, environ={
            "KOTA_ALERTS__DATABASE__URL": "postgresql://kota:change-me-db@db:5432/kota"})
    assert "change-me placeholder" in str(error.value)
    assert "change-me-db" not in str(error.value)


def test_command_line_values_are_blamed_on_the_command_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "ingest:\n  mqtt:\n    port: 1883\n")
    with pytest.raises(ConfigError) as error:
        load_settings(IngestSettings, "ingest", path, {"mqtt": {"port": 99999}}, environ={})
    assert str(error.value) == ("command line: ingest.mqtt.port: Input should be less than or "
                                "equal to 65535 (got 99999)")


@pytest.mark.parametrize(("text", "expected"), [
    ("ingest:\n  mqtt:\n    host: x\n   port: 5\n", "%s:4: not valid YAML: "),
    ("ingest:\n\tmqtt: {}\n", "%s:2: not valid YAML: "),
    ("- ingest\n- simulate\n", "%s:1: expected sections like ingest:, simulate:, api:, "
                                 "indicators:, alerts:, found a list"),
    ("just words\n", "%s:1: expected sections like ingest:, "),
    ("ingest: 5\n", "%s:1: ingest: expected a mapping of settings"),
    ("api: {}\ningset:\n  mqtt: {}\n", "%s:2: unknown section 'ingset' (did you mean 'ingest'?); "
                                         "known: ingest, simulate, api, indicators"),
    ("ingest:\n  mqtt:\n    prot: 1883\n", "%s:3: ingest.mqtt.prot: unknown setting (did you "
                                           "mean 'port'?)"),
    ("ingest:\n  mqtt: {}\n  mqtt: {}\n", "%s:3: ingest.mqtt: given twice (first at line 2)"),
])
def test_file_problems_are_one_line_with_file_and_line(tmp_path: Path, text: str,
                                                         expected: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        load_settings(IngestSettings, "ingest", path, environ={})
    assert str(error.value).startswith(expected % path), str(error.value)
    assert len(error.value.problems) == 1 and "\n" not in str(error.value)


def test_unreadable_files_are_one_line(tmp_path: Path) -> None:
    binary = tmp_path / "kota.yaml"
    binary.write_bytes(b"ingest:\n  mqtt: \xff\xfe\n")
    with pytest.raises(ConfigError, match=r"kota\.yaml: not a UTF-8 text file"):
        load_settings(IngestSettings, "ingest", binary, environ={})
    with pytest.raises(ConfigError, match=r"missing\.yaml: configuration file not found"):
        load_settings(IngestSettings, "ingest", tmp_path / "missing.yaml", environ={})


def _kota(*args: str, env: dict[str, str] | None = None,
          cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    import os

    environ = {k: v for k, v in os.environ.items() if not k.startswith("KOTA_")}
    return subprocess.run([sys.executable, "-m", "kota", *args], capture_output=True, text=True,
                          timeout=60, env={**environ, **(env or {})}, cwd=cwd)


@pytest.mark.slow
def test_config_check_command_points_at_the_bad_line(tmp_path: Path) -> None:
    good = _write(tmp_path, "ingest:\n  mqtt:\n    host: 127.0.0.1\n")
    result = _kota("config", "check", str(good))
    assert result.returncode == 0, result.stderr
    assert "ingest: OK" in result.stdout and "valid" in result.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("ingest:\n  mqtt:\n    host: 127.0.0.1\n    prot: 1883\nweather: {}\n")
    result = _kota("config", "check", str(bad))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert (f"error: {bad}:4: ingest.mqtt.prot: unknown setting (did you mean 'port'?)"
            in result.stderr.splitlines())
    assert f"error: {bad}:5: unknown section 'weather'" in result.stderr
    assert result.stderr.splitlines()[-1] == f"error: {bad}: 2 problem(s)"


@pytest.mark.slow
def test_config_check_broken_and_missing_files(tmp_path: Path) -> None:
    broken = _write(tmp_path, "ingest:\n  mqtt:\n    host: [127.0.0.1\n")
    result = _kota("config", "check", str(broken))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(f"error: {broken}:") and "not valid YAML" in result.stderr
    result = _kota("config", "check", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert result.stderr == f"error: {tmp_path / 'nope.yaml'}: configuration file not found\n"
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _kota("config", "check", cwd=empty)  # no file given, none found
    assert result.returncode == 2 and "kota.example.yaml" in result.stderr


@pytest.mark.slow
def test_config_check_blames_environment_variables(tmp_path: Path) -> None:
    path = _write(tmp_path, "ingest:\n  mqtt:\n    port: 1883\n")
    result = _kota("config", "check", str(path), env={"KOTA_INGEST__MQTT__PORT": "abc"})
    assert result.returncode == 2
    assert result.stderr.splitlines()[0] == (
        "error: KOTA_INGEST__MQTT__PORT='abc': ingest.mqtt.port: Input should be a valid "
        "integer, unable to parse string as an integer")
    result = _kota("config", "check", str(path), env={"KOTA_INGEST__MQTT__PORT": "1884"})
    assert result.returncode == 0
    assert "ingest: OK (with KOTA_INGEST__MQTT__PORT from the environment)" in result.stdout


@pytest.mark.slow
def test_example_config_passes_check_and_loads_every_section() -> None:
    example = REPO / "kota.example.yaml"
    result = _kota("config", "check", str(example), cwd=REPO)
    assert result.returncode == 0, result.stderr
    for section in ("ingest", "simulate", "api", "indicators", "alerts"):
        assert f"{section}: OK" in result.stdout
    text = example.read_text(encoding="utf-8")
    assert text.count("#") > 40, "the example explains its settings"


@pytest.mark.slow
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


def test_settings_shown_by_check_hide_a_password_inside_a_url() -> None:
    from pydantic import BaseModel

    from kota.config import dump_settings

    class Inner(BaseModel):
        url: str = "postgresql://kota:s3cret-pw@db:5432/kota"
        urls: list[str] = ["http://a:other-pw@h/x", "sqlite:///run/kota.db"]

    class Outer(BaseModel):
        database: Inner = Inner()

    shown = dump_settings(Outer())
    assert "s3cret-pw" not in shown and "other-pw" not in shown
    assert "postgresql://kota:***@db:5432/kota" in shown
    assert "sqlite:///run/kota.db" in shown


def test_every_check_command_prints_settings_through_dump_settings() -> None:
    # A --check that dumped the model itself echoed URL passwords (kota api and indicators did).
    packages = ("api", "ingest", "indicators", "alerts", "simulators", "kota", "devstack")
    offenders = [str(path.relative_to(REPO)) for package in packages
                 for path in (REPO / package).rglob("cli.py")
                 if "safe_dump(settings.model_dump" in path.read_text(encoding="utf-8")]
    assert offenders == []
