"""One set of queries per interval for all live streams with the same filters.

Every open stream asks for the latest readings each ``sse_interval_s``; without sharing, N
browsers would cost N times the queries. Answers are kept for a little less than the interval,
and a lock per key makes concurrent streams wait for one query instead of each sending its own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from starlette.requests import Request

from api.schemas import LatestReading
from api.services.indicators import IndicatorsService
from api.services.readings import Filters, ReadingsService

__all__ = ["ClientSlots", "LiveCache", "client_identity"]

T = TypeVar("T")
MAX_KEYS = 256  # distinct filter combinations kept; beyond that the oldest are dropped


def client_identity(request: Request) -> str:
    """Who is asking, for per-client limits: the API key (``request.state.api_key_id``, or the
    ``key_id`` of the principal api/auth.py puts on the scope) when the request carries one,
    else the remote address
    (behind a trusted proxy, uvicorn's ``proxy_headers`` make it the forwarded one)."""
    key_id = getattr(request.state, "api_key_id", None)
    if key_id is None:  # api/auth.py's AuthMiddleware puts its Principal on the scope
        key_id = getattr(request.scope.get("kota.principal"), "key_id", None)
    if key_id is not None:
        return f"key:{key_id}"
    return f"addr:{request.client.host if request.client else 'unknown'}"


class ClientSlots:
    """Open streams per client, so one client cannot hold every slot of ``sse_max_clients``."""

    def __init__(self) -> None:
        self._open: dict[str, int] = {}

    def acquire(self, client: str, cap: int) -> bool:
        """Take a slot for ``client`` unless it holds ``cap`` already (check and count in one
        step: the event loop runs one at a time)."""
        held = self._open.get(client, 0)
        if held >= cap:
            return False
        self._open[client] = held + 1
        return True

    def release(self, client: str) -> None:
        held = self._open.get(client, 0) - 1
        if held > 0:
            self._open[client] = held
        else:
            self._open.pop(client, None)

    def held(self, client: str) -> int:
        return self._open.get(client, 0)


class LiveCache:
    def __init__(self, readings: ReadingsService, indicators: IndicatorsService,
                 max_age_s: float) -> None:
        self.clients = ClientSlots()  # streams open per client (api/routes/live.py)
        self.readings = readings
        self.indicators = indicators
        self.max_age_s = max_age_s
        self._entries: dict[tuple[Any, ...], tuple[float, Any]] = {}
        self._locks: dict[tuple[Any, ...], asyncio.Lock] = {}
        self.queries = 0  # how many times the cache went to the services (for tests)

    async def _get(self, key: tuple[Any, ...], fetch: Callable[[], Awaitable[T]]) -> T:
        if len(self._locks) > 2 * MAX_KEYS:
            # A failed fetch leaves a lock without an entry; filters come from query strings,
            # so drop the idle ones instead of keeping one per filter ever asked for.
            for idle in [k for k, lock in self._locks.items()
                         if k not in self._entries and not lock.locked()]:
                del self._locks[idle]
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            entry = self._entries.get(key)
            if entry is not None and time.monotonic() - entry[0] < self.max_age_s:
                value: T = entry[1]
                return value
            self.queries += 1
            value = await fetch()
            if len(self._entries) >= MAX_KEYS:
                oldest = min(self._entries, key=lambda k: self._entries[k][0])
                self._entries.pop(oldest, None)
                self._locks.pop(oldest, None)
            self._entries[key] = (time.monotonic(), value)
            return value

    async def latest(self, kinds: Sequence[str], filters: Filters) -> list[LatestReading]:
        return await self._get(("latest", tuple(kinds), filters),
                               lambda: self.readings.latest(kinds, filters))

    async def indicators_payload(self, filters: Filters) -> dict[str, Any]:
        async def fetch() -> dict[str, Any]:
            ispu = await self.indicators.ispu("device", filters)
            siaga = await self.indicators.siaga(filters)
            incidents = await self.indicators.incidents(filters)
            return {"ispu": ispu.model_dump(mode="json"), "siaga": siaga.model_dump(mode="json"),
                    "incidents": incidents.model_dump(mode="json")}

        return await self._get(("indicators", filters), fetch)
