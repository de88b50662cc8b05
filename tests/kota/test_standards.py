"""The reference tables: every file loads, every number has a source, errors name file and key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kota_testing import REPO as REPO_ROOT
from pydantic import BaseModel

from kota.standards import (
    STANDARDS_DIR,
    Confidence,
    GaugeTable,
    IspuTable,
    StandardsError,
    load_air_quality_standards,
    load_aqi_tables,
    load_gauges_table,
    load_ispu_table,
    load_noise_standard,
    load_rain_tables,
    load_standard,
)

LOADERS = {
    "ispu.yaml": load_ispu_table,
    "aqi_us.yaml": load_aqi_tables,
    "bmkg_rain.yaml": load_rain_tables,
    "gauges.yaml": load_gauges_table,
    "noise.yaml": load_noise_standard,
    "air_quality_standards.yaml": load_air_quality_standards,
}


def test_every_yaml_file_has_a_loader() -> None:
    assert sorted(p.name for p in STANDARDS_DIR.glob("*.yaml")) == sorted(LOADERS)


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_every_file_loads(name: str) -> None:
    model = LOADERS[name]()
    assert isinstance(model, BaseModel)
    # An explicit path gives an equal, separately loaded model.
    assert LOADERS[name](STANDARDS_DIR / name) == model


def _numbers_without_source(node: Any, path: str, inherited_source: bool) -> list[str]:
    """Paths of numbers with no ``source`` on their own model or an enclosing one."""
    missing: list[str] = []
    if isinstance(node, BaseModel):
        fields = dict(node)
        has_source = inherited_source or any(
            key.endswith("source") and isinstance(value, str) and value.strip()
            for key, value in fields.items())
        for key, value in fields.items():
            missing += _numbers_without_source(value, f"{path}.{key}", has_source)
    elif isinstance(node, dict):
        for key, value in node.items():
            missing += _numbers_without_source(value, f"{path}.{key}", inherited_source)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            missing += _numbers_without_source(value, f"{path}[{index}]", inherited_source)
    elif isinstance(node, int | float) and not isinstance(node, bool) and not inherited_source:
        missing.append(path)
    return missing


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_every_number_has_a_source(name: str) -> None:
    assert _numbers_without_source(LOADERS[name](), name, inherited_source=False) == []


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_every_confidence_is_one_of_the_three_marks(name: str) -> None:
    text = (STANDARDS_DIR / name).read_text(encoding="utf-8")
    values = [line.split("confidence:")[1].split(",")[0].split("}")[0].strip()
              for line in text.splitlines() if "confidence:" in line and "#" not in
              line.split("confidence:")[0]]
    assert values, f"{name} marks no confidence"
    assert set(values) <= {c.value for c in Confidence}


def test_confidence_marks() -> None:
    assert [c.mark for c in Confidence] == ["✅", "⚠️", "❌"]
    assert Confidence.least_sure([Confidence.VERIFIED, Confidence.PARTIAL]) is Confidence.PARTIAL


def test_the_unverified_numbers_say_so() -> None:
    assert load_air_quality_standards().standards["national_pm25_24h"].confidence.mark == "❌"
    assert load_ispu_table().categories.hex_confidence.mark == "❌"
    assert load_gauges_table().gauges["pulo_gadung"].siaga1.value_cm is None


def _broken_copy(tmp_path: Path, name: str, edit: Any) -> Path:
    document = yaml.safe_load((STANDARDS_DIR / name).read_text(encoding="utf-8"))
    edit(document)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False),
                    encoding="utf-8")
    return path


def test_broken_breakpoint_names_file_and_key(tmp_path: Path) -> None:
    out_of_order = [0, 15.5, 55.4, 50, 250.4, 500]
    path = _broken_copy(tmp_path, "ispu.yaml",
                        lambda d: d["parameters"]["pm25"].__setitem__("edges_ugm3", out_of_order))
    with pytest.raises(StandardsError) as caught:
        load_standard(IspuTable, path)
    message = str(caught.value)
    assert str(path) in message and "parameters.pm25" in message and "increase" in message


def test_unknown_key_is_refused_with_its_line(tmp_path: Path) -> None:
    path = _broken_copy(tmp_path, "gauges.yaml",
                        lambda d: d["gauges"]["depok"].__setitem__("siaga0", 999))
    with pytest.raises(StandardsError) as caught:
        load_gauges_table(path)
    message = str(caught.value)
    assert "gauges.depok.siaga0" in message and f"{path}:" in message


def test_missing_source_is_refused(tmp_path: Path) -> None:
    path = _broken_copy(tmp_path, "gauges.yaml",
                        lambda d: d["gauges"]["manggarai"]["siaga2"].pop("source"))
    with pytest.raises(StandardsError, match=r"gauges\.manggarai\.siaga2\.source"):
        load_standard(GaugeTable, path)


def test_travel_times_to_an_unknown_gauge_or_backwards_hours_are_refused(tmp_path: Path) -> None:
    path = _broken_copy(tmp_path, "gauges.yaml",
                        lambda d: d["travel_times"][0].__setitem__("downstream", "bekasi"))
    with pytest.raises(StandardsError, match=r"travel_times\.0: unknown gauge 'bekasi'"):
        load_gauges_table(path)
    path = _broken_copy(tmp_path, "gauges.yaml",
                        lambda d: d["travel_times"][1].__setitem__("hours", [9, 6]))
    with pytest.raises(StandardsError, match=r"travel_times\.1 .*hours must be"):
        load_gauges_table(path)


def test_a_threshold_without_its_own_rule_takes_the_tables_default(tmp_path: Path) -> None:
    def strict(document: dict[str, Any]) -> None:
        document["reached_at_equal"]["default"] = False
    table = load_gauges_table(_broken_copy(tmp_path, "gauges.yaml", strict))
    assert table.gauges["manggarai"].siaga3.at_equal is False
    shipped = load_gauges_table()
    assert shipped.gauges["manggarai"].siaga3.at_equal is True
    assert shipped.gauges["katulampa"].siaga3.at_equal is False  # its own override


def test_thresholds_out_of_order_are_refused(tmp_path: Path) -> None:
    path = _broken_copy(tmp_path, "gauges.yaml",
                        lambda d: d["gauges"]["depok"]["siaga1"].__setitem__("value_cm", 100))
    with pytest.raises(StandardsError, match=r"gauges\.depok"):
        load_gauges_table(path)


def test_not_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "noise.yaml"
    bad.write_text("zones: [unclosed", encoding="utf-8")
    with pytest.raises(StandardsError, match="not valid YAML"):
        load_noise_standard(bad)
    with pytest.raises(StandardsError, match="cannot read"):
        load_noise_standard(tmp_path / "absent.yaml")


def test_the_source_check_finds_a_number_without_one() -> None:
    from kota.standards import RainCategorySpec

    assert _numbers_without_source(RainCategorySpec(name="Ringan", max_mm=20), "x", False) == [
        "x.max_mm"]


def test_docs_standards_md_is_generated_from_the_yaml() -> None:
    from kota.standards.markdown import REGENERATE, standards_document

    doc = REPO_ROOT / "docs" / "standards.md"
    assert doc.read_text(encoding="utf-8") == standards_document(), (
        f"docs/standards.md is out of date: run {REGENERATE}")


def _sources(node: Any) -> list[str]:
    """Every ``*source`` and ``note`` string of a model, however deep."""
    found: list[str] = []
    if isinstance(node, BaseModel):
        for key, value in dict(node).items():
            if (key.endswith("source") or key.endswith("note")) and isinstance(value, str):
                found.append(value)
            else:
                found += _sources(value)
    elif isinstance(node, dict):
        for value in node.values():
            found += _sources(value)
    elif isinstance(node, list):
        for value in node:
            found += _sources(value)
    return [text for text in found if text]


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_standards_md_names_every_source_and_what_kind_of_document(name: str) -> None:
    from kota.standards.markdown import standards_document

    document = standards_document()
    model = LOADERS[name]()
    basis = getattr(model, "basis", "")
    assert basis, f"{name}: say in `basis` what kind of document the numbers come from"
    assert basis in document
    missing = [text for text in _sources(model) if text.replace("|", "\\|") not in document]
    assert missing == []


def test_standards_md_explains_every_mark_in_words() -> None:
    from kota.standards.markdown import standards_document

    document = standards_document()
    for confidence in Confidence:
        assert f"| {confidence.mark} | `{confidence.value}` | {confidence.meaning} |" in document
    # No pointer at reference notes outside the repository (split so grep finds no such text).
    assert "standards.md" + " §" not in document and "shared" + "/reference" not in document


def test_the_generator_writes_and_checks(tmp_path: Path) -> None:
    from kota.standards.markdown import main, standards_document

    target = tmp_path / "standards.md"
    assert main(["--check", str(target)]) == 1
    assert main(["--write", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == standards_document()
    assert main(["--check", str(target)]) == 0
