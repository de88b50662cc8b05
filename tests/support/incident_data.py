"""Known data for the incident tests (tests/api/test_incidents_*.py): the API's registry with a
panic button in Setiabudi, and an alert about an incident made by the engine's own path
(alerts.engine.decide → AlertStore.apply, as the alert service applies a safety finding)."""

from __future__ import annotations

from datetime import datetime

from api_data import api_registry

from alerts.engine import Timing, decide
from alerts.model import AlertText, Area
from alerts.rules import Finding
from alerts.state import AlertStore, RuleInfo
from kota.registry import Device, Registry


def incident_registry() -> Registry:
    setiabudi = Device(device_id="panic-setiabudi", kind="safety", city="jakarta",
                       district="Setiabudi", kelurahan="Kuningan", lat=-6.21, lon=106.83,
                       name="Tombol Kuningan", params={})
    return Registry([*api_registry(), setiabudi])


def fire_alert(store: AlertStore, scope: str, severity: str, at: datetime) -> int:
    """An alert about ``scope`` as the safety rule raises one (alerts/rules/safety.py)."""
    text = AlertText(headline=f"Insiden {scope}", description="Uraian.", instruction="Periksa.")
    finding = Finding(scope=scope, at=at, grade=1, level="fire",
                      severity=severity,  # type: ignore[arg-type]
                      urgency="Immediate", certainty="Observed",
                      area=Area(description="Setiabudi", districts=("Setiabudi",)),
                      city="jakarta", details={"incident": scope},
                      texts={"id-ID": text, "en-US": text})
    decision = decide(Timing(fire_grade=1, pending_s=0, clear_after_s=0), None,
                      finding.observation(), at)
    view = store.apply(RuleInfo("safety-event", "safety", "operators", False), scope, decision,
                       finding, at)
    assert view is not None
    return view.id
