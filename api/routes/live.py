"""``/api/v1/stream``: server-sent events with the newest readings, for the live page.

Each stream sends a ``snapshot`` (latest readings, ISPU, Siaga), then every ``sse_interval_s``
the readings that are newer than what it sent (``readings``) and, when air or water changed,
fresh indicators (``indicators``). A stream ends after ``sse_max_duration_s`` with an ``end``
event; browsers' EventSource reconnects by itself (``retry``). At most ``sse_max_clients``
streams run at once. Streams with the same filters share their queries (api/services/live.py).
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

from api.deps import ApiState, FiltersDep, StateDep
from api.params import KindName
from api.problems import TYPE_BASE, ProblemError, problem_responses
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
    state.stream_started()  # counted here, so the finally below always balances it
    try:
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
    finally:
        state.open_streams -= 1


@router.get("/stream", summary="Live readings (server-sent events)",
            response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "Events: snapshot, readings, indicators, problem, "
                                            "end"},
                       **problem_responses(404, 422, 503)})
async def stream(request: Request, state: StateDep, filters: FiltersDep,
                 kind: Annotated[list[KindName] | None,
                                 Query(max_length=6, description="Only these kinds (repeat the "
                                                                 "parameter); default: all")]
                 = None) -> StreamingResponse:
    """Server-sent events: `snapshot` first (readings, ispu, siaga), then `readings` with each
    device's newer points and `indicators` when air or water changed; `end` after
    `sse_max_duration_s` (the browser reconnects)."""
    if not state.admit_stream(state.settings.sse_max_clients, time.monotonic()):
        raise ProblemError(503, "too many live streams are open; retry later",
                           type_=TYPE_BASE + "too-many-streams", headers={"Retry-After": "10"})
    kinds: list[str] = list(dict.fromkeys(kind)) if kind else list(KINDS)
    return StreamingResponse(_events(request, state, kinds, filters),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
