"""The simulator through the real pipeline: Mosquitto -> `kota ingest` (strict registry) ->
InfluxDB. Clean messages are all written; faulty ones are refused with the reason the
generator predicted, and nothing else is."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kota_testing import count_points, wait_until

from devstack.localstack import LocalService
from simulators import SimulateSettings, build_stream, run

HOUR_S = 3600.0


@pytest.mark.slow
def test_simulated_city_through_ingest(tmp_path: Path, mosquitto: LocalService,
                                       influxdb: LocalService, database: str, client_id: str,
                                       ingest_factory: type) -> None:
    settings = SimulateSettings.model_validate({
        "mqtt": {"port": mosquitto.port, "client_id": f"{client_id}-sim"},
        "seed": 21, "speed": 0, "duration_s": 2 * HOUR_S,
        "start": datetime.fromtimestamp(time.time() - 3 * HOUR_S, UTC),
        "faults": {"share": 0.1}})
    registry_file = tmp_path / "registry.yaml"
    stream, _window = build_stream(settings)
    registry_file.write_text(stream.city.registry().dump_yaml())
    expected = list(stream)
    refused = Counter(m.expected_reason for m in expected if m.expected_reason)

    ingest = ingest_factory(tmp_path / "ingest", mosquitto.port, influxdb.port, database,
                            registry_file=str(registry_file), strict_registry="true",
                            mqtt__client_id=client_id).start()
    summary = run(settings)
    assert summary.published == summary.acknowledged == len(expected)

    by_kind = Counter(m.kind for m in expected if not m.expected_reason)
    kinds = sorted(by_kind)

    def stored() -> dict[str, int]:
        return {kind: count_points(influxdb, database, kind) for kind in kinds}

    wait_until(lambda: stored() == dict(by_kind)
               and (ingest.metric("kota_ingest_rejected") or 0) >= sum(refused.values()), 30,
               "ingest to store or refuse every simulated message")
    assert ingest.metric("kota_ingest_rejected") == sum(refused.values())
    by_reason = {reason: ingest.metric(f'kota_ingest_rejected_by_reason_total{{reason="{reason}"}}')
                 for reason in refused}
    assert by_reason == {reason: float(count) for reason, count in refused.items()}
