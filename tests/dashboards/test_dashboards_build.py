"""The committed JSON is what `kota dashboards build` generates, so it cannot drift from the
Python; and `build --check` notices when it does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from dashboards import build
from dashboards.cli import dashboards as dashboards_cli
from dashboards.maps import gazetteer


def test_committed_files_are_what_build_generates() -> None:
    generated = build.render_all()
    assert sorted(p.name for p in generated) == sorted([*build.DASHBOARDS, "kota-devices.json"])
    for path, text in generated.items():
        assert path.exists(), f"{path} is not committed: run `kota dashboards build`"
        assert path.read_text(encoding="utf-8") == text, (
            f"{path} differs from what `kota dashboards build` makes: rebuild and commit")
    committed = sorted(p.name for p in build.JSON_DIR.glob("*.json"))
    assert committed == sorted(build.DASHBOARDS), "a JSON file without a dashboard module"


def test_build_is_deterministic() -> None:
    assert build.render_all() == build.render_all()


@pytest.mark.slow
def test_check_passes_then_fails_on_drift(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build, "JSON_DIR", tmp_path / "json")
    monkeypatch.setattr(build, "GAZETTEER_DIR", tmp_path / "gazetteer")
    runner = CliRunner()
    result = runner.invoke(dashboards_cli, ["build", "--check"])
    assert result.exit_code == 1 and "out of date" in result.output

    result = runner.invoke(dashboards_cli, ["build"])
    assert result.exit_code == 0, result.output
    assert f"{len(build.DASHBOARDS) + 1} file(s) changed" in result.output
    assert runner.invoke(dashboards_cli, ["build", "--check"]).exit_code == 0

    flood = tmp_path / "json" / "flood.json"
    edited = json.loads(flood.read_text(encoding="utf-8"))
    edited["title"] = "edited in the UI"
    flood.write_text(json.dumps(edited), encoding="utf-8")
    result = runner.invoke(dashboards_cli, ["build", "--check"])
    assert result.exit_code == 1
    assert "flood.json" in result.output and "air-quality.json" not in result.output


def test_gazetteer_places_every_registered_device(tmp_path: Path) -> None:
    registry = tmp_path / "devices.yaml"
    registry.write_text(
        "devices:\n"
        "  - {device_id: b-air, kind: air, city: jakarta, district: Tebet, lat: -6.22,"
        " lon: 106.85, name: Tebet}\n"
        "  - {device_id: a-water, kind: water, city: jakarta, district: Tebet, lat: -6.2,"
        " lon: 106.84}\n", encoding="utf-8")
    entries = json.loads(gazetteer(registry))
    assert entries == [
        {"key": "a-water", "latitude": -6.2, "longitude": 106.84, "name": "a-water"},
        {"key": "b-air", "latitude": -6.22, "longitude": 106.85, "name": "Tebet"},
    ]
