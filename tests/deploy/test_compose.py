"""docker-compose.yml, Dockerfile, .env.example and deploy/: checked without a Docker engine.

No engine ran on the build machine, so the compose file is checked for what its services need
(pinned images, mounted files that exist and parse, settings that exist, health checks the
dependencies wait for). What can run without Docker runs for real: the InfluxDB init script
against a stand-in ``influx`` command, ingest's health check against a metrics page, and
deploy/mosquitto/mosquitto.conf in the Debian mosquitto (ports, data folder and secrets moved
to a temporary folder; secrets made by deploy/mosquitto/make-secrets.sh) holding a persistent
session's backlog across a restart. tests/deploy/test_broker_security.py tests the access control.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from fnmatch import fnmatch
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from broker_setup import (
    COMPOSE,
    MAKE_SECRETS,
    MOSQUITTO_CONF,
    REPO,
    SECRETS_TARGET,
    SERVICES,
    TEST_PASSWORDS,
    local_conf,
    make_secrets,
    start_broker,
    stop_broker,
)
from pydantic import BaseModel

from devstack.localstack import free_port
from ingest.metrics import IngestCounters, serve_metrics
from ingest.settings import IngestSettings
from kota.config import ConfigError, load_settings
from kota.mqtt._packets import (
    CONNACK,
    PUBACK,
    SUBACK,
    Message,
    connect_packet,
    encode_varint,
    puback_packets,
    split_packets,
    subscribe_packet,
)

# Bind mounts whose files are generated (secrets, never committed), with the script making them.
GENERATED_MOUNTS = {"./deploy/mosquitto/secrets/broker": MAKE_SECRETS}
# .env.example entries read by a script, not by docker-compose.yml.
SCRIPT_VARIABLES = {"MOSQUITTO_TLS_NAMES": MAKE_SECRETS, "MOSQUITTO_INGEST_WORKERS": MAKE_SECRETS}
# The shared device registry: a named volume, written by the API only, seeded by registry-init.
REGISTRY_VOLUME, REGISTRY_DIR = "registry", "/var/lib/kota/registry"
REGISTRY_READERS = ("ingest", "indicators", "alerts")
INIT_DIR = REPO / "deploy" / "influxdb" / "init"
DEMO_ONLY = {"simulator"}  # the platform runs without it; the simulated city is opt-in
ALWAYS_ON = {"mosquitto", "influxdb"}
# Published ports an operator may open to other machines; every other one defaults to loopback.
PUBLIC_PORTS = {("mosquitto", 8883): "KOTA_MQTTS_BIND_ADDRESS",
                ("api", 8000): "KOTA_API_BIND_ADDRESS"}
ADMIN_PORTS = {("influxdb", 8086): "KOTA_INFLUX_BIND_ADDRESS",
               ("grafana", 3000): "KOTA_GRAFANA_BIND_ADDRESS",
               ("ingest", 9108): "KOTA_METRICS_BIND_ADDRESS",
               ("mosquitto", 1883): None}  # plain MQTT: always loopback
RESTART_POLICIES = {"always", "unless-stopped", "on-failure"}

# -- helpers -------------------------------------------------------------------------------
_REFERENCE = re.compile(r"\$(?:\$|\{(?P<braced>[^}]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")
_EXPRESSION = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>.*))?", re.S)


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, $$."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        expression = _EXPRESSION.fullmatch(match.group("braced") or match.group("bare") or "")
        assert expression, f"malformed variable reference {match.group(0)!r}"
        name, op, arg = expression.group("name", "op", "arg")
        value = env.get(name)
        if op in (":?", "?") and (value is None or (op == ":?" and not value)):
            raise AssertionError(f"${{{name}}} is required: {arg}")
        if (op == ":-" and not value) or (op == "-" and value is None):
            return str(arg)
        return value or ""

    return _REFERENCE.sub(replace, text)


def referenced_variables(node: Any) -> set[str]:
    """Names of the variables the compose file interpolates (in values, not comments)."""
    if isinstance(node, dict):
        return set().union(*(referenced_variables(v) for v in node.values()), set())
    if isinstance(node, list):
        return set().union(*(referenced_variables(v) for v in node), set())
    names: set[str] = set()
    if isinstance(node, str):
        for match in _REFERENCE.finditer(node):
            if match.group(0) != "$$":
                expression = _EXPRESSION.fullmatch(match.group("braced") or match.group("bare"))
                assert expression, f"malformed variable reference {match.group(0)!r}"
                names.add(expression.group("name"))
    return names


def env_example() -> dict[str, str]:
    values: dict[str, str] = {}
    for line in (REPO / ".env.example").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, separator, value = line.partition("=")
            assert separator, f".env.example: not NAME=value: {line!r}"
            values[name.strip()] = value.strip().strip("'\"")
    return values


def service_env(name: str) -> dict[str, str]:
    raw = SERVICES[name].get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.partition("=")[::2] for item in raw)
    return {key: str(value) for key, value in raw.items()}


def mounts(name: str) -> list[tuple[str, str, bool]]:
    """(source, target, read_only) of a service's volumes, short or long syntax."""
    result = []
    for volume in SERVICES[name].get("volumes", []):
        if isinstance(volume, dict):
            result.append((volume["source"], volume["target"], bool(volume.get("read_only"))))
        else:
            source, target, *mode = volume.split(":")
            result.append((source, target, "ro" in (mode[0].split(",") if mode else [])))
    return result


def is_bind(source: str) -> bool:
    return source.startswith((".", "/", "~"))


def pinned(image: str) -> bool:
    """An explicit release (at least major.minor.patch) or a digest; never latest or untagged."""
    if re.fullmatch(r"[^@\s]+@sha256:[0-9a-f]{64}", image):
        return True
    name, _, tag = image.rpartition(":")
    # PostgreSQL (10 and later) numbers its patch releases major.minor: 15.18 is a patch release.
    release = r"\d+\.\d+(?![.\d])" if name == "postgres" else r"\d+\.\d+\.\d+(?![.\d])"
    return bool(name) and "/" not in tag and bool(re.match(release, tag))


def setting_exists(model: type[BaseModel], path: list[str]) -> bool:
    field = model.model_fields.get(path[0])
    if field is None:
        return False
    annotation = field.annotation
    nested = isinstance(annotation, type) and issubclass(annotation, BaseModel)
    if len(path) == 1:
        return not nested
    return nested and setting_exists(annotation, path[1:])  # type: ignore[arg-type]


def setting_path(variable: str, prefix: str) -> list[str]:
    return [part.lower() for part in variable.removeprefix(prefix).split("__")]


_DURATION_S = {"h": 3600, "d": 86400, "w": 7 * 86400, "m": 30 * 86400, "y": 365 * 86400}


def mosquitto_options(text: str) -> list[tuple[str, str]]:
    options = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip() and not line.startswith("#"):
            key, _, value = line.strip().partition(" ")
            assert re.fullmatch(r"[a-z_0-9]+", key), f"mosquitto.conf:{number}: bad option {key!r}"
            assert value.strip(), f"mosquitto.conf:{number}: {key} has no value"
            options.append((key, value.strip()))
    return options


def validate_mounted_file(path: Path) -> None:
    relative = path.relative_to(REPO)
    if path.suffix in (".yaml", ".yml"):
        yaml.safe_load(path.read_text(encoding="utf-8"))
    elif path.suffix == ".json":
        json.loads(path.read_text(encoding="utf-8"))
    elif path.suffix == ".py":
        compile(path.read_text(encoding="utf-8"), str(path), "exec")
    elif path.suffix == ".sh":
        result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True,
                                timeout=10, check=False)
        assert result.returncode == 0, f"{relative}: bash -n: {result.stderr}"
        assert path.read_text(encoding="utf-8").startswith("#!"), f"{relative}: no #! line"
        assert os.access(path, os.X_OK), f"{relative}: not executable (chmod +x)"
    elif path.name == "mosquitto.conf":
        mosquitto_options(path.read_text(encoding="utf-8"))
    else:
        pytest.fail(f"{relative} is mounted but no check knows its kind: add one here")


# -- the compose file ----------------------------------------------------------------------
def test_compose_parses_with_the_expected_services() -> None:
    assert isinstance(COMPOSE, dict) and isinstance(SERVICES, dict)
    assert {*ALWAYS_ON, *DEMO_ONLY} <= set(SERVICES)


def test_pin_rule_rejects_floating_tags() -> None:
    assert pinned("influxdb:2.7.12") and pinned("python:3.11.14-slim-bookworm")
    assert pinned("eclipse-mosquitto@sha256:" + "a" * 64)
    assert pinned("postgres:15.18") and not pinned("postgres:15") and not pinned("redis:7.2")
    for floating in ("influxdb", "influxdb:latest", "influxdb:2", "influxdb:2.7",
                     "influxdb:2.7-alpine", "localhost:5000/influxdb"):
        assert not pinned(floating), floating


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_image_pinned_or_built_from_the_dockerfile(name: str) -> None:
    service = SERVICES[name]
    if "build" not in service:
        assert pinned(service.get("image", "")), f"{name}: image {service.get('image')!r}"
        return
    build = service["build"]
    context = REPO / (build if isinstance(build, str) else build.get("context", "."))
    dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
    assert (context / dockerfile).resolve() == REPO / "Dockerfile", name


def test_dockerfile_base_pinned_installs_the_project_and_drops_root() -> None:
    lines = [line.strip() for line in (REPO / "Dockerfile").read_text().splitlines()]
    bases = [line.split()[1] for line in lines if line.upper().startswith("FROM ")]
    assert bases and all(pinned(base) for base in bases), bases
    # The image is the platform: the project with its server extra (the agent's is for the Pi).
    assert any(re.search(r"\bpip install (\.|'\.\[server\]')(\s|$)", line) for line in lines)
    users = [line.split()[1] for line in lines if line.upper().startswith("USER ")]
    assert users and users[-1] not in ("root", "0"), "the image must not run as root"
    assert 'ENTRYPOINT ["kota"]' in lines


def test_dockerignore_keeps_secrets_out_and_the_package_in() -> None:
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    for secret in (".env", ".venv", "run"):
        assert any(fnmatch(secret, pattern) for pattern in patterns), secret
    for needed in ("pyproject.toml", "kota", "ingest", "simulators", "api"):
        assert not any(fnmatch(needed, pattern) for pattern in patterns), needed


def test_bind_mounts_exist_parse_and_are_read_only() -> None:
    checked = 0
    for name in SERVICES:
        for source, target, read_only in mounts(name):
            if not is_bind(source):
                continue
            path = (REPO / source).resolve()
            assert path.is_relative_to(REPO) and path.exists(), f"{name}: {source} missing"
            assert read_only, f"{name}: mount {source} -> {target} should end in :ro"
            if source in GENERATED_MOUNTS:  # checked by test_generated_mount_is_made_by_script
                continue
            for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
                if file.is_file():
                    validate_mounted_file(file)
                    checked += 1
    assert checked >= 3


def _git_ignored(path: Path) -> bool:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    result = subprocess.run(["git", "-C", str(REPO), "check-ignore", "-q", str(path)],
                            capture_output=True, timeout=10, check=False)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode == 0


def test_generated_mount_is_made_by_script_and_git_ignored() -> None:
    """The secrets folder is committed empty; the script makes every file the config names."""
    (source, script), = GENERATED_MOUNTS.items()
    assert (source, SECRETS_TARGET, True) in mounts("mosquitto")
    folder = REPO / source
    assert (folder / ".gitkeep").is_file() and not _git_ignored(folder / ".gitkeep")
    validate_mounted_file(script)  # bash -n, #!, executable
    text = script.read_text(encoding="utf-8")
    named = [value.removeprefix(SECRETS_TARGET + "/")
             for _, value in mosquitto_options(MOSQUITTO_CONF.read_text(encoding="utf-8"))
             if value.startswith(SECRETS_TARGET + "/")]
    assert sorted(named) == ["acl", "ca.crt", "passwd", "server.crt", "server.key"], named
    for file in named:
        assert f'"$out/broker/{file}"' in text, f"make-secrets.sh does not write {file}"
        assert _git_ignored(folder / file), f"{source}/{file} would be committed"
    for file in ("ca.key", "device-passwords.txt"):
        assert _git_ignored(folder.parent / file), file
    # A real run of the script is in tests/deploy/test_broker_security.py.


def test_named_volumes_are_declared_and_used() -> None:
    declared = set(COMPOSE.get("volumes") or {})
    used = {source for name in SERVICES for source, _, _ in mounts(name) if not is_bind(source)}
    assert used <= declared, f"volumes used but not declared: {used - declared}"
    assert declared <= used, f"volumes declared but unused: {declared - used}"
    for name in (*ALWAYS_ON, "ingest", "postgres"):
        assert any(not is_bind(source) for source, _, _ in mounts(name)), f"{name}: no volume"


def test_health_checks_and_what_waits_for_them() -> None:
    for name in (*ALWAYS_ON, "ingest", "postgres", "api", "grafana"):
        check = SERVICES[name].get("healthcheck") or {}
        assert check.get("test", [""])[0] in ("CMD", "CMD-SHELL"), f"{name}: no health check"
        assert {"interval", "timeout", "retries"} <= set(check), name
    for name, service in SERVICES.items():
        for dependency, rule in (service.get("depends_on") or {}).items():
            assert dependency in SERVICES, f"{name} depends on unknown {dependency}"
            if rule.get("condition") == "service_healthy":
                assert "healthcheck" in SERVICES[dependency], f"{name} waits on {dependency}"
    waits = SERVICES["ingest"]["depends_on"]
    assert all(waits[s]["condition"] == "service_healthy" for s in ALWAYS_ON)


def test_restart_policies() -> None:
    for name, service in SERVICES.items():
        assert service.get("restart") in RESTART_POLICIES, name


def test_only_the_simulator_is_under_profile_demo() -> None:
    for name, service in SERVICES.items():
        expected = ["demo"] if name in DEMO_ONLY else None
        assert service.get("profiles") == expected, name


# -- settings and variables ----------------------------------------------------------------
def _section_models() -> dict[str, type[BaseModel]]:
    simulate = pytest.importorskip("simulators.settings")
    api = pytest.importorskip("api.settings")
    indicators = pytest.importorskip("indicators.settings")
    models = {"KOTA_INGEST__": IngestSettings, "KOTA_SIMULATE__": simulate.SimulateSettings,
              "KOTA_API__": api.ApiSettings, "KOTA_INDICATORS__": indicators.IndicatorSettings}
    alerts = pytest.importorskip("alerts.settings")
    return {**models, "KOTA_ALERTS__": alerts.AlertsSettings}


def test_kota_variables_are_real_settings() -> None:
    assert not setting_exists(IngestSettings, ["mqtt", "hostname"])  # the walk can say no
    assert not setting_exists(IngestSettings, ["mqtt"])  # a section is not a setting
    models = _section_models()
    checked, unknown = 0, []
    for name, service in SERVICES.items():
        if "build" not in service:  # Grafana's own variables are not kota settings
            continue
        for variable in service_env(name):
            if variable == "KOTA_CONFIG" or not variable.startswith("KOTA_"):
                continue
            prefix = next((p for p in models if variable.startswith(p)), None)
            if prefix is None or not setting_exists(models[prefix], setting_path(variable, prefix)):
                unknown.append(f"{name}: {variable}")
            checked += 1
    assert checked >= 10 and not unknown, f"no such setting: {unknown}"


def test_simulator_container_settings_resolve() -> None:
    model = _section_models()["KOTA_SIMULATE__"]
    env = {k: interpolate(v, env_example()) for k, v in service_env("simulator").items()}
    settings: Any = load_settings(model, "simulate", None, environ=env)
    assert (settings.mqtt.host, settings.mqtt.port) == ("mosquitto", 1883)
    assert settings.mqtt.username == "kota-simulator" and settings.mqtt.password is not None
    assert settings.mqtt.password.get_secret_value() == env_example()[
        "MOSQUITTO_SIMULATOR_PASSWORD"]
    assert settings.mqtt.qos >= 1, "QoS 0 messages are not queued for ingest's session"


def test_variables_match_env_example() -> None:
    defined = env_example()
    used = referenced_variables(COMPOSE)
    assert used - set(defined) == set(), "used in compose, missing from .env.example"
    assert set(defined) - used == set(SCRIPT_VARIABLES), "in .env.example, unused by compose"
    for name, script in SCRIPT_VARIABLES.items():
        assert f"env_value {name})" in script.read_text(encoding="utf-8"), name
    secrets = [name for name in defined
               if name.endswith(("_PASSWORD", "_TOKEN"))]
    assert len(secrets) >= 13, secrets
    for name in secrets:
        assert defined[name].startswith("change-me"), f"{name} must be a placeholder"
    assert interpolate("${A:-x}/${B-y}/${B:-z}/${C}/$$", {"B": ""}) == "x//z//$"
    with pytest.raises(AssertionError):
        interpolate("${A:?set A}", {"A": ""})


def _filled_env_example() -> dict[str, str]:
    """.env.example with each change-me placeholder replaced, as an operator would."""
    return {name: value.replace("change-me", "filled-in")
            for name, value in env_example().items()}


@pytest.mark.parametrize(("service", "variable", "setting"), [
    ("ingest", "INFLUXDB_INGEST_PASSWORD", "influx.password"),
    ("ingest", "MOSQUITTO_INGEST_PASSWORD", "mqtt.password"),
    ("indicators", "INFLUXDB_INDICATORS_PASSWORD", "influx.password"),
    ("api", "INFLUXDB_API_PASSWORD", "influx.password"),
    ("api", "POSTGRES_PASSWORD", "database.url"),
    ("alerts", "INFLUXDB_ALERTS_PASSWORD", "influx.password"),
    ("alerts", "MOSQUITTO_ALERTS_PASSWORD", "mqtt.password"),
    ("alerts", "POSTGRES_PASSWORD", "database.url"),
])
def test_services_refuse_change_me_placeholders(service: str, variable: str,
                                                setting: str) -> None:
    """Issue 10: a placeholder left in .env stops the service at start, naming the setting."""
    settings_class = _section_models()[f"KOTA_{service.upper()}__"]
    defined = {**_filled_env_example(), variable: env_example()[variable]}
    env = {key: interpolate(value, defined) for key, value in service_env(service).items()}
    load_settings(settings_class, service, None,  # the same, filled in: starts
                  environ={key: interpolate(value, _filled_env_example())
                           for key, value in service_env(service).items()})
    with pytest.raises(ConfigError, match="is still the change-me placeholder") as caught:
        load_settings(settings_class, service, None, environ=env)
    assert len(str(caught.value).splitlines()) == 1
    assert setting in str(caught.value)


def test_ingest_container_settings_resolve_and_match_influxdb() -> None:
    defined = _filled_env_example()
    env = {key: interpolate(value, defined) for key, value in service_env("ingest").items()}
    influx_env = {k: interpolate(v, defined) for k, v in service_env("influxdb").items()}
    targets = {target: source for source, target, _ in mounts("ingest")}
    config_file = REPO / targets[env["KOTA_CONFIG"]] if "KOTA_CONFIG" in env else None
    settings = load_settings(IngestSettings, "ingest", config_file, environ=env)
    assert settings.influx.version == 2
    assert settings.influx.url == "http://influxdb:8086"
    assert settings.influx.database == influx_env["V1_DB_NAME"]
    # Its own write-only v1 authorization (test_each_service_gets_the_least_influx_rights).
    assert settings.influx.token is None and settings.influx.username == "kota-ingest"
    assert settings.influx.password is not None
    assert settings.influx.password.get_secret_value() == influx_env["INFLUXDB_INGEST_PASSWORD"]
    assert (settings.mqtt.host, settings.mqtt.port) == ("mosquitto", 1883)
    assert settings.mqtt.username == "kota-ingest" and settings.mqtt.password is not None
    assert settings.mqtt.password.get_secret_value() == defined["MOSQUITTO_INGEST_PASSWORD"]
    volumes = [t for s, t, _ in mounts("ingest") if not is_bind(s)]
    for folder in (settings.buffer.dir, settings.deadletter.dir):
        assert any(str(folder).startswith(v + "/") for v in volumes), f"{folder} not on a volume"
    assert settings.metrics_host == "0.0.0.0"
    assert f":{settings.metrics_port}/" in " ".join(SERVICES["ingest"]["healthcheck"]["test"])
    assert any(p.endswith(f":{settings.metrics_port}") for p in SERVICES["ingest"]["ports"])


# -- InfluxDB init script ------------------------------------------------------------------
def test_init_folder_holds_only_executable_shell_scripts() -> None:
    files = sorted(INIT_DIR.iterdir())
    assert files, "deploy/influxdb/init is empty"
    for path in files:  # the image runs only executable *.sh files, silently skipping others
        assert path.suffix == ".sh" and os.access(path, os.X_OK), path.name


@pytest.fixture
def fake_influx(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    # Records each call's arguments, one a line, and a line "--" after each call.
    (bin_dir / "influx").write_text(
        f'#!/bin/bash\nprintf "%s\\n" "$@" -- >> {calls}\nexit "${{FAKE_INFLUX_EXIT:-0}}"\n')
    (bin_dir / "influx").chmod(0o755)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "DOCKER_INFLUXDB_INIT_ORG": "kota",
           "DOCKER_INFLUXDB_INIT_BUCKET": "kota", "DOCKER_INFLUXDB_INIT_BUCKET_ID": "0a1b2c",
           "V1_DB_NAME": "kota", "V1_RP_NAME": "autogen"}
    yield calls, env


def _run_init(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = INIT_DIR / "10-kota-dbrp.sh"
    return subprocess.run([str(script)], env=env, capture_output=True, text=True, timeout=10,
                          check=False)


def test_init_script_maps_the_v1_database_onto_the_bucket(
        fake_influx: tuple[Path, dict[str, str]]) -> None:
    calls, env = fake_influx
    result = _run_init(env)
    assert result.returncode == 0, result.stderr
    args = calls.read_text().split("\n")[:-2]
    assert args[:3] == ["v1", "dbrp", "create"] and "--" not in args
    options = " ".join(args[3:])
    for expected in ("--bucket-id 0a1b2c", "--db kota", "--rp autogen", "--org kota", "--default"):
        assert expected in options, options


def test_init_script_fails_loudly(fake_influx: tuple[Path, dict[str, str]]) -> None:
    calls, env = fake_influx
    assert _run_init({**env, "FAKE_INFLUX_EXIT": "1"}).returncode != 0
    without_bucket = {k: v for k, v in env.items() if k != "DOCKER_INFLUXDB_INIT_BUCKET_ID"}
    calls.unlink(missing_ok=True)
    assert _run_init(without_bucket).returncode != 0 and not calls.exists()


# -- least privilege: InfluxDB credentials --------------------------------------------------
OPERATOR_SECRETS = ("INFLUXDB_ADMIN_TOKEN", "INFLUXDB_ADMIN_PASSWORD")
# What each service may do on the bucket, and where its credential is set (issue 10).
INFLUX_RIGHTS = {"ingest": {"write"}, "indicators": {"read", "write"}, "api": {"read"},
                 "alerts": {"read", "write"}, "grafana": {"read"}}


def test_only_influxdb_setup_gets_the_operator_token() -> None:
    for name in SERVICES:
        env = service_env(name)
        used = referenced_variables(env) & set(OPERATOR_SECRETS)
        if name == "influxdb":
            assert env["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"].startswith("${INFLUXDB_ADMIN_TOKEN:?")
            assert env["DOCKER_INFLUXDB_INIT_MODE"] == "setup"
        else:
            assert not used, f"{name} gets {used}"
            assert not any(key.endswith("__INFLUX__TOKEN") for key in env), name


def _run_tokens_script(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(INIT_DIR / "20-kota-tokens.sh")], env=env, capture_output=True,
                          text=True, timeout=10, check=False)


def _recorded_calls(calls: Path) -> list[list[str]]:
    result, current = [], []
    for line in calls.read_text().splitlines() if calls.exists() else []:
        if line == "--":
            result.append(current)
            current = []
        else:
            current.append(line)
    return result


def _service_credential(name: str, defined: dict[str, str]) -> tuple[str, str]:
    """(user, password) the service logs in to InfluxDB with, as its container would see them."""
    env = {key: interpolate(value, defined) for key, value in service_env(name).items()}
    if name == "grafana":  # its datasource reads these (dashboards/provisioning/datasources)
        return env["KOTA_GRAFANA_INFLUX_USER"], env["KOTA_GRAFANA_INFLUX_PASSWORD"]
    prefix = f"KOTA_{name.upper()}__INFLUX__"
    assert env[prefix + "VERSION"] == "2" and env[prefix + "URL"] == "http://influxdb:8086"
    models = _section_models()
    if prefix.removesuffix("INFLUX__") in models:  # the service's own settings read them
        settings: Any = load_settings(models[prefix.removesuffix("INFLUX__")], name, None,
                                      environ=env)
        assert settings.influx.token is None and settings.influx.password is not None
        return settings.influx.username, settings.influx.password.get_secret_value()
    return env[prefix + "USERNAME"], env[prefix + "PASSWORD"]


def test_each_service_gets_the_least_influx_rights(
        fake_influx: tuple[Path, dict[str, str]]) -> None:
    """The init script run with the influxdb service's environment: each service's credential
    (from its own environment) is an authorization the script creates, with exactly its rights."""
    calls, shim_env = fake_influx
    defined = {name: f"{value}-{name.lower()}-0123456789" if "change-me" in value else value
               for name, value in _filled_env_example().items()}
    influx_env = {k: interpolate(v, defined) for k, v in service_env("influxdb").items()}
    result = _run_tokens_script({**influx_env, "PATH": shim_env["PATH"],
                                 "DOCKER_INFLUXDB_INIT_BUCKET_ID": "0a1b2c"})
    assert result.returncode == 0, result.stderr
    created = {}
    for call in _recorded_calls(calls):
        assert call[:3] == ["v1", "auth", "create"], call
        flags = dict(zip(call[3::2], call[4::2], strict=False))
        rights = {flag.removeprefix("--").removesuffix("-bucket") for flag in call[3::2]
                  if flag in ("--read-bucket", "--write-bucket")}
        assert all(call[i + 1] == "0a1b2c" for i, flag in enumerate(call)
                   if flag in ("--read-bucket", "--write-bucket"))
        created[flags["--username"]] = (flags["--password"], rights)
    credentials = {name: _service_credential(name, defined) for name in INFLUX_RIGHTS}
    assert len({password for _, password in credentials.values()}) == len(INFLUX_RIGHTS), (
        "two services share an InfluxDB password")
    for name, (user, password) in credentials.items():
        assert user in created, f"{name} logs in as {user}, which the script does not create"
        assert created[user] == (password, INFLUX_RIGHTS[name]), name
    assert set(created) == {user for user, _ in credentials.values()}


def test_tokens_script_runs_after_the_dbrp_mapping() -> None:
    names = sorted(path.name for path in INIT_DIR.glob("*.sh"))
    assert names.index("20-kota-tokens.sh") > names.index("10-kota-dbrp.sh")  # the image's order


# -- bind addresses ------------------------------------------------------------------------
def _published(env: dict[str, str]) -> dict[tuple[str, int], str]:
    """(service, container port) -> host address, with ``env`` as .env."""
    result = {}
    for name, service in SERVICES.items():
        for spec in service.get("ports", []):
            parts = interpolate(str(spec), env).split(":")
            assert len(parts) == 3, f"{name}: {spec} names no host address (Docker's: 0.0.0.0)"
            result[(name, int(parts[2]))] = parts[0]
    return result


def test_admin_interfaces_default_to_loopback() -> None:
    assert set(_published({})) == set(PUBLIC_PORTS) | set(ADMIN_PORTS)
    assert set(_published({}).values()) == {"127.0.0.1"}
    # Opening the public-facing ports to every interface leaves the admin ones on loopback.
    opened = {variable: "0.0.0.0" for variable in PUBLIC_PORTS.values()}
    published = _published(opened)
    for port in PUBLIC_PORTS:
        assert published[port] == "0.0.0.0", port
    for port, variable in ADMIN_PORTS.items():
        assert published[port] == "127.0.0.1", port
        if variable is not None:  # each has a variable of its own
            assert _published({variable: "192.0.2.7"})[port] == "192.0.2.7", port
    example = env_example()
    assert "KOTA_BIND_ADDRESS" not in example
    for variable in (*PUBLIC_PORTS.values(), *filter(None, ADMIN_PORTS.values())):
        assert example[variable] == "127.0.0.1", variable


# -- PostgreSQL and the alerts service -----------------------------------------------------
def test_postgres_service_stays_on_the_compose_network() -> None:
    postgres = SERVICES["postgres"]
    assert re.fullmatch(r"postgres:15\.\d+", postgres["image"]), postgres["image"]
    assert "ports" not in postgres and "network_mode" not in postgres
    assert ("postgres-data", "/var/lib/postgresql/data", False) in mounts("postgres")
    assert "pg_isready" in postgres["healthcheck"]["test"]
    env = service_env("postgres")
    assert env["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    with pytest.raises(AssertionError, match="is required"):
        interpolate(env["POSTGRES_PASSWORD"], {})
    filled = _filled_env_example()
    for name, variable in (("api", "KOTA_API__DATABASE__URL"),
                           ("alerts", "KOTA_ALERTS__DATABASE__URL")):
        assert SERVICES[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
        url = urlsplit(interpolate(service_env(name)[variable], filled))
        assert (url.scheme, url.hostname, url.port) == ("postgresql", "postgres", 5432), name
        assert (url.username, url.path) == (env["POSTGRES_USER"], "/" + env["POSTGRES_DB"])
        assert url.password == filled["POSTGRES_PASSWORD"], name


def test_alerts_service_block() -> None:
    alerts = SERVICES["alerts"]
    assert alerts["command"] == ["alerts"]
    assert (alerts["image"], alerts["build"]) == (SERVICES["api"]["image"],
                                                  SERVICES["api"]["build"])
    assert {name: rule["condition"] for name, rule in alerts["depends_on"].items()} == {
        "postgres": "service_healthy", "influxdb": "service_healthy",
        "mosquitto": "service_healthy", "registry-init": "service_completed_successfully"}
    env = service_env("alerts")
    assert env["KOTA_ALERTS__MQTT__USERNAME"] == "kota-alerts"
    assert env["KOTA_ALERTS__MQTT__PASSWORD"].startswith("${MOSQUITTO_ALERTS_PASSWORD:?")
    assert env["KOTA_ALERTS__MQTT__HOST"] == "mosquitto"
    assert 'env_value MOSQUITTO_ALERTS_PASSWORD)' in MAKE_SECRETS.read_text(encoding="utf-8")


def test_alerts_mqtt_channel_has_a_broker_account_of_its_own() -> None:
    """The channel and the stream subscriber cannot share a login: the broker binds client ids
    to user names, so they would take over each other's session."""
    settings_class = _section_models()["KOTA_ALERTS__"]
    filled = _filled_env_example()
    env = {key: interpolate(value, filled) for key, value in service_env("alerts").items()}
    settings: Any = load_settings(settings_class, "alerts", None, environ=env)
    (channel,) = settings.channels
    assert channel.type == "mqtt" and channel.audiences == ["public"]
    broker = channel.broker
    assert (broker.host, broker.port) == ("mosquitto", 1883)
    assert broker.username == broker.client_id == "kota-alerts-publisher"
    assert broker.username != settings.mqtt.username == "kota-alerts"
    assert broker.resolved_password() == filled["MOSQUITTO_ALERTS_PUBLISHER_PASSWORD"]
    # Required in Compose: the service publishes there.
    with pytest.raises(AssertionError, match="MOSQUITTO_ALERTS_PUBLISHER_PASSWORD"):
        interpolate(service_env("alerts")["KOTA_ALERTS__CHANNELS"], {})
    # A bad channel's error shows the start of the variable, never the password at its end.
    bad = {**env, "KOTA_ALERTS__CHANNELS": env["KOTA_ALERTS__CHANNELS"].replace(
        "port: 1883", "port: 99999")}
    with pytest.raises(ConfigError) as caught:
        load_settings(settings_class, "alerts", None, environ=bad)
    assert "channels.0.mqtt.broker.port" in str(caught.value)
    assert filled["MOSQUITTO_ALERTS_PUBLISHER_PASSWORD"] not in str(caught.value)
    text = MAKE_SECRETS.read_text(encoding="utf-8")
    assert "env_value MOSQUITTO_ALERTS_PUBLISHER_PASSWORD)" in text


# -- the shared device registry and provisioning -------------------------------------------
def test_registry_is_a_shared_volume_only_the_api_writes() -> None:
    """Provisioning replaces the registry file by a rename: a single-file bind mount would keep
    showing the old file, so every service mounts the folder (a named volume) instead."""
    assert REGISTRY_VOLUME in (COMPOSE.get("volumes") or {})
    for name in ("api", *REGISTRY_READERS):
        registry = service_env(name)[f"KOTA_{name.upper()}__REGISTRY_FILE"]
        assert registry.startswith(REGISTRY_DIR + "/"), f"{name}: {registry}"
        shared = [(source, read_only) for source, target, read_only in mounts(name)
                  if target == REGISTRY_DIR]
        assert shared == [(REGISTRY_VOLUME, name in REGISTRY_READERS)], f"{name}: {shared}"
        assert not any(target.endswith((".yaml", ".csv")) for _, target, _ in mounts(name)), \
            f"{name} still bind-mounts a single registry file"
        rule = SERVICES[name]["depends_on"]["registry-init"]
        assert rule["condition"] == "service_completed_successfully", name
    assert len({service_env(n)[f"KOTA_{n.upper()}__REGISTRY_FILE"]
                for n in ("api", *REGISTRY_READERS)}) == 1, "one file for every service"


def _seed_command(folder: Path) -> tuple[list[str], dict[str, str], Path, Path]:
    """registry-init's own command (Compose's $$ undone), with its paths moved to ``folder``."""
    init = SERVICES["registry-init"]
    env = service_env("registry-init")
    seed_in_image = Path(env["REGISTRY_SEED"])
    # The image is the build context copied to its WORKDIR (Dockerfile: WORKDIR /src, COPY . .).
    lines = (REPO / "Dockerfile").read_text(encoding="utf-8").splitlines()
    assert "WORKDIR /src" in lines and "COPY . ." in lines
    shipped = REPO / seed_in_image.relative_to("/src")
    assert shipped.is_file(), f"{seed_in_image}: {shipped} is not in the repository"
    live = folder / Path(env["REGISTRY_FILE"]).name
    assert env["REGISTRY_FILE"] == f"{REGISTRY_DIR}/{live.name}"
    command = [interpolate(word, {}) for word in init["entrypoint"]]
    assert env["REGISTRY_OWNER"] == "kota:kota" and "useradd" in "\n".join(lines)
    return command, {**os.environ, "REGISTRY_SEED": str(shipped), "REGISTRY_FILE": str(live),
                     "REGISTRY_OWNER": f"{os.getuid()}:{os.getgid()}"}, shipped, live


def test_registry_init_seeds_the_volume_once(tmp_path: Path) -> None:
    init = SERVICES["registry-init"]
    assert (init["image"], init["build"]) == (SERVICES["api"]["image"], SERVICES["api"]["build"])
    # A one-shot: "unless-stopped" would run it again and again.
    assert init["restart"] == "on-failure" and "ports" not in init
    assert mounts("registry-init") == [(REGISTRY_VOLUME, REGISTRY_DIR, False)]
    assert not any(fnmatch("simulators", line.strip()) for line in
                   (REPO / ".dockerignore").read_text().splitlines()), "seed not in the image"
    command, env, shipped, live = _seed_command(tmp_path)
    assert command[:2] == ["/bin/sh", "-c"]
    first = subprocess.run(["sh", *command[1:]], env=env, capture_output=True, text=True,
                           timeout=10, check=False)
    assert first.returncode == 0, first.stderr
    assert live.read_bytes() == shipped.read_bytes() and live.stat().st_mode & 0o777 == 0o644
    assert not live.with_name(live.name + ".new").exists()
    live.write_text("devices: []\n")  # what provisioning wrote since
    again = subprocess.run(["sh", *command[1:]], env=env, capture_output=True, text=True,
                           timeout=10, check=False)
    assert again.returncode == 0 and live.read_text() == "devices: []\n", again.stderr
    # A missing seed fails the step (and the services waiting for it do not start).
    live.unlink()
    broken = subprocess.run(["sh", *command[1:]], capture_output=True, text=True, timeout=10,
                            check=False, env={**env, "REGISTRY_SEED": str(tmp_path / "no")})
    assert broken.returncode != 0 and not live.exists()


def test_api_is_set_up_to_provision_devices() -> None:
    settings_class = _section_models()["KOTA_API__"]
    filled = {**_filled_env_example(), "KOTA_DEVICE_MQTT_HOST": "kota.example.go.id",
              "KOTA_MQTTS_PORT": "18883"}
    env = {key: interpolate(value, filled) for key, value in service_env("api").items()}
    settings: Any = load_settings(settings_class, "api", None, environ=env)
    provisioning = settings.provisioning
    broker = provisioning.broker
    assert (broker.host, broker.port, broker.tls) == ("mosquitto", 1883, False)
    assert broker.username == broker.client_id == "kota-provisioner"
    assert broker.resolved_password() == filled["MOSQUITTO_PROVISIONER_PASSWORD"]
    # The agent config handed out: the broker as devices reach it, TLS, the private CA.
    assert (provisioning.device_host, provisioning.device_port) == ("kota.example.go.id", 18883)
    assert provisioning.device_tls and provisioning.device_ca_file
    assert str(settings.registry_file).startswith(REGISTRY_DIR + "/")
    # Empty provisioner password: no password, not an empty one (make-secrets.sh: no admin).
    empty = {key: interpolate(value, {**filled, "MOSQUITTO_PROVISIONER_PASSWORD": ""})
             for key, value in service_env("api").items()}
    unset: Any = load_settings(settings_class, "api", None, environ=empty)
    assert unset.provisioning.broker.password is None
    # make-secrets.sh seeds the plugin's admin from the same variable.
    assert "env_value MOSQUITTO_PROVISIONER_PASSWORD)" in MAKE_SECRETS.read_text(encoding="utf-8")


# -- Grafana -------------------------------------------------------------------------------
def test_grafana_is_pinned_to_an_11_6_patch_and_started_through_the_check() -> None:
    grafana = SERVICES["grafana"]
    assert re.fullmatch(r"grafana/grafana(-oss)?:11\.6\.\d+", grafana["image"])
    assert int(grafana["image"].rsplit(".", 1)[1]) >= 16  # newest found (compose comment)
    script, target = grafana["entrypoint"][-1], "./deploy/grafana/start.sh"
    assert grafana["entrypoint"][0] == "/bin/sh"
    assert (target, script, True) in mounts("grafana")
    # tests/deploy/test_grafana_start.py runs the script.


# -- make-secrets.sh: the alerts account and the TLS key -----------------------------------
ALERTS_TEST_PASSWORD = "alerts-test-pw-123456"


ALERTS_PUBLISHER_TEST_PASSWORD = "alerts-publisher-test-pw-123456"


def _make_secrets(tmp_path: Path, path: str, alerts_password: str = ALERTS_TEST_PASSWORD,
                  publisher_password: str = ALERTS_PUBLISHER_TEST_PASSWORD,
                  ) -> tuple[Path, subprocess.CompletedProcess[str]]:
    tmp_path.mkdir(exist_ok=True)
    out, env_file = tmp_path / "secrets", tmp_path / "test.env"
    env_file.write_text(f"MOSQUITTO_INGEST_PASSWORD={TEST_PASSWORDS['kota-ingest']}\n"
                        f"MOSQUITTO_HEALTHCHECK_PASSWORD={TEST_PASSWORDS['kota-healthcheck']}\n"
                        f"MOSQUITTO_SIMULATOR_PASSWORD={TEST_PASSWORDS['kota-simulator']}\n"
                        f"MOSQUITTO_ALERTS_PASSWORD={alerts_password}\n"
                        f"MOSQUITTO_ALERTS_PUBLISHER_PASSWORD={publisher_password}\n")
    env = {**os.environ, "PATH": path, "KOTA_BROKER": f"{sys.executable} -m kota.broker_cli"}
    result = subprocess.run([str(MAKE_SECRETS), "--env", str(env_file), "--out", str(out)],
                            env=env, capture_output=True, text=True, timeout=60, check=False)
    return out, result


def _acl_block(acl: str, user: str) -> list[str]:
    return acl[acl.index(f"user {user}\n"):].split("\n\n")[0].splitlines()


def test_make_secrets_adds_the_alerts_accounts(tmp_path: Path) -> None:
    out, result = _make_secrets(tmp_path, os.environ["PATH"])
    assert result.returncode == 0, result.stderr
    users = [line.split(":", 1)[0] for line in (out / "broker" / "passwd").read_text().splitlines()]
    assert users.count("kota-alerts") == 1 and users.count("kota-alerts-publisher") == 1
    acl = (out / "broker" / "acl").read_text()
    # The stream subscriber reads; the MQTT channel's account publishes alerts and reads nothing.
    assert _acl_block(acl, "kota-alerts") == ["user kota-alerts", "topic read kota/#"]
    assert _acl_block(acl, "kota-alerts-publisher") == [
        "user kota-alerts-publisher", "topic write kota/+/alerts/#"]
    _, placeholder = _make_secrets(tmp_path / "again", os.environ["PATH"], "change-me-alerts")
    assert placeholder.returncode != 0 and "MOSQUITTO_ALERTS_PASSWORD" in placeholder.stderr
    _, placeholder = _make_secrets(tmp_path / "third", os.environ["PATH"],
                                   publisher_password="change-me-publisher")
    assert (placeholder.returncode != 0
            and "MOSQUITTO_ALERTS_PUBLISHER_PASSWORD" in placeholder.stderr)
    # Empty: no password, so nobody can log in as kota-alerts-publisher (like the simulator's).
    out, empty = _make_secrets(tmp_path / "empty", os.environ["PATH"], publisher_password="")
    assert empty.returncode == 0, empty.stderr
    assert "kota-alerts-publisher" not in (out / "broker" / "passwd").read_text()
    assert "kota-alerts-publisher" not in (out / "broker" / "acl").read_text()


def _shims(folder: Path, uid: int, chgrp_works: bool) -> str:
    folder.mkdir()
    (folder / "id").write_text(f"#!/bin/sh\necho {uid}\n")
    (folder / "chgrp").write_text(f"#!/bin/sh\nexit {0 if chgrp_works else 1}\n")
    for shim in folder.iterdir():
        shim.chmod(0o755)
    return f"{folder}:{os.environ['PATH']}"


@pytest.mark.parametrize(("uid", "chgrp_works", "mode"), [
    (1000, True, 0o640),   # an operator in group 1883: group-readable by the broker
    (1000, False, 0o644),  # any other user: warned, readable by all inside the container
])
def test_tls_key_mode_without_root(tmp_path: Path, uid: int, chgrp_works: bool,
                                   mode: int) -> None:
    out, result = _make_secrets(tmp_path, _shims(tmp_path / "bin", uid, chgrp_works))
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE((out / "broker" / "server.key").stat().st_mode) == mode
    assert ("warning" in result.stderr) == (mode == 0o644)


def test_tls_key_is_the_brokers_alone_when_made_as_root(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("giving the key to uid 1883 needs root (the other branches run above)")
    out, result = _make_secrets(tmp_path, os.environ["PATH"])
    assert result.returncode == 0, result.stderr
    key = (out / "broker" / "server.key").stat()
    assert (stat.S_IMODE(key.st_mode), key.st_uid, key.st_gid) == (0o600, 1883, 1883)
    assert "warning" not in result.stderr


# -- ingest health check -------------------------------------------------------------------
def _serve(body: bytes) -> tuple[HTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/metrics"


@pytest.mark.slow
@pytest.mark.parametrize("connected", [True, False])
def test_ingest_health_check_follows_the_mqtt_gauge(connected: bool) -> None:
    from prometheus_client import generate_latest

    counters = IngestCounters(mqtt_connected=connected)
    server, url = _serve(generate_latest(serve_metrics(counters, "127.0.0.1", 0)))
    try:
        result = subprocess.run([sys.executable, str(REPO / "deploy/ingest/healthcheck.py"), url],
                                capture_output=True, timeout=15, check=False)
    finally:
        server.shutdown()
    assert result.returncode == (0 if connected else 1)
    nobody = f"http://127.0.0.1:{free_port()}/metrics"
    result = subprocess.run([sys.executable, str(REPO / "deploy/ingest/healthcheck.py"), nobody],
                            capture_output=True, timeout=15, check=False)
    assert result.returncode == 1


# -- mosquitto.conf ------------------------------------------------------------------------
def test_mosquitto_conf_values_ingest_relies_on() -> None:
    options = mosquitto_options(MOSQUITTO_CONF.read_text(encoding="utf-8"))
    values = dict(options)
    # use_username_as_clientid is a listener option in Mosquitto 2.0: once per listener.
    once = [k for k, _ in options if k not in ("log_type", "listener",
                                               "use_username_as_clientid")]
    assert len(once) == len(set(once)), "an option is set twice"
    defaults = IngestSettings()
    assert values["persistence"] == "true" and values["persistence_location"].endswith("/")
    assert 0 < int(values["autosave_interval"]) <= 60
    assert int(values["max_queued_messages"]) == 0 or int(values["max_queued_messages"]) >= 10**5
    queued_bytes = int(values.get("max_queued_bytes", "0"))
    assert queued_bytes == 0 or queued_bytes >= 1 << 27, "max_queued_bytes below 128 MiB"
    assert int(values["max_inflight_messages"]) == 0 or int(values["max_inflight_messages"]) >= 1000
    expiry = re.fullmatch(r"(\d+)([hdwmy])", values["persistent_client_expiration"])
    assert expiry, values["persistent_client_expiration"]
    expiry_s = int(expiry.group(1)) * _DURATION_S[expiry.group(2)]
    assert expiry_s >= defaults.mqtt.session_expiry_s, "would cut ingest's session short"
    size_limit = int(values.get("message_size_limit", "0"))
    assert size_limit == 0 or size_limit > defaults.max_payload_bytes
    # The security set-up (tested with the real broker in tests/deploy/test_broker_security.py).
    assert [v for k, v in options if k == "listener"] == ["1883", "8883"]
    assert values["allow_anonymous"] == "false"
    assert {"password_file", "acl_file", "cafile", "certfile", "keyfile"} <= set(values)
    # Every listener binds client ids to user names (the option follows its listener line).
    per_listener = [k for k, _ in options if k in ("listener", "use_username_as_clientid")]
    assert per_listener == ["listener", "use_username_as_clientid"] * 2, per_listener
    assert {v for k, v in options if k == "use_username_as_clientid"} == {"true"}








class _Client:
    """Just enough raw MQTT 5 to test the broker: connect, subscribe, publish, receive."""

    def __init__(self, port: int, client_id: str, *, clean_start: bool, receive_maximum: int,
                 username: str, password: str):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buffer = bytearray()
        self.messages: list[Message] = []
        self.control: list[tuple[int, int, bytes]] = []
        self.sock.sendall(connect_packet(client_id=client_id, keepalive_s=60,
                                         clean_start=clean_start, session_expiry_s=3600,
                                         receive_maximum=receive_maximum,
                                         username=username, password=password))
        body = self.expect(CONNACK)
        assert body[1] == 0, f"CONNACK reason 0x{body[1]:02x}"
        self.session_present = bool(body[0] & 1)
        self.connack_properties = _properties(body[2:])

    def read(self, deadline: float) -> None:
        self.sock.settimeout(max(0.05, deadline - time.monotonic()))
        data = self.sock.recv(1 << 16)
        assert data, "broker closed the connection"
        self.buffer += data
        del self.buffer[:split_packets(self.buffer, self.messages, self.control)]

    def expect(self, packet_type: int, timeout_s: float = 5.0) -> bytes:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for index, (kind, _, body) in enumerate(self.control):
                if kind == packet_type:
                    del self.control[index]
                    return body
            self.read(deadline)
        raise TimeoutError(f"no packet of type {packet_type} within {timeout_s} s")

    def publish_qos1(self, topics: list[str]) -> None:
        packets = bytearray()
        for packet_id, topic in enumerate(topics, 1):
            name = topic.encode()
            body = struct.pack("!H", len(name)) + name + struct.pack("!H", packet_id) + b"\x00"
            body += b'{"pm25": 12.0}'
            packets += bytes([0x32]) + encode_varint(len(body)) + body
        self.sock.sendall(packets)  # all at once: more than the default 20 in flight
        for _ in topics:
            self.expect(PUBACK)

    def receive(self, count: int, timeout_s: float, idle_s: float = 2.0) -> list[Message]:
        """Up to ``count`` messages, acknowledging as they come; stops after ``idle_s`` of quiet."""
        deadline, received = time.monotonic() + timeout_s, []
        while len(received) < count and time.monotonic() < deadline:
            if not self.messages:
                try:
                    self.read(min(deadline, time.monotonic() + idle_s))
                except TimeoutError:
                    break
            batch, self.messages = self.messages, []
            received += batch
            self.sock.sendall(puback_packets([packet_id for packet_id, _, _ in batch]))
        return received

    def close(self) -> None:
        self.sock.sendall(b"\xe0\x00")
        self.sock.close()


def _properties(data: bytes) -> dict[int, int]:
    """The numeric properties of a CONNACK (MQTT 5 §3.2.2.3); others are skipped."""
    length, pos = _varint(data, 0)
    end, found = pos + length, {}
    sizes = {1: [0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A], 2: [0x13, 0x21, 0x22, 0x23],
             4: [0x02, 0x11, 0x18, 0x27]}
    while pos < end:
        ident, pos = data[pos], pos + 1
        size = next((s for s, ids in sizes.items() if ident in ids), None)
        if size is not None:
            found[ident], pos = int.from_bytes(data[pos:pos + size], "big"), pos + size
        elif ident == 0x26:  # user property: two strings
            for _ in range(2):
                pos += 2 + struct.unpack_from("!H", data, pos)[0]
        else:  # a string or binary value
            pos += 2 + struct.unpack_from("!H", data, pos)[0]
    return found


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte, pos = data[pos], pos + 1
        value, shift = value | (byte & 0x7F) << shift, shift + 7
        if not byte & 0x80:
            return value, pos






@pytest.mark.slow
def test_mosquitto_conf_keeps_a_large_backlog_across_a_restart(tmp_path: Path) -> None:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.access(binary, os.X_OK):
        pytest.fail("mosquitto not installed: scripts/install-services.sh test")
    port, data_dir = free_port(), tmp_path / "data"
    data_dir.mkdir()
    make_secrets(tmp_path / "secrets")
    conf, log = tmp_path / "mosquitto.conf", tmp_path / "mosquitto.log"
    conf.write_text(local_conf(port, data_dir, free_port(), tmp_path / "secrets" / "broker"))
    ingest_login = {"username": "kota-ingest", "password": TEST_PASSWORDS["kota-ingest"]}
    backlog = 3000  # above the default max_queued_messages (1000)
    topics = [f"kota/jakarta/air/aq-{n:04d}" for n in range(backlog)]
    process = start_broker(conf, port, log, binary)
    try:
        # A subscriber like ingest (persistent session), with a small Receive Maximum so that
        # its in-flight window cannot hide the broker's queue limit.
        ingest = _Client(port, "kota-ingest-compose-test", clean_start=False, receive_maximum=20,
                         **ingest_login)
        props = ingest.connack_properties
        assert props.get(0x21, 65535) >= 1000, "broker Receive Maximum (max_inflight_messages)"
        assert props.get(0x27, 1 << 28) > IngestSettings().max_payload_bytes
        assert props.get(0x2A, 1) == 1, "shared subscriptions unavailable (ingest --workers)"
        ingest.sock.sendall(subscribe_packet(1, ["kota/+/+/+"], qos=1))
        assert ingest.expect(SUBACK)[-1] == 1, "QoS 1 subscription not granted"
        ingest.close()

        device = _Client(port, "kota-device-compose-test", clean_start=True, receive_maximum=20,
                         username="kota-simulator", password=TEST_PASSWORDS["kota-simulator"])
        device.publish_qos1(topics)
        device.close()

        stop_broker(process)  # restart: the backlog must come back from persistence_location
        process = start_broker(conf, port, log, binary)
        ingest = _Client(port, "kota-ingest-compose-test", clean_start=False, receive_maximum=20,
                         **ingest_login)
        assert ingest.session_present, "persistent session lost across the restart"
        received = ingest.receive(backlog, timeout_s=20)
        ingest.close()
        assert len(received) == backlog, (
            f"{len(received)} of {backlog} queued messages came back: max_queued_messages or "
            "max_queued_bytes dropped the rest")
        assert sorted(topic for _, topic, _ in received) == topics
    finally:
        stop_broker(process)


def test_grafana_gets_every_variable_its_provisioning_uses() -> None:
    provisioning = REPO / "dashboards" / "provisioning"
    used = set()
    for path in provisioning.rglob("*.yaml"):
        used |= set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)\}", path.read_text(encoding="utf-8")))
    assert used, "the datasource should be configured through variables"
    grafana_env = service_env("grafana")
    assert used <= set(grafana_env), f"missing in the grafana service: {used - set(grafana_env)}"
    mounts = [str(m) for m in SERVICES["grafana"]["volumes"]]
    assert any("/etc/grafana/provisioning/dashboards" in m for m in mounts)
    assert any("/var/lib/grafana/dashboards/kota" in m for m in mounts)


@pytest.mark.parametrize("name", ["ingest", "indicators", "api", "alerts"])
def test_services_that_tag_or_place_devices_read_the_shared_registry(name: str) -> None:
    # Without a registry ingest stores every reading as district=unregistered.
    registry = service_env(name)[f"KOTA_{name.upper()}__REGISTRY_FILE"]
    folders = {target: source for source, target, _ in mounts(name)}
    assert str(Path(registry).parent) in folders, f"{name} names {registry} but does not mount it"
    assert folders[str(Path(registry).parent)] == REGISTRY_VOLUME
    # registry-init fills that volume with a file of the same name.
    assert service_env("registry-init")["REGISTRY_FILE"] == registry


@pytest.mark.slow
def test_alerts_accounts_against_the_generated_broker(tmp_path: Path) -> None:
    """kota-alerts reads readings and publishes nothing; kota-alerts-publisher publishes alert
    states and reads nothing: against the real broker with the generated configuration."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.access(binary, os.X_OK):
        pytest.fail("mosquitto not installed: scripts/install-services.sh test")
    out, result = _make_secrets(tmp_path, os.environ["PATH"])
    assert result.returncode == 0, result.stderr
    port, data_dir = free_port(), tmp_path / "data"
    data_dir.mkdir()
    conf, log = tmp_path / "mosquitto.conf", tmp_path / "mosquitto.log"
    conf.write_text(local_conf(port, data_dir, free_port(), out / "broker"))
    process = start_broker(conf, port, log, binary)

    def login(user: str, password: str) -> _Client:
        return _Client(port, user, clean_start=True, receive_maximum=20, username=user,
                       password=password)

    def try_publish(user: str, password: str, topic: str) -> None:
        # Mosquitto 2.0.11 drops an MQTT 5 connection whose publish is denied: also a refusal.
        client = login(user, password)
        try:
            client.publish_qos1([topic])
            client.close()
        except (ConnectionError, TimeoutError, AssertionError):
            pass

    try:
        watcher = login("kota-ingest", TEST_PASSWORDS["kota-ingest"])
        alerts = login("kota-alerts", ALERTS_TEST_PASSWORD)
        publisher = login("kota-alerts-publisher", ALERTS_PUBLISHER_TEST_PASSWORD)
        for client in (watcher, alerts, publisher):
            client.sock.sendall(subscribe_packet(1, ["kota/#"], qos=1))
            # Mosquitto grants the filter and then delivers only what the account may read.
            assert client.expect(SUBACK)[-1] == 1, "kota/# not granted"
        device = login("kota-simulator", TEST_PASSWORDS["kota-simulator"])
        device.publish_qos1(["kota/jakarta/air/aq-0001"])
        device.close()
        assert [topic for _, topic, _ in alerts.receive(1, timeout_s=5)] == [
            "kota/jakarta/air/aq-0001"], "kota-alerts cannot read the readings"
        # The MQTT channel's account publishes an alert state ...
        publisher.publish_qos1(["kota/jakarta/alerts/flood/siaga/gauge_manggarai"])
        # ... and sees neither the reading nor its own alert.
        assert publisher.receive(1, timeout_s=1.5, idle_s=1.5) == [], "the publisher reads"
        publisher.close()
        # Neither account may publish what it should not: the stream account no alert, the
        # publisher no reading.
        try_publish("kota-alerts", ALERTS_TEST_PASSWORD, "kota/jakarta/alerts/flood/forged/x")
        try_publish("kota-alerts-publisher", ALERTS_PUBLISHER_TEST_PASSWORD,
                    "kota/jakarta/air/aq-0002")
        alerts.close()
        received = [topic for _, topic, _ in watcher.receive(3, timeout_s=5, idle_s=1.5)]
        assert received == ["kota/jakarta/air/aq-0001",
                            "kota/jakarta/alerts/flood/siaga/gauge_manggarai"], received
        watcher.close()
    finally:
        stop_broker(process)
