"""Issue 12's "nothing sent twice after a SIGKILL", as far as at-least-once allows: a real
``kota alerts deliver --channel email|webhook`` process (aiosmtpd or a local HTTP receiver;
SQLite and PostgreSQL) is SIGKILLed mid-batch with nothing marked yet (``mark_every`` larger than
the batch), started again, and runs until every row is sent. With the journal every key
arrives and what arrives twice is at most what was in flight (the sender's threads); with
``journal_dir: null`` the same run sends again everything delivered before the kill, so the
journal is what makes the difference."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from alert_samples import SmtpSink, WebhookReceiver, flood_view, insert_alert, subscribers
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from alerts.subscriptions.fanout import fan_out
from store.subscription_models import Notification

SECRET = "k" * 16 + "-journal-kill-secret-0123456789"
SUBSCRIBERS = 300       # one batch: every row is claimed (leased) before the kill
KILL_AFTER = 30         # arrivals at the sink before the SIGKILL
IN_FLIGHT = 4           # smtp.pool_size and delivery.workers_per_channel (their defaults)


def _sent(engine: Engine, alert_id: int) -> int:
    with Session(engine) as session:
        return int(session.scalar(select(func.count()).where(
            Notification.alert_id == alert_id, Notification.status == "sent")) or 0)


def _config(tmp_path: Path, database_url: str, smtp_port: int,
            journal_dir: Path | None, lease_s: float = 2) -> Path:
    path = tmp_path / f"kota-{'journal' if journal_dir else 'none'}.yaml"
    path.write_text(yaml.safe_dump({"alerts": {
        "database": {"url": database_url}, "metrics_port": 0, "influx_events": False,
        "subscriptions": {
            "secret": SECRET, "smtp": {"host": "127.0.0.1", "port": smtp_port, "timeout_s": 5},
            "delivery": {"in_process": False, "poll_interval_s": 0.1, "digest_window_s": 0,
                         "max_per_hour": 100, "batch": 500, "mark_every": 10_000,
                         # Without a journal: short, so what was leased and not sent goes
                         # out again soon. With one: the journaled claims release it.
                         "lease_s": lease_s,
                         "journal_dir": None if journal_dir is None else str(journal_dir)}}}}),
        encoding="utf-8")
    return path


def _start(channel: str, config: Path, log_path: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOTA_")}
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "kota", "alerts", "deliver", "--channel", channel,
             "--config", str(config)], cwd=config.parent, env=env, stdout=log,
            stderr=subprocess.STDOUT)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _wait(what: str, done: Callable[[], bool], timeout_s: float,
          process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert process.poll() is None, log_path.read_text(errors="replace")[-3000:]
        assert time.monotonic() < deadline, (
            f"{what}: not within {timeout_s:g} s\n" + log_path.read_text(errors="replace")[-3000:])
        time.sleep(0.005)


def _kill_and_restart(engine: Engine, channel: str, config: Path, alert_id: int,
                      arrived: Callable[[], list[str]], log_path: Path) -> tuple[int, int]:
    """Fan out alert ``alert_id``, SIGKILL the deliver process after KILL_AFTER arrivals,
    start it again until every row is sent; returns (arrivals before the kill, repeats)."""
    view = flood_view(alert_id)
    insert_alert(engine, view)
    assert fan_out(engine, view) == SUBSCRIBERS
    key_part = f"alert-{alert_id}-v1-subscriber-"

    def mine() -> list[str]:
        return [key for key in arrived() if key_part in key]

    process = _start(channel, config, log_path)
    try:
        _wait("first arrivals", lambda: len(mine()) >= KILL_AFTER, 60, process, log_path)
        process.kill()
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    before_kill = len(mine())
    assert _sent(engine, alert_id) == 0   # the premise: nothing was marked before the kill
    assert before_kill < SUBSCRIBERS      # ... and it was killed mid-batch
    process = _start(channel, config, log_path)
    try:
        _wait("every row sent", lambda: _sent(engine, alert_id) == SUBSCRIBERS, 60, process,
              log_path)
        time.sleep(0.3)   # a late repeat would still arrive
    finally:
        _stop(process)
    keys = mine()
    assert len(set(keys)) == SUBSCRIBERS   # every subscriber got it
    return before_kill, len(keys) - len(set(keys))


@pytest.mark.parametrize("channel", ["email", "webhook"])
def test_after_a_sigkill_only_what_was_in_flight_is_sent_twice(
        channel: str, engine: Engine, database_url: str, smtp: tuple[int, SmtpSink],
        receiver: WebhookReceiver, tmp_path: Path) -> None:
    smtp_port, sink = smtp
    subscribers(engine, channel, SUBSCRIBERS, receiver.url)

    def arrived() -> list[str]:
        if channel == "email":
            return sink.arrived()
        return [request.headers["Idempotency-Key"] for request in list(receiver.requests)]

    journal_dir = tmp_path / "journal"
    log_path = tmp_path / "deliver.log"
    # A lease of 10 minutes: the restarted process can only finish within _kill_and_restart's
    # 60 s because the dead one's journaled claims make its unsent rows due at once.
    _before, repeats = _kill_and_restart(
        engine, channel, _config(tmp_path, database_url, smtp_port, journal_dir, lease_s=600),
        1, arrived, log_path)
    assert repeats <= IN_FLIGHT, repeats
    log = log_path.read_text(errors="replace")
    assert f"settled as sent from the dead journal {channel}-" in log
    released = re.search(r"; (\d+) claimed and not sent made due now", log)
    assert released is not None and int(released.group(1)) > 0, log[-3000:]
    assert "Traceback" not in log
    assert os.listdir(journal_dir) == []   # settled and forgotten; the last one closed clean

    before_kill, repeats_without = _kill_and_restart(
        engine, channel, _config(tmp_path, database_url, smtp_port, None), 2, arrived,
        tmp_path / "deliver-no-journal.log")
    # Without the journal everything delivered before the kill goes out again.
    assert repeats_without >= before_kill >= KILL_AFTER, (repeats_without, before_kill)
    assert repeats_without > IN_FLIGHT >= repeats
