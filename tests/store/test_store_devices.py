"""The device registry in the database (store/devices.py), its export as the registry file and
the reload the services do (kota/registry.py). The broker side: tests/deploy/test_provisioning.py.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from pathlib import Path

import pytest
from kota_testing import free_port

from agent.config import parse_config
from kota.broker import dynsec_config
from kota.registry import Device, Registry, RegistryWatcher
from store.db import ensure_schema, make_engine
from store.devices import (
    DeviceStore,
    Provisioner,
    ProvisioningError,
    ProvisioningSettings,
    agent_snippet,
)


def _device(device_id: str, district: str = "Gambir", **params: float | str) -> Device:
    return Device(device_id=device_id, kind="water", city="jakarta", district=district,
                  lat=-6.17, lon=106.82, name=f"gauge {device_id}", params=params)


def _store(url: str) -> DeviceStore:
    engine = make_engine(url)
    ensure_schema(engine, migrate=True)
    return DeviceStore(engine)


def test_rows_add_decommission_and_take_back_an_id(database_url: str) -> None:
    """On SQLite and PostgreSQL: the migration, and what the rows keep."""
    store = _store(database_url)
    store.add(_device("w-1", gauge_id="manggarai", mount_height_cm=420.0), "test", True)
    store.add(_device("w-2"), "test", False)
    with pytest.raises(ProvisioningError, match="already registered"):
        store.add(_device("w-1"), "test", True)
    assert [d.device_id for d in store.registry()] == ["w-1", "w-2"]
    assert store.registry().get("w-1") == _device("w-1", gauge_id="manggarai",
                                                  mount_height_cm=420.0)
    gone = store.decommission("w-1")
    assert gone.status == "decommissioned" and gone.decommissioned_at is not None
    with pytest.raises(ProvisioningError, match="no active device"):
        store.decommission("w-1")
    assert [d.device_id for d in store.registry()] == ["w-2"]
    assert {i.device.device_id for i in store.list(include_decommissioned=True)} == {"w-1", "w-2"}
    again = store.add(_device("w-1", district="Tebet"), "test", True)
    assert again.status == "active" and again.decommissioned_at is None
    assert store.upsert([_device("w-2", district="Menteng"), _device("w-3")], "test") == (1, 1)
    assert [(d.device_id, d.district) for d in store.registry()] == [
        ("w-1", "Tebet"), ("w-2", "Menteng"), ("w-3", "Gambir")]


@pytest.mark.parametrize("name", ["registry.yaml", "registry.csv"])
def test_save_is_atomic_and_reads_back(tmp_path: Path, name: str) -> None:
    registry = Registry([_device("w-1", gauge_id="manggarai", mount_height_cm=420.0),
                         _device("w-2")])
    path = tmp_path / name
    path.write_text("old")
    registry.save(path)
    assert [d for d in Registry.load(path)] == list(registry)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temporary file left
    assert path.stat().st_mode & 0o777 == 0o644


def test_watcher_reloads_in_place_and_keeps_the_last_good_registry(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "registry.yaml"
    Registry([_device("w-1")]).save(path)
    registry = Registry.load(path)
    seen: list[int] = []
    watcher = RegistryWatcher(path, registry, 0.1, lambda changed: seen.append(len(changed)))
    assert not watcher.check()  # unchanged
    Registry([_device("w-1"), _device("w-2")]).save(path)
    assert watcher.check() and "w-2" in registry and seen == [2]
    good = path.read_text()
    path.write_text(good.replace("lat: -6.17", "lat: 900", 1) + "\n")
    with caplog.at_level(logging.ERROR, logger="kota.registry"):
        assert not watcher.check()
        assert not watcher.check()  # the same broken file: said once
    assert len(registry) == 2 and seen == [2]
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert f"{path}:2: device #1 (w-1): lat" in message and "\n" not in message
    path.write_text(good + "\n")
    assert watcher.check() and seen == [2, 2]


def test_agent_config_is_accepted_by_the_agent() -> None:
    device = _device("w-9")
    plain = agent_snippet(device, 'p"w\\1', ProvisioningSettings(device_tls=False,
                                                                device_port=1883))
    config = parse_config(plain, "plain.toml")
    assert (config.agent.id, config.agent.city, config.mqtt.username, config.mqtt.password,
            config.mqtt.port, config.mqtt.tls) == ("w-9", "jakarta", "w-9", 'p"w\\1', 1883,
                                                   None)
    tls = parse_config(agent_snippet(device, "pw", ProvisioningSettings.model_validate(
        {"device_host": "mqtt.example", "device_ca_file": "/etc/kota-agent/ca.crt"})), "t.toml")
    assert tls.mqtt.host == "mqtt.example" and tls.mqtt.port == 8883
    assert tls.mqtt.tls is not None and str(tls.mqtt.tls.ca_file) == "/etc/kota-agent/ca.crt"


def test_the_plugin_seed_holds_a_hash_the_plugin_checks() -> None:
    salt = os.urandom(12)
    seed = dynsec_config("kota-provisioner", "s3cret", salt=salt, iterations=1000)
    client = seed["clients"][0]  # type: ignore[index]
    assert "s3cret" not in str(seed)
    expected = hashlib.pbkdf2_hmac("sha512", b"s3cret", salt, 1000)
    assert base64.b64decode(client["password"]) == expected
    assert base64.b64decode(client["salt"]) == salt


def test_a_registry_file_the_database_lacks_is_not_overwritten(tmp_path: Path) -> None:
    store = _store(f"sqlite:///{tmp_path / 'kota.db'}")
    path = tmp_path / "registry.yaml"
    Registry([_device("hand-1")]).save(path)
    before = path.read_text()
    # A closed port: reaching the broker would fail differently (502).
    settings = ProvisioningSettings.model_validate({"broker": {"port": free_port()},
                                                    "timeout_s": 1})
    provisioner = Provisioner(store, path, settings)
    with pytest.raises(ProvisioningError, match="kota devices import") as refused:
        provisioner.add(_device("w-1"), "test")
    assert refused.value.status == 503 and path.read_text() == before
    assert store.list(include_decommissioned=True) == []
    assert provisioner.import_devices(Registry([_device("hand-1")]), "test") == (1, 0)
    with pytest.raises(ProvisioningError, match=r"cannot reach|no answer") as unreachable:
        provisioner.add(_device("w-1"), "test")
    assert unreachable.value.status == 502
    assert [i.device.device_id for i in store.list(True)] == ["hand-1"]  # rolled back
    store.decommission("hand-1")
    row_before = store.get("hand-1")
    with pytest.raises(ProvisioningError, match=r"cannot reach|no answer"):
        provisioner.add(_device("hand-1", district="Tebet"), "test")
    assert store.get("hand-1") == row_before  # the decommissioned row as it was
    with pytest.raises(ProvisioningError, match="kept for the service accounts"):
        provisioner.add(_device("kota-ingest"), "test")


def test_ingest_and_indicators_see_a_changed_registry_file(tmp_path: Path) -> None:
    """Both services reload the file into what they read devices from (the API: the end-to-end
    test in tests/deploy/test_provisioning.py)."""
    from indicators.service import IndicatorService
    from indicators.settings import IndicatorSettings
    from ingest.service import IngestService
    from ingest.settings import IngestSettings

    path = tmp_path / "registry.yaml"
    Registry([_device("w-1")]).save(path)
    indicators = IndicatorService(IndicatorSettings(registry_file=path, metrics_port=0))
    ingest = IngestService(IngestSettings.model_validate({
        "registry_file": path, "metrics_port": 0, "buffer": {"dir": tmp_path / "buffer"},
        "deadletter": {"dir": tmp_path / "deadletter"}}))
    before = ingest.parser.parse("kota/jakarta/water/w-2", b'{"level_cm": 1}', 1_767_225_600_000)
    assert "district=unregistered" in before.lines[0]
    Registry([_device("w-1"), _device("w-2", district="Tebet")]).save(path)
    assert indicators.registry_watcher is not None and indicators.registry_watcher.check()
    assert ingest.registry_watcher is not None and ingest.registry_watcher.check()
    assert indicators.context.registry.get("w-2") is not None
    after = ingest.parser.parse("kota/jakarta/water/w-2", b'{"level_cm": 1}', 1_767_225_600_000)
    assert "district=Tebet" in after.lines[0]


def test_rows_keep_the_region_code(database_url: str) -> None:
    """The devices table keeps each device's Kemendagri code (migration 0005): the table's,
    or the device's own outside it; the exported file carries it."""
    store = _store(database_url)
    katulampa = Device(device_id="w-k", kind="water", city="jakarta", district="Bogor Timur",
                       district_code="32.71.02", lat=-6.63, lon=106.84)
    store.add(_device("w-t", district="Tebet"), "test", False)
    store.add(katulampa, "test", False)
    assert [(d.device_id, d.district_code) for d in store.registry()] == [
        ("w-k", "32.71.02"), ("w-t", "31.74.01")]
    assert store.get("w-k") is not None and store.get("w-k").device == katulampa
