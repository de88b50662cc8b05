"""Security headers on every response, as a small pure ASGI middleware (no BaseHTTPMiddleware:
it would buffer and slow every response, streams included).

The live page and the vendored Leaflet, uPlot and Swagger UI load everything from the API
itself, so the policy allows ``'self'`` only: scripts from files (no inline script, no eval),
images also from ``data:`` and the configured tile server (``api.page.tile_url``). Inline
``style`` attributes are allowed: the page colours its legend and chips with them. ``/docs``
(Swagger UI) starts with one inline script FastAPI writes, so there scripts may be inline too.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["SecurityHeaders", "content_security_policy"]


def content_security_policy(tile_url: str | None = None, *, inline_scripts: bool = False) -> str:
    images = ["'self'", "data:"]
    if tile_url:
        parts = urlsplit(tile_url.replace("{s}", "a"))
        if parts.scheme in ("http", "https") and parts.hostname:
            host = parts.netloc.rsplit("@", 1)[-1]
            # {s}.tile... subdomains: a wildcard for that level only
            if "{s}" in tile_url.split("//", 1)[-1].split("/", 1)[0]:
                host = "*." + host.split(".", 1)[1]
            images.append(f"{parts.scheme}://{host}")
    scripts = "'self' 'unsafe-inline'" if inline_scripts else "'self'"
    return "; ".join([
        "default-src 'self'", f"script-src {scripts}", "style-src 'self' 'unsafe-inline'",
        f"img-src {' '.join(images)}", "connect-src 'self'", "font-src 'self'",
        "object-src 'none'", "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'",
    ])


class SecurityHeaders:
    """Adds CSP, nosniff, no-referrer and DENY framing to every HTTP response."""

    def __init__(self, app: ASGIApp, tile_url: str | None = None) -> None:
        self.app = app
        common = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                  (b"x-frame-options", b"DENY"), (b"cross-origin-opener-policy", b"same-origin")]
        self._headers = [*common, (b"content-security-policy",
                                   content_security_policy(tile_url).encode())]
        self._docs_headers = [*common, (b"content-security-policy", content_security_policy(
            tile_url, inline_scripts=True).encode())]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self._docs_headers if scope["path"].endswith("/docs") else self._headers

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []),
                                      *(h for h in extra if h[0] not in names)]
            await send(message)

        await self.app(scope, receive, send_with_headers)
