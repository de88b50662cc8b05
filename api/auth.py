"""Who is asking, and what they may see (docs/security.md).

* :class:`AuthMiddleware` authenticates: a key in ``Authorization: Bearer <key>`` or
  ``X-API-Key`` is looked up in the store (hashed, constant-time compare); a key that is unknown,
  expired or revoked is a 401 problem on every path, even a public one (the caller believes it
  is signed in). No key: the ``public`` role. The principal goes on the ASGI scope.
* :func:`require` authorises: a dependency each router is included with (api/main.py); a role
  too low is 401 without a key, 403 with one, both naming the role needed.
* The same middleware redacts every JSON and event-stream body for callers below ``operator``:
  safety devices (panic buttons, cameras) lose their free text and incident ids, and their
  positions are rounded. It works on what leaves the API, so a new route cannot forget it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import PROBLEM_MEDIA_TYPE, TYPE_BASE, Problem, ProblemError, ResponsesDoc
from store.keys import KeyProblem, KeyStore

__all__ = ["ADMIN", "AUTH_RESPONSES", "OPERATOR", "PREREDACTED_KEY", "PUBLIC",
           "ROLE_DEPENDENCIES", "ROLE_RANK", "SCOPE_KEY", "STATIC_ROLES",
           "AuthMiddleware", "Principal", "Role", "declared_role", "needed_scope",
           "principal_of", "redact", "require", "scope_allows", "sensitive_kind_guard"]

log = logging.getLogger("kota.api.auth")

Role = Literal["public", "operator", "admin"]
ROLE_RANK: dict[str, int] = {"public": 0, "operator": 1, "admin": 2}
SCOPE_KEY = "kota.principal"
# Set on the scope by a route whose answer is already redacted for the caller's role
# (api/services/snapshot.py encodes the public view once per refresh): passed through as is.
PREREDACTED_KEY = "kota.preredacted"
SENSITIVE_KINDS = frozenset({"safety"})
SENSITIVE_FIELDS = ("message", "incident_id")
# Routes that are not FastAPI routes (no dependencies), with the role they serve.
STATIC_ROLES: dict[tuple[str, str], Role] = {("GET", "/openapi.json"): "public"}

_problem_doc = {"model": Problem, "content": {
    PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
AUTH_RESPONSES: ResponsesDoc = {
    401: {**_problem_doc, "description": "The API key is missing (the route needs a role), "
                                         "unknown, expired or revoked"},
    403: {**_problem_doc, "description": "The API key's role is too low for this route"},
}


@dataclass(frozen=True)
class Principal:
    role: Role
    key_id: int | None = None
    key_name: str | None = None
    key_prefix: str | None = None
    scopes: tuple[str, ...] = ()   # empty: everything the role may do

    @property
    def label(self) -> str:
        return f"key {self.key_id} ({self.key_name})" if self.key_id else "anonymous"


ANONYMOUS = Principal(role="public")


def principal_of(request: Request) -> Principal:
    found = request.scope.get(SCOPE_KEY)
    return found if isinstance(found, Principal) else ANONYMOUS


def _presented_key(scope: Scope) -> str | None:
    headers = {name.lower(): value for name, value in scope.get("headers", ())}
    authorization = headers.get(b"authorization", b"").decode("latin-1").strip()
    if authorization:
        scheme, _, value = authorization.partition(" ")
        return value.strip() if scheme.lower() == "bearer" else authorization
    key = headers.get(b"x-api-key", b"").decode("latin-1").strip()
    return key or None


def _problem_bytes(scope: Scope, status: int, detail: str, type_: str, title: str) -> bytes:
    problem = Problem(type=TYPE_BASE + type_, title=title, status=status, detail=detail,
                      instance=scope.get("path"))
    return json.dumps(problem.model_dump(exclude_none=True)).encode()


class AuthMiddleware:
    """Authentication and redaction; ``keys`` returns the key store (None: no keys exist)."""

    def __init__(self, app: ASGIApp, keys: Callable[[], KeyStore | None],
                 position_decimals: Callable[[], int]) -> None:
        self.app = app
        self.keys = keys
        self.position_decimals = position_decimals

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        key = _presented_key(scope)
        principal = ANONYMOUS
        if key is not None:
            store = self.keys()
            try:
                if store is None:
                    raise KeyProblem("unknown API key")
                info = await asyncio.to_thread(store.authenticate, key)
            except KeyProblem as exc:
                log.info("refused an API key on %s: %s", scope.get("path"), exc.reason)
                await _send_problem(scope, send, 401, f"{exc.reason}; send a valid key as "
                                    "'Authorization: Bearer kota_...' or none at all for "
                                    "public data", "invalid-key", "Invalid API key")
                return
            principal = Principal(role=info.role, key_id=info.id, key_name=info.name,
                                  key_prefix=info.prefix, scopes=info.scopes)
        scope[SCOPE_KEY] = principal
        if ROLE_RANK[principal.role] >= ROLE_RANK["operator"]:
            await self.app(scope, receive, send)
            return
        if str(scope.get("path", "")).endswith(STREAMED_UNREDACTED):
            # History of a sensitive kind is refused below operator (sensitive_kind_guard), so a
            # public history answer carries nothing to redact: it streams through unbuffered.
            await self.app(scope, receive, send)
            return
        await self.app(scope, receive, _Redactor(send, self.position_decimals(), scope).send)


async def _send_problem(scope: Scope, send: Send, status: int, detail: str, type_: str,
                        title: str) -> None:
    body = _problem_bytes(scope, status, detail, type_, title)
    headers = [(b"content-type", PROBLEM_MEDIA_TYPE.encode()),
               (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="kota-cerdas"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# Answers that may be large and hold no sensitive field for a public caller (see the guard).
STREAMED_UNREDACTED = ("/history",)


def redact(value: Any, decimals: int) -> Any:
    """``value`` (decoded JSON) with safety devices' text, incident ids and exact positions
    removed, wherever an object of a sensitive kind appears."""
    if isinstance(value, list):
        return [redact(item, decimals) for item in value]
    if not isinstance(value, dict):
        return value
    out = {name: redact(item, decimals) for name, item in value.items()}
    kind = out.get("kind")
    if isinstance(kind, str) and kind in SENSITIVE_KINDS:
        fields = out.get("fields")
        if isinstance(fields, dict):
            out["fields"] = {n: v for n, v in fields.items() if n not in SENSITIVE_FIELDS}
        for name in SENSITIVE_FIELDS:
            out.pop(name, None)
        for name in ("lat", "lon"):
            if isinstance(out.get(name), int | float) and not isinstance(out[name], bool):
                out[name] = round(float(out[name]), decimals)
    return out


def _redact_events(chunk: bytes, decimals: int) -> bytes:
    """Each ``data:`` line of server-sent events, redacted."""
    lines = chunk.split(b"\n")
    for index, line in enumerate(lines):
        if line.startswith(b"data: ") and b'"safety"' in line:
            data = json.loads(line[6:])
            lines[index] = b"data: " + json.dumps(redact(data, decimals),
                                                   ensure_ascii=False).encode()
    return b"\n".join(lines)


class _Redactor:
    """Wraps ``send``: JSON bodies are collected and redacted, event streams per chunk."""

    def __init__(self, send: Send, decimals: int, scope: Scope | None = None) -> None:
        self._send = send
        self._decimals = decimals
        self._scope = scope or {}
        self._mode: Literal["pass", "json", "events"] = "pass"
        self._start: Message | None = None
        self._body = bytearray()

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            if self._scope.get(PREREDACTED_KEY):
                self._mode = "pass"
                await self._send(message)
                return
            found = {n.lower(): v for n, v in message.get("headers", ())}
            media = found.get(b"content-type", b"").split(b";")[0].strip()
            if media in (b"application/json", PROBLEM_MEDIA_TYPE.encode()):
                self._mode, self._start = "json", message
                return
            if media == b"text/event-stream":
                self._mode = "events"
            await self._send(message)
            return
        if message["type"] != "http.response.body" or self._mode == "pass":
            await self._send(message)
            return
        if self._mode == "events":
            body = message.get("body", b"")
            await self._send({**message, "body": _redact_events(body, self._decimals)})
            return
        self._body += message.get("body", b"")
        if message.get("more_body", False):
            return
        body = bytes(self._body)
        if b'"safety"' in body:
            body = json.dumps(redact(json.loads(body), self._decimals), ensure_ascii=False,
                              separators=(",", ":")).encode()
        assert self._start is not None
        headers = [(n, v) for n, v in self._start.get("headers", ())
                   if n.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await self._send({**self._start, "headers": headers})
        await self._send({"type": "http.response.body", "body": body})


_ROLE_OF: dict[Callable[..., Any], Role] = {}


def require(role: Role) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency: the caller's principal, when its role is at least ``role``. Async, so
    FastAPI runs it on the event loop: a sync dependency costs a thread hand-off per request
    (measured with kota bench api: a third of a public read's time)."""

    async def dependency(request: Request) -> Principal:
        return check_role(request, role)

    dependency.__name__ = f"require_{role}"
    _ROLE_OF[dependency] = role
    return dependency


def check_role(request: Request, role: Role) -> Principal:
    """The caller's principal, when its role is at least ``role``; else 401 or 403."""
    principal = principal_of(request)
    if ROLE_RANK[principal.role] >= ROLE_RANK[role]:
        needed = needed_scope(request.method, request.url.path)
        if principal.scopes and needed and not scope_allows(principal.scopes, needed):
            raise ProblemError(403, f"{principal.label} is limited to the scopes "
                                    f"{' '.join(principal.scopes)}; this needs {needed}",
                               type_=TYPE_BASE + "scope-missing", title="Scope missing")
        return principal
    if principal.key_id is None:
        raise ProblemError(401, f"this needs an API key of role {role} (or higher): send "
                                "'Authorization: Bearer kota_...'",
                           type_=TYPE_BASE + "key-required", title="API key required",
                           headers={"WWW-Authenticate": 'Bearer realm="kota-cerdas"'})
    raise ProblemError(403, f"this needs role {role} (or higher); {principal.label} has "
                            f"role {principal.role}",
                       type_=TYPE_BASE + "role-too-low", title="Role too low")


def needed_scope(method: str, path: str) -> str | None:
    """The scope a request needs (``alerts`` or ``alerts:read``); None outside /api/v1/ (the
    page, health, docs: a key's scopes do not limit them)."""
    rest = path.removeprefix("/api/v1/")
    if rest == path or not rest:
        return None
    area = rest.split("/", 1)[0]
    return f"{area}:read" if method in ("GET", "HEAD") else area


def scope_allows(scopes: tuple[str, ...], needed: str) -> bool:
    """``alerts`` allows every method on /api/v1/alerts; ``alerts:read`` only reading."""
    area = needed.split(":", 1)[0]
    return needed in scopes or area in scopes


def declared_role(dependencies: list[Any]) -> Role | None:
    """The highest role a route's dependencies require (None: it declares none)."""
    roles: list[Role] = [_ROLE_OF[d.call] for d in dependencies
                         if getattr(d, "call", None) in _ROLE_OF]
    if not roles:
        return None
    highest: Role = max(roles, key=_rank)
    return highest


def _rank(role: Role) -> int:
    return ROLE_RANK[role]


PUBLIC = require("public")
OPERATOR = require("operator")
ADMIN = require("admin")
ROLE_DEPENDENCIES: dict[Role, Callable[[Request], Awaitable[Principal]]] = {
    "public": PUBLIC, "operator": OPERATOR, "admin": ADMIN}


async def sensitive_kind_guard(request: Request) -> None:
    """History of a sensitive kind (who pressed which panic button when) is for operators."""
    kinds = request.query_params.getlist("kind")
    if request.url.path.endswith("/history") and SENSITIVE_KINDS.intersection(kinds):
        check_role(request, "operator")
