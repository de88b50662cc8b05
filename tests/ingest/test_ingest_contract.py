"""Contract defects found from the outside (issue 8), each checked where it showed:

- a line feed or carriage return in a string field reads back from InfluxDB unchanged;
- only a message larger than ``max_payload_bytes`` is cut in the dead-letter store;
- the dead-letter store stays within ``deadletter.max_mb`` and drops its oldest records first.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest
from kota_testing import influx_query, publish, wait_until

from devstack.localstack import LocalService
from ingest.deadletter import DeadLetter, DeadLetterStore, read_dead_letters

NOW_S = int(time.time()) - 3600
MIB = 2**20
DAY = "20260115"


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.iterdir() if path.is_file())


def _letter(number: int, size: int = 1000) -> DeadLetter:
    payload = f'{{"n": {number}, "junk": "{"x" * size}"'.encode()  # not JSON: no closing brace
    return DeadLetter(1_768_446_000_000 + number, f"kota/jakarta/air/dev-{number}", "not_json",
                      "not JSON", payload)


# -- the store on its own ----------------------------------------------------------------------
def test_a_refused_message_under_the_size_limit_is_kept_whole(tmp_path: Path) -> None:
    store = DeadLetterStore(tmp_path, 4 * MIB, max_payload_bytes=262_144)
    whole = b"{" + b'"pm25": 1, ' * 10_000  # 110 000 bytes, not JSON, under the limit
    over = b"x" * 300_000
    store.append([DeadLetter(1, "kota/jakarta/air/a", "not_json", "bad", whole),
                  # refused for its topic before its size was looked at: still oversized
                  DeadLetter(2, "kota/x", "bad_topic", "bad", over),
                  DeadLetter(3, "", "influx_refused", "400", over, keep_whole=True)], DAY)
    small, cut, refused = read_dead_letters(tmp_path)
    assert str(small["payload"]).encode() == whole and "truncated" not in small
    assert small["payload_bytes"] == len(whole)
    assert str(cut["payload"]).encode() == over[:65_536] and cut["truncated"] is True
    assert cut["payload_bytes"] == len(over)
    assert str(refused["payload"]).encode() == over and "truncated" not in refused


@pytest.mark.slow
@pytest.mark.parametrize("batch", [7, 50, 5000])
def test_a_burst_stays_within_max_mb_and_drops_the_oldest_first(
        tmp_path: Path, batch: int, caplog: pytest.LogCaptureFixture) -> None:
    limit = 1 * MIB
    store = DeadLetterStore(tmp_path, limit, max_payload_bytes=262_144)
    total = 5000  # about 5 MB of records into a 1 MiB store
    largest = 0
    with caplog.at_level(logging.ERROR, logger="kota.ingest.deadletter"):
        for start in range(0, total, batch):
            store.append([_letter(n) for n in range(start, min(start + batch, total))], DAY)
            size = folder_bytes(tmp_path)
            assert size <= limit  # after every write, not just at the end
            largest = max(largest, size)
    records = read_dead_letters(tmp_path)
    kept = [json.loads(str(r["payload"]) + "}")["n"] for r in records]
    # The newest are kept, in order, and exactly the oldest are gone.
    assert kept == list(range(total - len(kept), total))
    assert store.dropped_records == total - len(kept)
    assert store.size_bytes == folder_bytes(tmp_path)
    # Gradual: at most one part (a sixteenth of the limit) below the limit, besides a record.
    record_bytes = max(len(line) for path in tmp_path.iterdir()
                       for line in path.read_bytes().splitlines(keepends=True))
    assert folder_bytes(tmp_path) > limit - store.part_bytes - record_bytes
    assert all(path.stat().st_size <= store.part_bytes for path in tmp_path.iterdir())
    assert "dead-letter" in caplog.text and "max_mb" in caplog.text
    # A new process sees the same store and keeps the bound.
    again = DeadLetterStore(tmp_path, limit, max_payload_bytes=262_144)
    again.append([_letter(total)], DAY)
    assert folder_bytes(tmp_path) <= limit
    assert json.loads(str(read_dead_letters(tmp_path)[-1]["payload"]) + "}")["n"] == total


@pytest.mark.slow
def test_parts_past_999_keep_their_order(tmp_path: Path) -> None:
    store = DeadLetterStore(tmp_path, 64 * MIB)
    store.part_bytes = 1  # one record per part
    store.append([_letter(n, 10) for n in range(1005)], DAY)
    assert (tmp_path / f"deadletter-{DAY}-1005.jsonl").exists()
    kept = [json.loads(str(r["payload"]) + "}")["n"] for r in read_dead_letters(tmp_path)]
    assert kept == list(range(1005))
    store.max_bytes = folder_bytes(tmp_path) - 1  # one record too many: the oldest goes
    store.append([_letter(1005, 10)], DAY)
    kept = [json.loads(str(r["payload"]) + "}")["n"] for r in read_dead_letters(tmp_path)]
    assert kept[-1] == 1005 and 0 not in kept and kept == sorted(kept)


def test_a_record_larger_than_the_store_is_cut_to_fit(tmp_path: Path) -> None:
    store = DeadLetterStore(tmp_path, 100_000)
    store.append([DeadLetter(1, "", "influx_refused", "400", b"a" * 300_000, keep_whole=True)],
                 DAY)
    (record,) = read_dead_letters(tmp_path)
    assert record["truncated"] is True and record["payload_bytes"] == 300_000
    assert folder_bytes(tmp_path) <= 100_000


# -- through MQTT, ingest and InfluxDB ---------------------------------------------------------
@pytest.mark.slow
def test_newlines_round_trip_and_a_100kb_refusal_is_kept_whole(
        mosquitto: LocalService, influxdb: LocalService, database: str, client_id: str,
        tmp_path: Path, ingest_factory: type) -> None:
    ingest = ingest_factory(tmp_path / "ingest", mosquitto.port, influxdb.port, database,
                            mqtt__client_id=client_id).start()
    message = 'Tabrakan\r\nmotor di "Jl. Sudirman"\n\\ dua korban\r'
    invalid = b'{"pm25": "' + b"x" * 100_000 + b'"}'  # wrong_type, well under 256 KiB
    oversized = b"{" + b" " * 300_000 + b"}"
    assert publish(mosquitto.port, [
        ("kota/jakarta/safety/dev-nl", {"event": "accident", "message": message, "ts": NOW_S}),
        ("kota/jakarta/air/dev-100kb", invalid),
        ("kota/jakarta/air/dev-300kb", oversized)]) == 3
    wait_until(lambda: ingest.metric("kota_ingest_rejected") == 2, 30, "two rejections")
    wait_until(lambda: bool(influx_query(influxdb, database, "SELECT message FROM safety")), 30,
               "the safety point")
    (series,) = influx_query(influxdb, database, "SELECT message FROM safety")
    assert series["values"][0][1] == message
    by_topic = {r["topic"]: r for r in read_dead_letters(tmp_path / "ingest" / "deadletter")}
    whole = by_topic["kota/jakarta/air/dev-100kb"]
    assert whole["reason"] == "wrong_type" and "truncated" not in whole
    assert str(whole["payload"]).encode() == invalid
    cut = by_topic["kota/jakarta/air/dev-300kb"]
    assert cut["reason"] == "oversized" and cut["truncated"] is True
    assert str(cut["payload"]).encode() == oversized[:65_536]


@pytest.mark.slow
def test_a_dead_letter_burst_stays_within_max_mb(
        mosquitto: LocalService, influxdb: LocalService, database: str, client_id: str,
        tmp_path: Path, ingest_factory: type) -> None:
    ingest = ingest_factory(tmp_path / "ingest", mosquitto.port, influxdb.port, database,
                            mqtt__client_id=client_id, deadletter__max_mb="1").start()
    total = 1500  # about 3 MB of garbage
    messages = [(f"kota/jakarta/air/dev-burst-{n % 10}", f"garbage {n:05d} " + "x" * 2000)
                for n in range(total)]
    assert publish(mosquitto.port, messages) == total
    wait_until(lambda: ingest.metric("kota_ingest_rejected") == total, 60, "every rejection")
    folder = tmp_path / "ingest" / "deadletter"
    assert folder_bytes(folder) <= MIB
    kept = [int(str(r["payload"]).split()[1]) for r in read_dead_letters(folder)]
    assert kept[-1] == total - 1  # the newest is there
    assert kept == list(range(total - len(kept), total))  # the oldest are the ones gone
    dropped = ingest.metric("kota_ingest_deadletters_dropped")
    assert dropped == total - len(kept) > 0
    # One batch larger than the store logs "burst …", smaller batches "store at …": which one
    # depends on how ingest's batches fell, and both name the setting.
    assert "deadletter.max_mb" in ingest.log()
