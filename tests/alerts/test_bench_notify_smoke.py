"""``kota bench notify`` at a small scale: the real run (Mosquitto, kota alerts, the aiosmtpd and
webhook sinks in their own processes, the floor), its report's shape, and every expected
notification arriving exactly once; with a SIGKILL mid-delivery, nothing lost."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from alerts.bench.notify import ALERT_KECAMATAN, NotifyBenchConfig, notify, run_notify_bench

pytestmark = pytest.mark.slow

SUBSCRIBERS = 2000


def expected_per_channel() -> int:
    """Subscribers index 0..1999, channel by parity, kecamatan (index // 2) % 44."""
    from alerts.bench.notify import kecamatan

    names = kecamatan()
    assert len(names) == 44
    return sum(1 for index in range(0, SUBSCRIBERS, 2)
               if names[(index // 2) % 44] in ALERT_KECAMATAN)


def check_shape(result: dict[str, Any]) -> None:
    assert result["benchmark"] == "notify"
    assert result["alert"]["fired_commits"] == 1
    assert result["alert"]["published_to_committed_ms"] is not None
    for channel in ("email", "webhook"):
        floor = result["floor"][channel]
        assert floor["arrivals_unique"] == result["subscribers"]["expected"][channel]
        assert floor["per_s"] > 0
        assert len(result["floor_rounds"]) == 1 and result["floor_rounds"][0][channel] > 0
        # The floor replays the message kota sent, not a text of its own.
        assert result["floor_message"][channel]["kotas_message"] is True
        assert result["floor_message"][channel]["bytes"] > 500
        entry = result["delivery"][channel]
        assert entry["arrivals_raw"] == entry["arrivals_unique"] + entry["duplicates"]
        assert entry["committed_to_first_s"] <= entry["committed_to_last_s"]
    assert 0 < result["alerts_peak_rss_mb"] < 2000
    assert {target["id"] for target in result["targets"]} == {
        "email_throughput", "webhook_throughput", "first_notification", "rss", "nothing_lost",
        "nothing_twice"}


def test_every_notification_arrives_exactly_once() -> None:
    result = run_notify_bench(NotifyBenchConfig(subscribers=SUBSCRIBERS, grace_s=180,
                                                floor_rounds=1))
    check_shape(result)
    per_channel = expected_per_channel()
    assert per_channel > 0
    for channel in ("email", "webhook"):
        entry = result["delivery"][channel]
        assert entry["expected"] == per_channel
        assert (entry["arrivals_unique"], entry["missing"], entry["unexpected"]) == (
            per_channel, 0, 0)
        assert entry["duplicates"] == 0
        assert entry["subscribers_with_more_than_one_version"] == 0
        # The database agrees with the sinks: every row sent, none left queued.
        assert result["notifications_in_database"][channel] == {"sent": per_channel}
    assert result["kills"] == []
    verdicts = {t["id"]: t for t in result["targets"]}
    assert verdicts["nothing_lost"]["result"] == "PASS"
    # No SIGKILL: not one raw repeat is allowed.
    assert verdicts["nothing_twice"]["measured"]["in_flight_bound"] == 0
    assert verdicts["nothing_twice"]["result"] == "PASS"


def test_sigkill_mid_delivery_loses_nothing() -> None:
    result = run_notify_bench(NotifyBenchConfig(subscribers=SUBSCRIBERS, kill_at=0.3,
                                                grace_s=180, floor_rounds=1))
    check_shape(result)
    [kill] = result["kills"]
    total = sum(result["subscribers"]["expected"].values())
    assert 0.3 * total <= kill["after_arrivals"] < total
    for channel in ("email", "webhook"):
        entry = result["delivery"][channel]
        assert (entry["missing"], entry["unexpected"]) == (0, 0)
        assert result["notifications_in_database"][channel] == {"sent": entry["expected"]}
    # The sent journal: what goes twice is at most what was in flight at the kill.
    twice = {t["id"]: t for t in result["targets"]}["nothing_twice"]
    assert twice["measured"]["in_flight_bound"] == 8
    assert twice["measured"]["twice_by_key"] == 0
    assert twice["result"] == "PASS", twice


def test_bad_kill_at_is_one_line() -> None:
    outcome = CliRunner().invoke(notify, ["--kill-at", "1.5"])
    assert outcome.exit_code == 2
    assert "--kill-at" in outcome.output and "Traceback" not in outcome.output
