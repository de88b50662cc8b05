"""``/api/v1/stream``: server-sent events with the newest readings, for the live page.

Each stream sends a ``snapshot`` (latest readings, ISPU, Siaga), then every ``sse_interval_s``
the readings that are newer than what it sent (``readings``) and, when air or water changed,
fresh indicators (``indicators``). A stream ends after ``sse_max_duration_s`` with an ``end``
event; browsers' EventSource reconnects by itself (``retry``). At most ``sse_max_clients``
streams run at once (more: 503), and at most ``sse_max_clients_per_client`` for one client (its
API key, else its address; more: 429), so one client cannot take every slot.
Streams with the same filters share their queries (api/services/live.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from api.deps import ApiState, FiltersDep, StateDep
from api.params import KindName
from api.problems import TYPE_BASE, ProblemError, problem_responses
from api.services.live import client_identity
from api.services.readings import Filters
from kota.influx import InfluxDataError, InfluxUnavailable
from kota.kinds import KINDS

router = APIRouter(tags=["live"])
log = logging.getLogger("kota.api.live")

RETRY_MS = 3000


def _event(name: str, data: Any) -> str:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False, default=str)}\n\n"


async def _events(request: Request, state: ApiState, kinds: list[str],
                  filters: Filters) -> AsyncIterator[str]:
    settings = state.settings
    deadline = time.monotonic() + settings.sse_max_duration_s
    seen: dict[tuple[str, str], int] = {}
    first = True
    yield f"retry: {RETRY_MS}\n\n"
    while time.monotonic() < deadline:
        try:
            readings = await state.live.latest(kinds, filters)
            fresh = [r for r in readings if seen.get((r.kind, r.device), -1) < r.time_ms]
            for reading in fresh:
                seen[(reading.kind, reading.device)] = reading.time_ms
            payload = [r.model_dump(mode="json") for r in fresh]
            if first:
                snapshot = {"readings": payload, **await state.live.indicators_payload(filters),
                            "server_time_ms": int(time.time() * 1000)}
                yield _event("snapshot", snapshot)
                first = False
            elif fresh:
                yield _event("readings", {"readings": payload})
                if any(r.kind in ("air", "water") for r in fresh):
                    yield _event("indicators", await state.live.indicators_payload(filters))
            else:
                yield ": nothing new\n\n"
        except (InfluxUnavailable, InfluxDataError) as exc:
            log.warning("stream: %s", exc)
            yield _event("problem", {"type": TYPE_BASE + "database-unavailable",
                                     "title": "Service Unavailable", "status": 503,
                                     "detail": "the time-series database is unavailable"})
        remaining = deadline - time.monotonic()
        if remaining <= 0 or await request.is_disconnected():
            break
        await asyncio.sleep(min(settings.sse_interval_s, remaining))
    yield _event("end", {"reason": "max_duration", "reconnect_ms": RETRY_MS})


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
    state.open_streams += 1
    return _CountedStream(_events(request, state, kinds, filters), state, client,
                          media_type="text/event-stream",
                          headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


class _CountedStream(StreamingResponse):
    """A streaming response that gives its place in ``open_streams`` back when it ends."""

    def __init__(self, content: AsyncIterator[str], state: ApiState, client: str,
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
