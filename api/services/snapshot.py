"""The public reads on a flood day: one shared snapshot, refreshed in the background, answered
as pre-encoded bytes (issue 14).

Every ``snapshot_interval_s`` one refresh reads the latest readings of every device, the ISPU
(per station and per district), the Siaga per gauge and the open incidents; however many
clients ask, that is one set of queries per interval. Answers are encoded once per view and
role class (``public``: redacted as api/auth.py would redact it; ``operator``: as read), with
an ETag, so a request costs a dictionary look-up, or a 304. Filters that the snapshot can
answer exactly (city, district, device, kind) are applied in memory.

The refresher runs while someone asks (a request or an open live stream within
``IDLE_STOP_S``); an idle API makes no queries. A view older than twice the interval is never
served: the caller waits for a fresh one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from api.auth import PREREDACTED_KEY, ROLE_RANK, SCOPE_KEY, redact
from api.schemas import (
    DevicePublic,
    IspuPublic,
    IspuResponse,
    LatestReading,
    LatestResponse,
    SiagaPublic,
    SiagaResponse,
)
from api.services.indicators import IndicatorsService
from api.services.readings import Filters, ReadingsService
from kota.kinds import KINDS
from kota.registry import Device, Registry

__all__ = ["PREREDACTED_KEY", "Encoded", "FastPath", "RoleClass", "Snapshot", "View", "encode",
           "respond", "role_class"]

log = logging.getLogger("kota.api.snapshot")

RoleClass = Literal["public", "operator"]
IDLE_STOP_S = 60.0  # no request or stream for this long: the refresher stops
MAX_ENCODED = 512   # encoded answers kept per view (filters come from query strings)
ALL = Filters()
Answer = TypeVar("Answer", IspuResponse, SiagaResponse)


@dataclass(frozen=True)
class Encoded:
    body: bytes
    etag: str  # quoted, as sent in the ETag header


def encode(document: Any, role: RoleClass, decimals: int) -> Encoded:
    """``document`` (JSON-ready) as bytes for ``role``, with its ETag."""
    if role == "public":
        document = redact(document, decimals)
    body = orjson.dumps(document)
    return Encoded(body, '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"')


@dataclass
class View:
    """What one refresh read, with the ages of its values at ``taken``."""

    taken: float   # epoch seconds
    monotonic: float
    readings: list[LatestReading]
    ispu_device: IspuResponse
    ispu_district: IspuResponse
    siaga: SiagaResponse
    indicators: dict[str, Any]  # the live stream's `indicators` payload (ispu, siaga, incidents)
    serial: int = 0
    # (kind, device) → time_ms of its reading here; and the readings newer than in the view
    # before (serial - 1): what a stream that sent that view sends next, found once for all.
    index: dict[tuple[str, str], int] = field(default_factory=dict)
    changed: list[LatestReading] = field(default_factory=list)
    encoded: dict[tuple[Any, ...], Encoded] = field(default_factory=dict)
    reading_bytes: dict[tuple[str, str, RoleClass], bytes] = field(default_factory=dict)

    @property
    def as_of(self) -> datetime:
        return datetime.fromtimestamp(self.taken, tz=UTC)

    def newer_than(self, serial: int, index: dict[tuple[str, str], int]
                   ) -> list[LatestReading]:
        """The readings newer than those of the view ``serial`` (whose ``index`` is given)."""
        if serial == self.serial - 1:
            return self.changed
        if serial == self.serial:
            return []
        return [r for r in self.readings if index.get((r.kind, r.device), -1) < r.time_ms]


def _matches(item: LatestReading | SiagaPublic | IspuPublic, filters: Filters) -> bool:
    return ((filters.city is None or item.city == filters.city)
            and (filters.district is None or item.district == filters.district)
            and (filters.device is None or item.device == filters.device))


class Snapshot:
    def __init__(self, readings: ReadingsService, indicators: IndicatorsService,
                 interval_s: float, stale_after_s: float, decimals: Callable[[], int]) -> None:
        self.readings = readings
        self.indicators = indicators
        self.interval_s = interval_s
        self.stale_after_s = stale_after_s
        self.decimals = decimals
        self.refreshes = 0  # how many times the services were asked (for tests)
        self._view: View | None = None
        self._error: BaseException | None = None
        self._last_asked = 0.0
        self._task: asyncio.Task[None] | None = None
        self._first: asyncio.Future[None] | None = None
        self._changed = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._devices: list[Device] = []
        self._devices_encoded: dict[tuple[Any, ...], Encoded] = {}

    # -- reading the view --------------------------------------------------------------------
    async def view(self) -> View:
        """The current view; waits for a refresh when there is none younger than twice the
        interval (first request, after idling, or the database away: then its error)."""
        self._last_asked = time.monotonic()
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (tests' clients): start afresh there
            self._loop, self._task, self._first = loop, None, None
            self._changed = asyncio.Event()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._refresher(), name="kota-api-snapshot")
        view = self._view
        if view is not None and time.monotonic() - view.monotonic <= 2 * self.interval_s:
            return view
        await self._next_refresh()
        if self._view is None or time.monotonic() - self._view.monotonic > 2 * self.interval_s:
            raise self._error or RuntimeError("no snapshot")
        return self._view

    async def changed(self, seen: View, timeout_s: float) -> None:
        """Wait until a view newer than ``seen`` exists, at most ``timeout_s``."""
        if self._view is not seen:
            return
        event = self._changed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout_s)

    async def _next_refresh(self) -> None:
        if self._first is None or self._first.done():
            self._first = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._first)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _refresher(self) -> None:
        while True:
            started = time.monotonic()
            try:
                self._view = await self._read()
                self._error = None
            except Exception as exc:  # kept and raised to the callers that wait
                log.warning("snapshot refresh failed: %s", exc)
                self._error = exc
            waiting = self._first
            if waiting is not None and not waiting.done():
                waiting.set_result(None)
            self._changed.set()
            self._changed = asyncio.Event()
            if time.monotonic() - self._last_asked > IDLE_STOP_S:
                return
            await asyncio.sleep(max(0.0, self.interval_s - (time.monotonic() - started)))

    async def _read(self) -> View:
        self.refreshes += 1
        readings, ispu_device, ispu_district, siaga, incidents = await asyncio.gather(
            self.readings.latest(tuple(KINDS), ALL), self.indicators.ispu("device", ALL),
            self.indicators.ispu("district", ALL), self.indicators.siaga(ALL),
            self.indicators.incidents(ALL))
        taken = time.time()
        # A heartbeat reports as the device itself (kota-agent: agent.id is the device id) or
        # as its "<id>-status" twin (kota simulate); its Last Will says online: false.
        heartbeats = {r.device.removesuffix("-status"): r for r in readings
                      if r.kind == "status"}
        offline = {device for device, r in heartbeats.items() if r.fields.get("online") is False}
        aged = []
        for reading in readings:
            age_s = round(max(0.0, taken - reading.time_ms / 1000), 1)
            aged.append(reading.model_copy(update={
                "age_s": age_s, "stale": age_s > self.stale_after_s,
                "offline": (reading.device in offline) if reading.device in heartbeats
                else None}))
        ispu_device, ispu_district, siaga = (
            _aged(ispu_device, taken), _aged(ispu_district, taken), _aged(siaga, taken))
        previous = self._view
        index = {(r.kind, r.device): r.time_ms for r in aged}
        before = previous.index if previous is not None else {}
        return View(taken=taken, monotonic=time.monotonic(), readings=aged,
                    serial=previous.serial + 1 if previous is not None else 1, index=index,
                    changed=[r for r in aged if before.get((r.kind, r.device), -1) < r.time_ms],
                    ispu_device=ispu_device, ispu_district=ispu_district, siaga=siaga,
                    indicators={"ispu": ispu_device.model_dump(mode="json"),
                                "siaga": siaga.model_dump(mode="json"),
                                "incidents": incidents.model_dump(mode="json")})

    # -- answers -----------------------------------------------------------------------------
    def _cached(self, view: View, key: tuple[Any, ...], role: RoleClass,
                build: Callable[[], Any]) -> Encoded:
        found = view.encoded.get((*key, role))
        if found is None:
            found = encode(build(), role, self.decimals())
            if len(view.encoded) < MAX_ENCODED:
                view.encoded[(*key, role)] = found
        return found

    async def latest(self, kinds: Sequence[str] | None, filters: Filters,
                     role: RoleClass) -> Encoded:
        view = await self.view()
        chosen = tuple(kinds) if kinds else None

        def build() -> Any:
            items = [r for r in view.readings
                     if (chosen is None or r.kind in chosen) and _matches(r, filters)]
            return LatestResponse(count=len(items), readings=items).model_dump(mode="json")

        return self._cached(view, ("latest", chosen, filters), role, build)

    async def ispu(self, scope: Literal["device", "district"], filters: Filters,
                   role: RoleClass) -> Encoded:
        view = await self.view()
        answer = view.ispu_device if scope == "device" else view.ispu_district

        def build() -> Any:
            items = [i for i in answer.items if _matches(i, filters)]
            return answer.model_copy(update={"items": items}).model_dump(mode="json")

        return self._cached(view, ("ispu", scope, filters), role, build)

    async def siaga(self, filters: Filters, role: RoleClass) -> Encoded:
        view = await self.view()

        def build() -> Any:
            items = [i for i in view.siaga.items if _matches(i, filters)]
            sources = {i.source for i in items}
            source = ("none" if not sources else sources.pop() if len(sources) == 1
                      else "mixed")
            return view.siaga.model_copy(update={"items": items, "source": source}
                                         ).model_dump(mode="json")

        return self._cached(view, ("siaga", filters), role, build)

    def devices(self, registry: Registry, kind: str | None, city: str | None,
                district: str | None, role: RoleClass) -> Encoded:
        """The registry's devices, encoded once per registry content (a reload replaces the
        device objects, so identity tells a change) and filter."""
        current = list(registry)
        if len(current) != len(self._devices) or any(
                a is not b for a, b in zip(current, self._devices, strict=True)):
            self._devices, self._devices_encoded = current, {}
        key = (kind, city, district, role)
        found = self._devices_encoded.get(key)
        if found is None:
            found = encode([DevicePublic.of(d).model_dump(mode="json") for d in current
                            if kind in (None, d.kind) and city in (None, d.city)
                            and district in (None, d.district)], role, self.decimals())
            if len(self._devices_encoded) < MAX_ENCODED:
                self._devices_encoded[key] = found
        return found

    def reading_bytes(self, view: View, reading: LatestReading, role: RoleClass) -> bytes:
        """One reading as JSON for the live stream, encoded once per view and role."""
        key = (reading.kind, reading.device, role)
        found = view.reading_bytes.get(key)
        if found is None:
            document = reading.model_dump(mode="json")
            found = orjson.dumps(redact(document, self.decimals()) if role == "public"
                                 else document)
            view.reading_bytes[key] = found
        return found

    def indicators_bytes(self, view: View, role: RoleClass) -> bytes:
        return self._cached(view, ("indicators",), role, lambda: view.indicators).body


def _aged(answer: Answer, taken: float) -> Answer:
    items = [item.model_copy(update={"age_s": round(max(0.0, taken - item.time.timestamp()), 1)})
             for item in answer.items]
    return answer.model_copy(update={"items": items})


# -- HTTP ------------------------------------------------------------------------------------
def role_class(request: Request) -> RoleClass:
    principal = request.scope.get(SCOPE_KEY)
    role = getattr(principal, "role", "public")
    return "operator" if ROLE_RANK.get(role, 0) >= ROLE_RANK["operator"] else "public"


def respond(request: Request, encoded: Encoded, role: RoleClass, max_age_s: float,
            stale_while_revalidate_s: float) -> Response:
    """``encoded`` as the answer, or 304 when the client has it (If-None-Match). Public answers
    may be kept by shared caches (a reverse proxy, a CDN); operators' only by their browser."""
    # Already redacted for this role: api/auth.py's middleware lets it through untouched.
    request.scope[PREREDACTED_KEY] = True
    cache = (f"public, max-age={max(1, round(max_age_s))}, "
             f"stale-while-revalidate={round(stale_while_revalidate_s)}" if role == "public"
             else f"private, max-age={max(1, round(max_age_s))}")
    headers = {"ETag": encoded.etag, "Cache-Control": cache, "Vary": "Authorization, X-API-Key"}
    asked = request.headers.get("if-none-match")
    if asked is not None and _matches_etag(asked, encoded.etag):
        return Response(status_code=304, headers=headers)
    return Response(encoded.body, media_type="application/json", headers=headers)


class FastPath:
    """Anonymous ``GET``s of the public reads, with no or the simplest query (``kind=``,
    ``scope=``), answered from the snapshot before routing: no key to check, nothing to
    validate, so FastAPI's routing and dependency solving (most of a request's cost, measured
    with kota bench api) are skipped. Anything else, and any error, goes to the routes, which
    answer the same bytes (tests/api/test_api_snapshot.py compares them)."""

    def __init__(self, app: ASGIApp, snapshot: Snapshot, registry: Registry,
                 max_age_s: float, stale_while_revalidate_s: float) -> None:
        self.app = app
        self.snapshot = snapshot
        self.registry = registry
        cache = (f"public, max-age={max(1, round(max_age_s))}, "
                 f"stale-while-revalidate={round(stale_while_revalidate_s)}")
        self._headers = [(b"cache-control", cache.encode()),
                         (b"vary", b"Authorization, X-API-Key")]
        self._kinds = {f"kind={kind}".encode(): kind for kind in KINDS}

    async def _encoded(self, path: str, query: bytes) -> Encoded | None:
        kind = self._kinds.get(query) if query else None
        if query and kind is None and path != "/api/v1/indicators/ispu":
            return None
        if path == "/api/v1/readings/latest":
            return await self.snapshot.latest([kind] if kind else None, ALL, "public")
        if path == "/api/v1/devices":
            return self.snapshot.devices(self.registry, kind, None, None, "public")
        if path == "/api/v1/indicators/siaga" and not query:
            return await self.snapshot.siaga(ALL, "public")
        if path == "/api/v1/indicators/ispu" and query in (b"", b"scope=device",
                                                           b"scope=district"):
            scope: Literal["device", "district"] = ("district" if query == b"scope=district"
                                                    else "device")
            return await self.snapshot.ispu(scope, ALL, "public")
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root):]
        asked: bytes | None = None
        for name, value in scope["headers"]:
            if name in (b"authorization", b"x-api-key"):
                await self.app(scope, receive, send)
                return
            if name == b"if-none-match":
                asked = value
        try:
            encoded = (await self._encoded(path, scope["query_string"])
                       if path in FAST_PATHS else None)
        except Exception:  # the route answers it, as a problem
            encoded = None
        if encoded is None:
            await self.app(scope, receive, send)
            return
        headers = [(b"etag", encoded.etag.encode()), *self._headers]
        if asked is not None and _matches_etag(asked.decode("latin-1"), encoded.etag):
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(encoded.body)).encode()), *headers]})
        await send({"type": "http.response.body", "body": encoded.body})


FAST_PATHS = frozenset({"/api/v1/readings/latest", "/api/v1/devices",
                        "/api/v1/indicators/siaga", "/api/v1/indicators/ispu"})


def _matches_etag(asked: str, etag: str) -> bool:
    return asked.strip() == "*" or etag in (tag.strip().removeprefix("W/")
                                            for tag in asked.split(","))
