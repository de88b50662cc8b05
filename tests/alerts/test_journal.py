"""The sent journal (alerts/subscriptions/journal.py) on a real folder, real flocks and a real
child process; and the notifier settling a dead journal into real SQLite and PostgreSQL rows,
idempotently, plus senders calling ``on_sent`` for what they delivered (a real HTTP receiver).
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from alert_samples import WebhookReceiver, flood_view, insert_alert, webhook_subscribers
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from alerts.subscriptions.fanout import fan_out
from alerts.subscriptions.journal import SentJournal, SentLine
from alerts.subscriptions.notifier import Notifier, NotifierMetrics, _database_scope
from alerts.subscriptions.senders import Message, Recipient
from alerts.subscriptions.senders.apprise import AppriseSender
from alerts.subscriptions.senders.webhook import WebhookSender
from alerts.subscriptions.settings import SubscriptionSettings
from store.subscription_models import Notification, Subscriber

SECRET = "j" * 16 + "-journal-test-secret-0123456789"
MORNING = datetime(2026, 1, 15, 3, 30, tzinfo=UTC)   # 10:30 WIB, after flood_view fired


def names(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


def segment_names(journal: SentJournal) -> list[str]:
    return [path.name for path in journal.segments()]


# -- the journal on its own -------------------------------------------------------------------

def test_record_rotate_mark_and_delete(tmp_path: Path) -> None:
    journal = SentJournal(tmp_path / "journal", "email", scope="db", lines_per_segment=3)
    assert (tmp_path / "journal").stat().st_mode & 0o777 == 0o700
    assert names(tmp_path / "journal") == [f"{journal.name}.lock"]   # a segment when needed
    tokens = [journal.record([10 + number, 100 + number]) for number in range(7)]
    assert tokens == [0, 0, 0, 1, 1, 1, 2]
    assert segment_names(journal) == [f"{journal.name}-{n}.sent" for n in (0, 1, 2)]
    first = journal.segments()[0].read_text().splitlines()
    assert [line.split(" ", 1)[1] for line in first] == ["10 100", "11 101", "12 102"]
    assert all(abs(float(line.split()[0]) - time.time()) < 60 for line in first)
    for token in tokens[:2]:
        journal.marked(token)
    assert len(journal.segments()) == 3            # one line of segment 0 not marked yet
    journal.marked(tokens[2])
    assert segment_names(journal) == [f"{journal.name}-{n}.sent" for n in (1, 2)]
    journal.marked(tokens[6])                      # the current segment stays while current
    assert len(journal.segments()) == 2
    journal.marked(None)                           # a line that could not be written
    assert journal.unmarked == 3
    journal.close()
    # Segment 1's lines were never marked: it stays for the next process, with the lock file.
    assert names(tmp_path / "journal") == [f"{journal.name}-1.sent", f"{journal.name}.lock"]
    assert journal.record([1]) is None              # closed


def test_under_continuous_load_the_journal_stays_small(tmp_path: Path) -> None:
    journal = SentJournal(tmp_path, "webhook", lines_per_segment=100)
    pending: list[int | None] = []
    for number in range(5000):
        pending.append(journal.record([number]))
        if len(pending) == 50:   # marked 50 at a time, as the notifier does
            for token in pending:
                journal.marked(token)
            pending.clear()
    assert len(journal.segments()) <= 1
    journal.close()
    assert names(tmp_path) == []                   # all marked: nothing left


def test_a_closed_journal_is_adopted_once_and_forgotten(tmp_path: Path) -> None:
    # The same process id as the adopter: an earlier run of a reused pid is adopted too.
    dead = SentJournal(tmp_path, "email", scope="db")
    dead.marked(dead.record([1]))
    dead.record([2, 3, 4])
    dead.record([5])
    adopter = SentJournal(tmp_path, "email", scope="db")
    assert adopter.adopt_orphans() == []           # dead is still open: its lock is held
    dead.close()
    [orphan] = adopter.adopt_orphans()
    assert orphan.name == dead.name
    assert [line.row_ids for line in orphan.lines] == [(1,), (2, 3, 4), (5,)]
    # Locked by the adopter while it settles: a second adopter keeps off.
    assert SentJournal(tmp_path, "email", scope="db").adopt_orphans() == []
    adopter.forget([orphan])
    assert not [name for name in names(tmp_path) if name.startswith(dead.name)]
    assert adopter.adopt_orphans() == []


def test_a_released_orphan_is_adopted_again(tmp_path: Path) -> None:
    dead = SentJournal(tmp_path, "email")
    dead.record([7])
    dead.close()
    adopter = SentJournal(tmp_path, "email")
    [orphan] = adopter.adopt_orphans()
    adopter.release([orphan])                      # settling failed
    [again] = adopter.adopt_orphans()
    assert again.lines == orphan.lines


def test_only_this_channel_and_this_database_are_adopted(tmp_path: Path) -> None:
    for channel, scope in (("webhook", "db"), ("email", "other-db")):
        journal = SentJournal(tmp_path, channel, scope=scope)
        journal.record([1])
        journal.close()
    empty_elsewhere = SentJournal(tmp_path, "email", scope="third-db")
    empty_elsewhere.close()          # all marked: deleted on close
    # Died before their first line: lone lock files, of any channel and database.
    leftovers = [SentJournal(tmp_path, channel, scope="third-db")
                 for channel in ("email", "apprise")]
    for leftover in leftovers:
        os.close(leftover._lock_fd)
    alive = SentJournal(tmp_path, "apprise", scope="third-db")
    adopter = SentJournal(tmp_path, "email", scope="db")
    assert adopter.adopt_orphans() == []
    # The other channel's and database's journals stay; the lone lock files (nothing in
    # them) are cleaned up, but not a live one's.
    assert len([name for name in names(tmp_path) if name.endswith(".sent")]) == 2
    assert not [name for leftover in leftovers for name in names(tmp_path)
                if name.startswith(leftover.name)]
    assert f"{alive.name}.lock" in names(tmp_path)


def test_torn_last_line_and_garbage_lines(tmp_path: Path,
                                          caplog: pytest.LogCaptureFixture) -> None:
    dead = SentJournal(tmp_path, "email")
    dead.record([1])
    dead.close()
    [segment] = [tmp_path / name for name in names(tmp_path) if name.endswith(".sent")]
    with segment.open("ab") as file:
        file.write(b"1767225600.125 2 3\n"
                   b"not a line\n"                         # line 3: garbage
                   b"1767225600.1 9\n"                     # line 4: not what record writes
                   b"1767225600.250 4\n"
                   b"1767225600.375 12")                   # torn: the process died here
    adopter = SentJournal(tmp_path, "email")
    with caplog.at_level(logging.DEBUG, logger="alerts.subscriptions.journal"):
        [orphan] = adopter.adopt_orphans()
    assert [line.row_ids for line in orphan.lines] == [(1,), (2, 3), (4,)]
    assert orphan.lines[1] == SentLine(1767225600.125, (2, 3))
    [warning] = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert warning.getMessage() == (f"subscriptions: journal {segment} line 3: not a sent "
                                    "record, ignored (and 1 more line(s))")


def test_a_torn_line_followed_by_another_is_never_read_as_a_record(tmp_path: Path) -> None:
    """A short write (a full disk) leaves a line without its end; what follows it in the
    same file must not merge into a valid record with other ids."""
    whole = b"1767225600.125 123 456"
    dead = SentJournal(tmp_path, "email")
    dead.record([1])
    dead.close()
    [segment] = [tmp_path / name for name in names(tmp_path) if name.endswith(".sent")]
    text = segment.read_bytes()
    adopter = SentJournal(tmp_path, "email")
    for cut in range(1, len(whole)):
        segment.write_bytes(text + whole[:cut] + b"1767225601.500 7\n")
        [orphan] = adopter.adopt_orphans()
        assert [line.row_ids for line in orphan.lines] == [(1,)], whole[:cut]
        adopter.release([orphan])


def test_a_live_process_journal_is_not_adopted_until_it_dies(tmp_path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; from pathlib import Path\n"
         "from alerts.subscriptions.journal import SentJournal\n"
         f"journal = SentJournal(Path({str(tmp_path)!r}), 'webhook', scope='db')\n"
         "journal.record([41]); journal.record([42, 43])\n"
         "print('ready', flush=True); sys.stdin.read()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        adopter = SentJournal(tmp_path, "webhook", scope="db")
        assert adopter.adopt_orphans() == []        # alive: its lock is held
        child.kill()                                # SIGKILL: no chance to close anything
        child.wait(10)
        [orphan] = adopter.adopt_orphans()
        assert [line.row_ids for line in orphan.lines] == [(41,), (42, 43)]
        assert f"-{child.pid}-" in orphan.name
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)


def test_a_stale_temporary_lock_file_is_removed(tmp_path: Path) -> None:
    stale = tmp_path / "email-0123abcd-99999-abcdef.lock.new"
    fresh = tmp_path / "email-0123abcd-99998-abcdef.lock.new"
    stale.write_text("99999\n")
    fresh.write_text("99998\n")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    assert SentJournal(tmp_path, "email").adopt_orphans() == []
    assert not stale.exists() and fresh.exists()   # fresh: its process may be opening it


# -- the notifier settles a dead journal -------------------------------------------------------

def settings(journal_dir: Path | None, **delivery: Any) -> SubscriptionSettings:
    return SubscriptionSettings.model_validate({
        "secret": SECRET, "public_url": "https://peringatan.example.go.id",
        "delivery": {"digest_window_s": 0, "max_per_hour": 100, "journal_dir": journal_dir,
                     **delivery}})


def snapshot(engine: Engine) -> list[tuple[Any, ...]]:
    with Session(engine) as session:
        rows = session.execute(select(
            Notification.id, Notification.subscriber_id, Notification.status,
            Notification.attempts, Notification.digest_id, Notification.sent_at,
            Notification.last_error).order_by(Notification.id)).all()
        subscribers = session.execute(select(Subscriber.id, Subscriber.last_sent_at)
                                      .order_by(Subscriber.id)).all()
    return [tuple(row) for row in rows] + [tuple(row) for row in subscribers]


def dead_journal(directory: Path, engine: Engine, lines: list[list[int]]) -> str:
    journal = SentJournal(directory, "webhook", scope=_database_scope(engine))
    for row_ids in lines:
        assert journal.record(row_ids) is not None
    journal.close()   # nothing marked: everything stays for adoption
    return journal.name


def test_adoption_settles_queued_rows_once_and_leaves_the_rest(
        engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    subscribers = webhook_subscribers(engine, "http://127.0.0.1:9/hook", 5)
    for alert_id in (1, 2):
        view = flood_view(alert_id)
        insert_alert(engine, view)
        fan_out(engine, view, now=MORNING)
    with Session(engine) as session:
        by_key = {(sid, alert): rid for rid, sid, alert in session.execute(
            select(Notification.id, Notification.subscriber_id, Notification.alert_id))}
    s0, s1, s2, s3, s4 = subscribers
    with Session(engine) as session, session.begin():
        session.execute(update(Notification).where(Notification.id == by_key[(s2, 1)])
                        .values(status="failed", attempts=8, last_error="gone"))
        session.execute(update(Notification).where(Notification.id == by_key[(s3, 1)])
                        .values(status="sent", attempts=1, sent_at=MORNING))
    journal_dir = tmp_path / "journal"
    lines = [[by_key[(s0, 1)]],                          # one alert
             [by_key[(s1, 1)], by_key[(s1, 2)]],         # a digest of two
             [by_key[(s2, 1)]],                          # failed meanwhile: untouched
             [by_key[(s3, 1)]]]                          # marked already: untouched
    name = dead_journal(journal_dir, engine, lines)
    before = snapshot(engine)
    metrics = NotifierMetrics()
    notifier = Notifier(engine, settings(journal_dir), [WebhookSender(settings(journal_dir))],
                        metrics=metrics)
    started = time.time()
    with caplog.at_level(logging.INFO, logger="alerts.subscriptions.notifier"):
        assert notifier.adopt("webhook") == 3
    rows = {row.id: row for row in _rows(engine)}
    carrier, digest_carrier, folded = (rows[by_key[(s0, 1)]], rows[by_key[(s1, 1)]],
                                       rows[by_key[(s1, 2)]])
    assert (carrier.status, carrier.attempts, carrier.digest_id) == ("sent", 1, None)
    assert (digest_carrier.status, digest_carrier.attempts) == ("sent", 1)
    assert (folded.status, folded.digest_id) == ("digested", digest_carrier.id)
    sent_at = carrier.sent_at.replace(tzinfo=UTC) if carrier.sent_at.tzinfo is None \
        else carrier.sent_at
    assert started - 60 < sent_at.timestamp() <= time.time()   # the journaled time
    assert (rows[by_key[(s2, 1)]].status, rows[by_key[(s2, 1)]].attempts) == ("failed", 8)
    assert (rows[by_key[(s3, 1)]].status, rows[by_key[(s3, 1)]].attempts) == ("sent", 1)
    assert {rows[by_key[(s4, alert)]].status for alert in (1, 2)} == {"queued"}
    assert rows[by_key[(s0, 2)]].status == "queued"
    with Session(engine) as session:
        last_sent = dict(session.execute(select(Subscriber.id, Subscriber.last_sent_at)).all())
    assert last_sent[s0] is not None and last_sent[s1] is not None
    assert last_sent[s2] is None and last_sent[s4] is None
    assert sent_metrics(metrics) == (2, 3, 1)
    [info] = [record.getMessage() for record in caplog.records if "dead journal" in
              record.getMessage()]
    assert info == (f"subscriptions: webhook: 2 message(s) (3 notification(s)) settled as "
                    f"sent from the dead journal {name} (5 journaled; the others were marked "
                    "already); 0 claimed and not sent made due now instead of at the lease's "
                    "end")
    assert not [n for n in names(journal_dir) if n.startswith(name)]   # forgotten
    after = snapshot(engine)
    assert after != before
    # The same journal replayed (an adopter that died before deleting it): nothing changes.
    dead_journal(journal_dir, engine, lines)
    assert notifier.adopt("webhook") == 0
    assert snapshot(engine) == after
    assert sent_metrics(metrics) == (2, 3, 1)
    asyncio.run(notifier.aclose())


def sent_metrics(metrics: NotifierMetrics) -> tuple[float | None, ...]:
    """Messages, notifications sent and digested, as Prometheus reads them."""
    return tuple(metrics.registry.get_sample_value(f"kota_subscriptions_{name}_total",
                                                   {"channel": "webhook"})
                 for name in ("messages_sent", "notifications_sent", "notifications_digested"))


def _rows(engine: Engine) -> list[Notification]:
    with Session(engine) as session:
        return list(session.scalars(select(Notification).order_by(Notification.id)))


def test_the_notifier_journals_what_it_sends_and_deletes_it_once_marked(
        engine: Engine, receiver: WebhookReceiver, tmp_path: Path) -> None:
    webhook_subscribers(engine, receiver.url, 7)
    view = flood_view()
    insert_alert(engine, view)
    fan_out(engine, view, now=MORNING)
    receiver.script.append((500, {}))   # one fails and is tried again later
    config = settings(tmp_path / "journal", mark_every=3)
    notifier = Notifier(engine, config, [WebhookSender(config)])
    journal = notifier.journals["webhook"]
    written: list[tuple[int, ...]] = []
    record = journal.record

    def spy(row_ids: Any) -> int | None:
        written.append(tuple(row_ids))
        return record(row_ids)

    journal.record = spy  # type: ignore[method-assign]

    async def deliver() -> int:
        return await notifier.deliver_due("webhook")

    assert asyncio.run(deliver()) == 7
    statuses = {row.id: row.status for row in _rows(engine)}
    assert sorted(row_id for (row_id,) in written) == sorted(
        row_id for row_id, status in statuses.items() if status == "sent")
    assert len(written) == 6
    assert journal.unmarked == 0
    assert len(journal.segments()) == 1   # the current segment, all marked
    asyncio.run(notifier.aclose())
    assert names(tmp_path / "journal") == []


def test_an_unusable_journal_dir_is_one_error_naming_the_setting(tmp_path: Path,
                                                                 engine: Engine) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    config = settings(blocker / "journal")
    with pytest.raises(ValueError) as raised:
        Notifier(engine, config, [WebhookSender(config)])
    assert str(raised.value) == (f"alerts.subscriptions.delivery.journal_dir "
                                 f"{blocker / 'journal'}: Not a directory")


def test_kota_alerts_deliver_refuses_an_unusable_journal_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    path = tmp_path / "kota.yaml"
    path.write_text(yaml.safe_dump({"alerts": {
        "database": {"url": f"sqlite:///{tmp_path / 'kota.db'}"},
        "subscriptions": {"secret": SECRET,
                          "delivery": {"journal_dir": str(blocker / "journal")}}}}),
        encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOTA_")}
    result = subprocess.run([sys.executable, "-m", "kota", "alerts", "deliver", "--channel",
                             "email", "--config", str(path)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert line == ("error: kota alerts deliver could not start: alerts.subscriptions.delivery"
                    f".journal_dir {blocker / 'journal'}: Not a directory")


def test_journal_dir_null_turns_it_off_and_empty_is_refused(engine: Engine) -> None:
    config = settings(None)
    assert Notifier(engine, config, [WebhookSender(config)]).journals == {}
    with pytest.raises(ValueError, match="journal_dir"):
        SubscriptionSettings.model_validate({"delivery": {"journal_dir": " "}})


# -- senders call on_sent for what they delivered, in the sending thread ------------------------

@pytest.fixture
def items(receiver: WebhookReceiver) -> Iterator[list[tuple[Recipient, Message]]]:
    message = Message((flood_view(),), "kota-jakarta-alert-1-v1-subscriber-1")
    yield [(Recipient(number, "webhook", f"{receiver.url}/{number}", "ab" * 32, "id-ID"),
            message) for number in range(6)]


def test_webhook_sender_calls_on_sent_for_each_delivered_item(
        receiver: WebhookReceiver, items: list[tuple[Recipient, Message]]) -> None:
    receiver.script.extend([(200, {}), (400, {})])   # the second request is refused
    config = settings(None)
    sender = WebhookSender(config)
    called: list[tuple[int, str]] = []

    async def go() -> list[Any]:
        try:
            return await sender.send_batch(
                items, lambda index: called.append((index, _thread_name())))
        finally:
            await sender.close()

    outcomes = asyncio.run(go())
    assert sorted(index for index, _thread in called) == [
        index for index, outcome in enumerate(outcomes) if outcome is None]
    assert len(called) == 5
    assert all(thread.startswith("kota-webhook") for _index, thread in called)


def test_apprise_sender_calls_on_sent_for_each_delivered_item(
        receiver: WebhookReceiver) -> None:
    message = Message((flood_view(),), "kota-jakarta-alert-1-v1-subscriber-1")
    items = [(Recipient(1, "apprise", f"json://127.0.0.1:{receiver.port}/hook", "ab" * 32,
                        "id-ID"), message),
             (Recipient(2, "apprise", "nothing://at-all", "cd" * 32, "id-ID"), message)]
    called: list[int] = []
    outcomes = asyncio.run(AppriseSender(5).send_batch(items, called.append))
    assert outcomes[0] is None and outcomes[1] is not None
    assert called == [0]


def _thread_name() -> str:
    return threading.current_thread().name


def test_threads_record_without_a_lock_and_every_line_is_whole(tmp_path: Path) -> None:
    # The senders' threads write at once (no lock on that path): every line lands whole, in
    # the segment its number gives, and marking them all leaves nothing behind.
    import threading

    journal = SentJournal(tmp_path, "email", lines_per_segment=250)
    tokens: list[list[int | None]] = [[] for _ in range(8)]

    def send(thread: int) -> None:
        for number in range(500):
            tokens[thread].append(journal.record([thread * 1000 + number]))

    threads = [threading.Thread(target=send, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    lines = [line for path in journal.segments() for line in path.read_text().splitlines()]
    assert sorted(int(line.split()[1]) for line in lines) == sorted(
        thread * 1000 + number for thread in range(8) for number in range(500))
    assert len(journal.segments()) == 4000 // 250
    assert journal.unmarked == 4000
    for thread_tokens in tokens:
        journal.marked_many(thread_tokens)
    assert journal.unmarked == 0 and journal.segments() == []
    journal.close()
    assert names(tmp_path) == []


def test_claims_are_noted_read_back_by_an_adopter_and_cleaned(tmp_path: Path) -> None:
    dead = SentJournal(tmp_path, "email", scope="db", claim_window_s=30)
    now = time.time()
    dead.record_claim(now - 100, [1, 2])          # a lease that ended long ago
    dead.record_claim(now + 30, [3, 4, 5])        # its window is in the future: kept
    claims = sorted(name for name in names(tmp_path) if name.endswith(".claims"))
    assert len(claims) == 1                       # the ended window was deleted on the way
    dead.record([3])
    os.close(dead._lock_fd)                       # as if SIGKILLed: no close()
    adopter = SentJournal(tmp_path, "email", scope="db")
    [orphan] = adopter.adopt_orphans()
    assert [line.row_ids for line in orphan.lines] == [(3,)]
    assert [line.row_ids for line in orphan.claims] == [(3, 4, 5)]
    assert abs(orphan.claims[0].sent_at_s - (now + 30)) < 0.01
    adopter.forget([orphan])
    assert not [name for name in names(tmp_path) if name.startswith(dead.name)]
    # A clean close deletes its claims: it marked what it sent.
    alive = SentJournal(tmp_path, "email", scope="db")
    alive.record_claim(time.time() + 30, [9])
    alive.close()
    assert not [name for name in names(tmp_path) if name.startswith(alive.name)]
