"""``/api/v1/stream``: server-sent events with the newest readings, for the live page.

Each stream sends a ``snapshot`` (latest readings, ISPU, Siaga), then, at each refresh of the
shared snapshot (api/services/snapshot.py; at least every ``sse_interval_s`` it looks), the
readings that are newer than what it sent (``readings``) and, when air or water changed,
fresh indicators (``indicators``). A stream ends after ``sse_max_duration_s`` with an ``end``
event; browsers' EventSource reconnects by itself (``retry``). At most ``sse_max_clients``
streams run at once (more: 503), and at most ``sse_max_clients_per_client`` for one client (its
API key, else its address; more: 429), so one client cannot take every slot.
Every stream reads the same snapshot, and each reading is encoded once per refresh and role
(public: redacted), not once per stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from api.deps import ApiState, FiltersDep, StateDep
from api.params import KindName
from api.problems import TYPE_BASE, ProblemError, problem_responses
from api.schemas import LatestReading
from api.services.live import client_identity
from api.services.readings import Filters
from api.services.snapshot import PREREDACTED_KEY, RoleClass, View, encode, role_class
from kota.influx import InfluxDataError, InfluxUnavailable
from kota.kinds import KINDS

router = APIRouter(tags=["live"])
log = logging.getLogger("kota.api.live")

RETRY_MS = 3000


def _event(name: str, data: bytes) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + data + b"\n\n"


def _matches(reading: LatestReading, kinds: frozenset[str], filters: Filters) -> bool:
    return (reading.kind in kinds and filters.city in (None, reading.city)
            and filters.district in (None, reading.district)
            and filters.device in (None, reading.device))


async def _indicators(state: ApiState, view: View, filters: Filters, role: RoleClass) -> bytes:
    """The `indicators` payload: the snapshot's, encoded once per refresh, for the page's
    unfiltered stream; a filtered stream's from the (shared) filtered queries."""
    if filters == Filters():
        return state.snapshot.indicators_bytes(view, role)
    payload = await state.live.indicators_payload(filters)
    return encode(payload, role, state.settings.auth.public_position_decimals).body


async def _events(request: Request, state: ApiState, kinds: list[str], filters: Filters,
                  role: RoleClass) -> AsyncIterator[bytes]:
    settings = state.settings
    snapshot = state.snapshot
    chosen = frozenset(kinds)
    deadline = time.monotonic() + settings.sse_max_duration_s
    # What this stream sent: the serial and index of the last view (shared with every stream).
    sent_serial, sent_index = -1, dict[tuple[str, str], int]()
    first = True
    view: View | None = None
    yield f"retry: {RETRY_MS}\n\n".encode()
    while time.monotonic() < deadline:
        try:
            view = await snapshot.view()
            candidates = (view.readings if first
                          else view.newer_than(sent_serial, sent_index))
            fresh = [r for r in candidates if _matches(r, chosen, filters)]
            sent_serial, sent_index = view.serial, view.index
            # Each reading is encoded once per refresh and role, shared by every stream.
            readings = b"[" + b",".join(snapshot.reading_bytes(view, r, role)
                                        for r in fresh) + b"]"
            if first:
                indicators = await _indicators(state, view, filters, role)
                extra = orjson.dumps({"server_time_ms": int(time.time() * 1000),
                                      "as_of_ms": int(view.taken * 1000),
                                      "stale_after_s": settings.page.stale_after_s})
                yield _event("snapshot", b'{"readings":' + readings + b"," + extra[1:-1]
                             + b"," + indicators[1:])
                first = False
            elif fresh:
                yield _event("readings", b'{"readings":' + readings + b"}")
                if any(r.kind in ("air", "water") for r in fresh):
                    yield _event("indicators", await _indicators(state, view, filters, role))
            else:
                yield b": nothing new\n\n"
        except (InfluxUnavailable, InfluxDataError) as exc:
            log.warning("stream: %s", exc)
            yield _event("problem", orjson.dumps({
                "type": TYPE_BASE + "database-unavailable", "title": "Service Unavailable",
                "status": 503, "detail": "the time-series database is unavailable"}))
        remaining = deadline - time.monotonic()
        if remaining <= 0 or await request.is_disconnected():
            break
        # Woken by the next refresh of the shared snapshot, or after sse_interval_s.
        if view is None:
            await asyncio.sleep(min(settings.sse_interval_s, remaining))
        else:
            await snapshot.changed(view, min(settings.sse_interval_s, remaining))
    yield _event("end", orjson.dumps({"reason": "max_duration", "reconnect_ms": RETRY_MS}))


@router.get("/stream", summary="Live readings (server-sent events)",
            response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "Events: snapshot, readings, indicators, problem, "
                                            "end"},
                       **problem_responses(404, 422, 429, 503)})
async def stream(request: Request, state: StateDep, filters: FiltersDep,
                 kind: Annotated[list[KindName] | None,
                                 Query(max_length=6, description="Only these kinds (repeat the "
                                                                 "parameter); default: all")]
                 = None) -> StreamingResponse:
    """Server-sent events: `snapshot` first (readings, ispu, siaga), then `readings` with each
    device's newer points and `indicators` when air or water changed; `end` after
    `sse_max_duration_s` (the browser reconnects)."""
    settings = state.settings
    if state.open_streams >= settings.sse_max_clients:
        raise ProblemError(503, "too many live streams are open; retry later",
                           type_=TYPE_BASE + "too-many-streams", headers={"Retry-After": "10"})
    client = client_identity(request)
    # Counted here, in the same step as the check (simultaneous connects cannot both pass it),
    # and released when the response ends, even if the client left before the body started.
    if not state.live.clients.acquire(client, settings.sse_max_clients_per_client):
        raise ProblemError(429, f"this client has {settings.sse_max_clients_per_client} live "
                                "streams open already (api.sse_max_clients_per_client); close "
                                "one or retry later",
                           type_=TYPE_BASE + "too-many-streams-per-client",
                           title="Too many streams for this client",
                           headers={"Retry-After": "10"})
    kinds: list[str] = list(dict.fromkeys(kind)) if kind else list(KINDS)
    role = role_class(request)
    # Events are encoded for the caller's role here: api/auth.py passes them through.
    request.scope[PREREDACTED_KEY] = True
    state.open_streams += 1
    return _CountedStream(_events(request, state, kinds, filters, role), state, client,
                          media_type="text/event-stream",
                          headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


class _CountedStream(StreamingResponse):
    """A streaming response that gives its place in ``open_streams`` back when it ends."""

    def __init__(self, content: AsyncIterator[bytes], state: ApiState, client: str,
                 **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self._state = state
        self._client = client
        self._released = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            if not self._released:
                self._released = True
                self._state.open_streams -= 1
                self._state.live.clients.release(self._client)
