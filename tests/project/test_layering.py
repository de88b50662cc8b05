"""The direction of imports (docs/architecture.md): the import-linter contracts in pyproject.toml
hold, and they would catch ``kota`` importing a service."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from kota_testing import REPO

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("kota", "ingest", "simulators", "indicators", "api", "dashboards", "agent",
            "devstack")


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    # lint-imports finds the packages on sys.path: the folder it runs in comes first.
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--config",
                           str(cwd / "pyproject.toml")], cwd=cwd, capture_output=True,
                          text=True, timeout=240, check=False,
                          env={"PATH": str(LINT_IMPORTS.parent), "PYTHONPATH": str(cwd)})


@pytest.mark.slow
def test_the_layering_contracts_hold() -> None:
    result = _lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.slow
def test_kota_importing_a_service_breaks_the_ground_contract(tmp_path: Path) -> None:
    for package in PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "kota" / "upward.py").write_text(
        '"""A module that must not exist: the ground reaching up."""\n\n'
        "from ingest.settings import IngestSettings\n\n"
        "__all__ = [\"IngestSettings\"]\n", encoding="utf-8")
    result = _lint_imports(tmp_path)
    assert result.returncode != 0, result.stdout
    assert "kota is the ground: it imports no service, the agent or devstack BROKEN" in (
        result.stdout), result.stdout
    assert "kota.upward -> ingest.settings" in result.stdout, result.stdout
