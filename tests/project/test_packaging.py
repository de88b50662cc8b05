"""What each install pulls in: a Raspberry Pi gets the base install and the agent extra, the
platform the server extra, a developer everything (pyproject.toml).

The agent is checked the way a Pi would run it: in a fresh interpreter where importing any
server-only package fails, every agent module imports and `kota-agent validate` and `check`
work; and every third-party module it loaded comes from the base or agent requirements.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from importlib import metadata

import pytest
from kota_testing import REPO
from packaging.requirements import Requirement

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT = PYPROJECT["project"]
EXTRAS = PROJECT["optional-dependencies"]

# Import names of the server extra's distributions.
SERVER_MODULES = {"fastapi": "fastapi", "uvicorn": "uvicorn", "httpx": "httpx",
                  "grafana-foundation-sdk": "grafana_foundation_sdk",
                  "grafana-client": "grafana_client", "orjson": "orjson",
                  "prometheus-client": "prometheus_client", "sqlalchemy": "sqlalchemy",
                  "alembic": "alembic", "psycopg": "psycopg", "apprise": "apprise"}


def _names(requirements: list[str]) -> set[str]:
    return {Requirement(r).name.lower() for r in requirements}


def test_base_install_is_the_agents_and_the_server_side_is_an_extra() -> None:
    base = _names(PROJECT["dependencies"])
    assert base == {"click", "paho-mqtt", "pydantic", "pyyaml"}
    assert _names(EXTRAS["agent"]) == {"gpiozero", "pyserial", "smbus2"}
    assert _names(EXTRAS["server"]) == set(SERVER_MODULES)
    assert not base & set(SERVER_MODULES)
    # The Grafana SDK's exact pin (docs/decisions.md D13) and its reason stay with it.
    assert "grafana-foundation-sdk==1769699379!11.6.0" in EXTRAS["server"]
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r"# epoch is the Grafana 10\.1 build.*\n\s*\"grafana-foundation-sdk==", text)


def test_dev_installs_everything() -> None:
    dev = [Requirement(r) for r in EXTRAS["dev"]]
    itself = [r for r in dev if r.name == PROJECT["name"]]
    assert itself and itself[0].extras == {"agent", "server"}
    assert {"pytest", "mypy", "ruff"} <= {r.name for r in dev}


def test_docker_image_and_pi_installer_pick_their_extra() -> None:
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert "pip install '.[server]'" in dockerfile
    install = (REPO / "agent" / "install" / "install.sh").read_text(encoding="utf-8")
    assert '"${SOURCE}[agent]"' in install and "[server]" not in install.replace(
        "is the [server] extra", "")


AGENT_WITHOUT_SERVER = r'''
import importlib, importlib.abc, json, pkgutil, sys, tempfile, pathlib

BLOCKED = set(sys.argv[1].split(","))

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is server-only (blocked by the test)")
        return None

sys.meta_path.insert(0, Refuse())

import agent
for module in pkgutil.walk_packages(agent.__path__, "agent."):
    if module.name != "agent.__main__":
        importlib.import_module(module.name)

from agent.cli import main

def cli(*args):
    try:
        main(list(args), standalone_mode=True)
    except SystemExit as exc:
        return exc.code
    return 0

sample = str(pathlib.Path(agent.__file__).parent / "sample.conf")
results = {"sample": cli("validate", "-c", sample)}
with tempfile.TemporaryDirectory() as folder:
    config = pathlib.Path(folder) / "agent.toml"
    config.write_text(
        f'[agent]\nid = "jkt-pi-01"\ncity = "jakarta"\nstate_dir = "{folder}"\n'
        f'[[sensor]]\ndriver = "command"\nkind = "air"\n'
        f'command = ["{sys.executable}", "-c", "print(\'{{\\"pm25\\": 12}}\')"]\n')
    results["validate"] = cli("validate", "-c", str(config))
    results["check"] = cli("check", "-c", str(config))
top = {name.split(".")[0] for name in sys.modules} - set(sys.stdlib_module_names)
print(json.dumps({"results": results, "modules": sorted(top)}))
'''


def _closure(names: set[str]) -> set[str]:
    """Installed distributions these need, recursively (extras' own requirements left out)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for line in requires:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name.lower())
    return {n.lower().replace("_", "-") for n in seen}


@pytest.mark.slow
def test_agent_runs_without_the_server_packages() -> None:
    done = subprocess.run(
        [sys.executable, "-c", AGENT_WITHOUT_SERVER, ",".join(SERVER_MODULES.values())],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "server-only" not in done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    # the sample is refused for what this machine lacks (no sensor, no password file), cleanly
    assert report["results"] == {"sample": 2, "validate": 0, "check": 0}, done.stderr
    assert "no [[sensor]] table" in done.stderr
    assert "sensor 1 (command) (jkt-pi-01-air, air): pm25=12.0" in done.stdout

    # Every third-party module the agent loaded is installed by the base or agent requirements.
    allowed = _closure(_names(PROJECT["dependencies"]) | _names(EXTRAS["agent"]))
    owners = metadata.packages_distributions()
    for module in report["modules"]:
        if module in {"agent", "kota"} or module.startswith("_") or module.endswith("_runtime"):
            continue
        dists = {d.lower().replace("_", "-") for d in owners.get(module, [])}
        assert dists & allowed, f"the agent imports {module} ({dists}): not in base or agent"


KOTA_WITHOUT_SERVER = r'''
import importlib.abc, sys

BLOCKED = set(sys.argv[1].split(","))

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name.split(".")[0])
        return None

sys.meta_path.insert(0, Refuse())
from kota.cli import main
main(sys.argv[2:])
'''


@pytest.mark.slow
def test_kota_on_a_pi_names_the_extra_a_server_command_needs() -> None:
    blocked = ",".join(SERVER_MODULES.values())
    helped = subprocess.run([sys.executable, "-c", KOTA_WITHOUT_SERVER, blocked, "--help"],
                            cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert helped.returncode == 0, helped.stderr
    assert "ingest" in helped.stdout and "ispu" in helped.stdout
    refused = subprocess.run([sys.executable, "-c", KOTA_WITHOUT_SERVER, blocked, "ingest",
                              "--check"], cwd=REPO, capture_output=True, text=True, timeout=60,
                             check=False)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        "error: 'kota ingest' needs the server packages (missing: orjson): "
        "pip install 'kota-cerdas[server]'"]
    # The field team's calculators need nothing from the server side.
    ispu = subprocess.run([sys.executable, "-c", KOTA_WITHOUT_SERVER, blocked, "ispu",
                           "pm25=80"], cwd=REPO, capture_output=True, text=True, timeout=60,
                          check=False)
    assert ispu.returncode == 0 and "ISPU" in ispu.stdout, ispu.stderr
