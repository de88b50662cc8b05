"""scripts/install-services.sh provides every program the tests, the demo and the benchmarks run.

The runtime half of this check lives in conftest.py (every program the session starts); here
the static half: programs named in the code, in the shell scripts the tests run and in the
compose health checks the tests execute, plus proof that the check catches a missing program.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from programs_check import (
    INSTALL_SCRIPT,
    REPO,
    commands_in_shell,
    declared_programs,
    literal_programs,
    record_launch,
    unprovided,
)

from devstack.localstack import INFLUXD_CANDIDATES, MOSQUITTO_CANDIDATES

PYTHON_PACKAGES = ("kota", "ingest", "api", "simulators", "indicators", "agent", "dashboards",
                   "tests")


def _tracked(pattern: str) -> list[Path]:
    listing = subprocess.run(["git", "ls-files", pattern], cwd=REPO, capture_output=True,
                             text=True, check=True, timeout=30).stdout
    return [REPO / line for line in listing.splitlines() if (REPO / line).exists()]


def _python_sources() -> list[Path]:
    return [path for package in PYTHON_PACKAGES for path in (REPO / package).rglob("*.py")
            if ".venv" not in path.parts]


# Shell scripts that run on this machine (tests, demo, benchmarks) ...
SCRIPTS_RUN_HERE = {"scripts/install-services.sh", "deploy/mosquitto/make-secrets.sh"}
# ... and those that run elsewhere, with where: their programs are that machine's business.
SCRIPTS_RUN_ELSEWHERE = {
    "agent/install/install.sh": "on the Raspberry Pi (tests only check its syntax)",
    "deploy/influxdb/init/10-kota-dbrp.sh": "inside the InfluxDB 2.x container",
    "deploy/influxdb/init/20-kota-tokens.sh": "inside the InfluxDB 2.x container (tests run it "
                                              "with a stand-in influx)",
    "deploy/grafana/start.sh": "inside the Grafana container (tests run it with a stand-in "
                               "/run.sh)",
    "deploy/mosquitto/start.sh": "inside the Mosquitto container (tests run it with stand-in "
                                 "paths)",
    "deploy/systemd/install.sh": "on a city's server (tests run only its --dry-run)",
}


def test_every_shell_script_is_placed_here_or_elsewhere() -> None:
    tracked = {path.relative_to(REPO).as_posix() for path in _tracked("*.sh")}
    unplaced = tracked - SCRIPTS_RUN_HERE - set(SCRIPTS_RUN_ELSEWHERE)
    assert not unplaced, f"say where these scripts run (SCRIPTS_RUN_HERE or ELSEWHERE): {unplaced}"
    assert tracked >= SCRIPTS_RUN_HERE


def test_the_table_names_installed_packages_for_every_test_program() -> None:
    declared = declared_programs()
    assert {"mosquitto", "mosquitto_sub", "influxd", "chromium"} <= set(declared)
    listing = subprocess.run(["bash", str(INSTALL_SCRIPT), "--list"], capture_output=True,
                             text=True, check=True, timeout=30).stdout
    for line in listing.splitlines():
        program, package, purposes = line.split()
        assert set(purposes.split(",")) <= {"demo", "test", "bench"}, line
        if "test" in purposes:
            status = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package],
                                    capture_output=True, text=True, check=False, timeout=30)
            assert status.stdout.endswith("installed"), f"{package} (for {program}) missing"


@pytest.mark.slow
def test_programs_named_in_the_code_are_provided() -> None:
    named = literal_programs(_python_sources())
    named |= {Path(name).name for name in (*MOSQUITTO_CANDIDATES, *INFLUXD_CANDIDATES)}
    assert {"mosquitto", "influxd", "openssl"} <= named  # the scan sees what we know is there
    assert unprovided(named, declared_programs()) == []


@pytest.mark.slow
def test_shell_scripts_the_tests_run_use_only_provided_programs() -> None:
    for name in sorted(SCRIPTS_RUN_HERE):
        script = REPO / name
        programs = commands_in_shell(script.read_text(encoding="utf-8"))
        assert unprovided(programs, declared_programs()) == [], script.relative_to(REPO)


def test_compose_health_checks_that_tests_run_are_provided() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    check = compose["services"]["mosquitto"]["healthcheck"]["test"]
    programs = commands_in_shell(check[1])
    assert "mosquitto_sub" in programs
    assert unprovided(programs, declared_programs()) == []


@pytest.mark.slow
def test_the_check_catches_a_program_the_script_does_not_install(tmp_path: Path) -> None:
    # The defect this guards against: mosquitto_sub was run by a test, never installed.
    trimmed = tmp_path / "install-services.sh"
    trimmed.write_text("\n".join(line for line in INSTALL_SCRIPT.read_text().splitlines()
                                 if "mosquitto-clients" not in line) + "\n")
    declared = declared_programs(trimmed)
    assert "mosquitto_sub" not in declared and "mosquitto" in declared
    launched = record_launch(["sh", "-c", "mosquitto_sub -h 127.0.0.1 -t x && curl -s y"])
    assert launched == {"sh", "mosquitto_sub", "curl"}
    assert unprovided(launched, declared) == ["mosquitto_sub"]
    assert unprovided({"no-such-program-kota"}, declared) == ["no-such-program-kota"]


@pytest.mark.parametrize(("text", "expected"), [
    ("openssl req -x509 | tee out", {"openssl", "tee"}),
    ('X=1 mosquitto_passwd -b "$f" u p', {"mosquitto_passwd"}),
    ("if command -v mosquitto >/dev/null; then echo ok; fi", set()),
    ("out=$(git rev-parse HEAD) # comment curl", {"git"}),
    ("helper() { sed -n 1p; }\nhelper", {"sed"}),
    ("sudo -n apt-get install x", {"apt-get"}),
])
def test_shell_commands_are_found_in_command_position(text: str, expected: set[str]) -> None:
    assert commands_in_shell(text) == expected


def test_the_script_explains_itself_and_refuses_unknown_purposes() -> None:
    helped = subprocess.run(["bash", str(INSTALL_SCRIPT), "--help"], capture_output=True,
                            text=True, check=False, timeout=30)
    assert helped.returncode == 0 and "--list" in helped.stdout
    refused = subprocess.run(["bash", str(INSTALL_SCRIPT), "everything"], capture_output=True,
                             text=True, check=False, timeout=30)
    assert refused.returncode == 2 and "unknown argument 'everything'" in refused.stderr
