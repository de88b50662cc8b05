"""For the alert channel and outbox tests: AlertView instances, outbox rows as the engine
writes them, and a webhook receiver (a real HTTP server on loopback)."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from alerts.model import AlertText, AlertView, Area, alert_view_to_json
from alerts.outbox import idempotency_key
from devstack.localstack import free_port
from store.alert_models import Alert, OutboxItem
from store.subscription_models import Subscriber

FIRED_AT = datetime(2026, 1, 15, 3, 20, tzinfo=UTC)   # 10:20 WIB


def flood_view(alert_id: int = 1, version: int = 1, **changes: Any) -> AlertView:
    """Manggarai at Siaga 2, firing; ``changes`` replaces any field (status, cap_status ...)."""
    view = AlertView(
        id=alert_id, version=version, rule_id="flood-siaga", scope="gauge:manggarai",
        city="jakarta", hazard="flood", audience="public", status="firing",
        msg_type="Alert" if version == 1 else "Update", cap_status="Actual",
        level="Siaga 2 (Siaga)", grade=3, severity="Severe", urgency="Expected",
        certainty="Observed", sent_at=FIRED_AT + timedelta(minutes=10 * (version - 1)),
        fired_at=FIRED_AT,
        texts={
            "id-ID": AlertText(
                headline="Pintu Air Manggarai Siaga 2",
                description="Tinggi muka air 850 cm dan naik 12 cm per jam.",
                instruction="Siapkan evakuasi; pantau informasi BPBD."),
            "en-US": AlertText(
                headline="Manggarai floodgate at Siaga 2",
                description="Water level 850 cm, rising 12 cm per hour.",
                instruction="Prepare to evacuate; follow BPBD updates."),
        },
        area=Area(description="Ciliwung downstream of Manggarai",
                  districts=("Tebet", "Matraman"), circle_km=(-6.2086, 106.8497, 3.0)),
        details={"water_level_cm": 850.0, "rise_cm_per_h": 12.0},
    )
    return replace(view, **changes)


def resolved(view: AlertView, version: int) -> AlertView:
    return replace(view, version=version, status="resolved", msg_type="Cancel",
                   level="Normal", grade=0, severity="Minor",
                   sent_at=view.sent_at + timedelta(hours=2),
                   resolved_at=view.sent_at + timedelta(hours=2), resolved_by="engine")


def insert_alert(engine: Engine, view: AlertView) -> None:
    """The ``alerts`` row the outbox rows point at (foreign key)."""
    now = datetime.now(UTC)
    with Session(engine) as session, session.begin():
        session.add(Alert(
            id=view.id, rule_id=view.rule_id, scope=view.scope, active_key=None,
            city=view.city, hazard=view.hazard, audience=view.audience,
            cap_status=view.cap_status, status=view.status, grade=view.grade, level=view.level,
            severity=view.severity, version=view.version, view=alert_view_to_json(view),
            pending_since=view.sent_at, fired_at=view.fired_at, last_observed_at=now,
            updated_at=now))


def queue(engine: Engine, view: AlertView, channel: str, *,
          created_at: datetime | None = None) -> str:
    """One outbox row for (view, channel), as the engine writes it; returns its key."""
    key = idempotency_key(view, channel)
    now = created_at or datetime.now(UTC)
    with Session(engine) as session, session.begin():
        session.add(OutboxItem(
            alert_id=view.id, version=view.version, channel=channel, idempotency_key=key,
            payload=alert_view_to_json(view), status="queued", attempts=0,
            next_attempt_at=now, created_at=now))
    return key


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int                 # what the receiver answered
    at_s: float                 # time.monotonic() when it arrived


@dataclass
class WebhookReceiver:
    """An HTTP server on 127.0.0.1 that records every POST. ``script`` holds the answers to give
    next, as (status, headers); when it is empty the answer is 200. ``delivered`` counts each
    Idempotency-Key once, as a receiver that honours the key would."""

    port: int = field(default_factory=free_port)
    requests: list[Received] = field(default_factory=list)
    script: deque[tuple[int, dict[str, str]]] = field(default_factory=deque)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def delivered(self) -> dict[str, dict[str, Any]]:
        """Accepted (2xx) bodies by Idempotency-Key, repeats dropped."""
        with self._lock:
            return {request.headers["Idempotency-Key"]: json.loads(request.body)
                    for request in self.requests if 200 <= request.status < 300}

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    status, headers = (receiver.script.popleft() if receiver.script
                                       else (200, {}))
                    receiver.requests.append(Received(dict(self.headers.items()), body, status,
                                                      time.monotonic()))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


class Clock:
    """A ``now`` callable a test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class SmtpSink:
    """Message-IDs as aiosmtpd accepted them, in order."""

    keys: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        for line in bytes(envelope.content).split(b"\r\n"):
            if line.lower().startswith(b"message-id:"):
                with self.lock:
                    self.keys.append(line.split(b":", 1)[1].strip().decode())
                break
        return "250 OK"

    def arrived(self) -> list[str]:
        with self.lock:
            return list(self.keys)


def webhook_subscribers(engine: Engine, url: str, count: int) -> list[int]:
    now = datetime.now(UTC)
    with Session(engine) as session, session.begin():
        rows = [Subscriber(channel="webhook", address=f"{url}/{index}",
                           address_hash=hashlib.sha256(f"{url}/{index}".encode()).hexdigest(),
                           status="active", language="id-ID", districts=["Tebet"],
                           kelurahan=[], hazards=[], min_severity="Minor", created_by="public",
                           created_at=now, updated_at=now)
                for index in range(count)]
        session.add_all(rows)
        session.flush()
        return [row.id for row in rows]


def subscribers(engine: Engine, channel: str, count: int,
                webhook_url: str = "http://127.0.0.1:9/hook") -> None:
    """``count`` active subscribers of ``channel`` in Tebet (warga<n>@example.org, or
    ``<webhook_url>/<n>``), every hazard, from Minor."""
    now = datetime.now(UTC)
    with Session(engine) as session, session.begin():
        for number in range(count):
            address = (f"warga{number}@example.org" if channel == "email"
                       else f"{webhook_url}/{number}")
            session.add(Subscriber(
                channel=channel, address=address,
                address_hash=hashlib.sha256(address.encode()).hexdigest(), status="active",
                language="id-ID", districts=["Tebet"], kelurahan=[], hazards=[],
                min_severity="Minor", created_by="public", created_at=now, updated_at=now))
