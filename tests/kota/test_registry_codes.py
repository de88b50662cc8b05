"""Region codes in the registry (issue 13): every device carries the Kemendagri code of its
kecamatan (kota/regions), derived from city and district unless it gives its own; points are
tagged with it; the files and the district table carry the same codes."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import pytest

from kota.regions import default_codes
from kota.registry import Device, Registry, RegistryError

ROOT = Path(__file__).resolve().parents[2]
SIMULATED = ROOT / "simulators" / "cities" / "jakarta" / "devices.yaml"


def _device(**fields: object) -> Device:
    return Device.model_validate({"device_id": "w-1", "kind": "water", "city": "jakarta",
                                  "district": "Tebet", "lat": -6.23, "lon": 106.85, **fields})


def test_the_code_comes_from_the_table_and_tags_every_point() -> None:
    device = _device()
    assert device.district_code == "31.74.01" == default_codes().code("jakarta", "Tebet")
    assert device.tags() == {"city": "jakarta", "district": "Tebet",
                             "district_code": "31.74.01", "kind": "water", "device": "w-1"}
    # the name compares without case and surrounding spaces, as in CAP
    assert _device(district="Kramat Jati").district_code == "31.75.04"


def test_a_device_outside_the_table_gives_its_own_or_has_none() -> None:
    katulampa = _device(district="Bogor Timur", district_code="32.71.02")
    assert katulampa.district_code == "32.71.02"
    assert katulampa.tags()["district_code"] == "32.71.02"
    unknown = _device(district="Bogor Timur")
    assert unknown.district_code == "" and "district_code" not in unknown.tags()


@pytest.mark.parametrize("code", ["317401", "31.74.1", "31.74.01 ", "x"])
def test_a_malformed_code_is_refused(code: str) -> None:
    with pytest.raises(ValueError, match="district_code"):
        _device(district_code=code)


def test_an_unknown_district_is_one_warning_naming_file_and_line(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "devices.yaml"
    path.write_text(
        "devices:\n"
        "  - {device_id: a, kind: rain, city: jakarta, district: Tebet, lat: -6.2, lon: 106.8}\n"
        "  - {device_id: b, kind: rain, city: jakarta, district: Atlantis, lat: -6.2,\n"
        "     lon: 106.8}\n"
        "  - {device_id: c, kind: rain, city: jakarta, district: Tebet, district_code: '31.71.01',"
        " lat: -6.2, lon: 106.8}\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="kota.registry"):
        registry = Registry.load(path)
    assert len(registry) == 3  # a warning, not a refusal
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2 and all("\n" not in m for m in messages)
    assert messages[0].startswith(f"{path}:3: device b: no Kemendagri code for district "
                                  "'Atlantis'")
    # a code that differs from the table's is used, and said (a stale copy shows up)
    assert messages[1].startswith(f"{path}:5: device c: district_code 31.71.01 differs from "
                                  "31.74.01")
    assert registry.get("c") is not None and registry.get("c").district_code == "31.71.01"


def test_a_bad_code_in_a_file_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "devices.csv"
    path.write_text("device_id,kind,city,district,district_code,lat,lon\n"
                    "a,rain,jakarta,Tebet,31.74.01,-6.2,106.8\n"
                    "b,rain,jakarta,Tebet,3174,-6.2,106.8\n", encoding="utf-8")
    with pytest.raises(RegistryError, match=r"devices\.csv:3: device #2 \(b\): district_code"):
        Registry.load(path)


@pytest.mark.parametrize("suffix", [".yaml", ".csv"])
def test_the_files_carry_the_codes(tmp_path: Path, suffix: str) -> None:
    registry = Registry([_device(), _device(device_id="w-2", district="Bogor Timur",
                                            district_code="32.71.02"),
                         _device(device_id="w-3", district="Atlantis")])
    path = tmp_path / f"devices{suffix}"
    registry.save(path)
    again = Registry.load(path)
    assert [(d.device_id, d.district_code) for d in again] == [
        ("w-1", "31.74.01"), ("w-2", "32.71.02"), ("w-3", "")]
    if suffix == ".csv":
        assert path.read_text(encoding="utf-8").splitlines()[0].startswith(
            "device_id,kind,city,district,district_code,")


def test_every_simulated_device_has_a_code(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="kota.registry"):
        registry = Registry.load(SIMULATED)
    assert not caplog.records, [r.getMessage() for r in caplog.records]
    outside = {d.district: d.district_code for d in registry if d.table_code() is None}
    assert outside == {"Bogor Timur": "32.71.02", "Pancoran Mas": "32.76.01",
                       "Cisarua": "32.01.25"}


def test_the_district_table_has_the_same_codes() -> None:
    """indicators/data/jakarta/districts.csv's kode_wilayah is kota/regions' code."""
    path = ROOT / "indicators" / "data" / "jakarta" / "districts.csv"
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 44
    for row in rows:
        assert row["kode_wilayah"] == default_codes().code(row["city"], row["kecamatan"]), row


def test_a_registry_without_warnings_is_read_once(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    # Finding a device's line composes the whole file: done per device it made loading the
    # simulated city's 118 devices take 21 s (the demo started in 55-114 s instead of ~10).
    import kota.registry as registry_module

    looked_up: list[int] = []
    real = registry_module._line_of
    monkeypatch.setattr(registry_module, "_line_of",
                        lambda path, number: looked_up.append(number) or real(path, number))
    assert len(Registry.load(SIMULATED)) > 100
    assert looked_up == []
    # A device that needs a warning still gets its line.
    odd = tmp_path / "odd.yaml"
    odd.write_text("devices:\n  - {device_id: w-1, kind: water, city: jakarta, district: Tebet,"
                   " lat: -6.23, lon: 106.85}\n  - {device_id: w-2, kind: water, city: nowhere,"
                   " district: Atlantis, lat: -6.2, lon: 106.8}\n", encoding="utf-8")
    Registry.load(odd)
    assert looked_up == [2]
