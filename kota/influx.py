"""InfluxDB over its v1 HTTP API (``/write``, ``/query``), which InfluxDB 1.x serves natively
and 2.x and 3.x serve for compatibility. See docs/influxdb.md for the settings of each.
"""

from __future__ import annotations

import gzip
from collections.abc import AsyncGenerator
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

__all__ = [
    "InfluxClient",
    "InfluxDataError",
    "InfluxSettings",
    "InfluxTimeout",
    "InfluxUnavailable",
    "quote_ident",
    "quote_literal",
    "redact_url",
]


class InfluxSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(default="http://127.0.0.1:8086",
                     description="Base URL of InfluxDB's HTTP API")
    version: Literal[1, 2, 3] = Field(
        default=1, description="1: native; 2: v1 compatibility with a DBRP mapping; 3: v1 /write")
    database: str = Field(default="kota", pattern=r"^[A-Za-z0-9_.-]{1,64}$",
                          description="1.x database, 2.x mapped database name, 3.x database")
    retention_policy: str = Field(default="",
                                  description="1.x/2.x retention policy; empty: default")
    username: str | None = Field(default=None, description="1.x user (basic auth)")
    password: SecretStr | None = Field(default=None, description="1.x password")
    token: SecretStr | None = Field(default=None, description="2.x / 3.x API token")
    create_database: bool = Field(default=True,
                                  description="1.x only: CREATE DATABASE when it is missing")
    timeout_s: float = Field(default=10.0, gt=0, description="Per request")
    gzip: bool = Field(default=False, description="Compress write bodies")

    @field_validator("version", mode="before")
    @classmethod
    def _version_from_text(cls, value: object) -> object:
        # Environment variables arrive as text: "2" means 2.
        return int(value) if isinstance(value, str) and value.strip().isdigit() else value


class InfluxUnavailable(Exception):
    """InfluxDB did not store the batch but may later: retry (network, 5xx, auth, 404)."""


class InfluxTimeout(InfluxUnavailable):
    """InfluxDB took the query but did not answer within ``timeout_s`` (it was reachable).

    A subclass of InfluxUnavailable, so callers that retry on unavailability keep doing so;
    the API tells it apart (504, "did not answer within N s") from an unreachable database."""

    def __init__(self, message: str, timeout_s: float) -> None:
        super().__init__(message)
        self.timeout_s = timeout_s


class InfluxDataError(Exception):
    """InfluxDB refused (some of) the batch's content (HTTP 400); retrying will not help."""


def redact_url(url: str) -> str:
    """``url`` fit to print: a password (``user:secret@``) and query-string values replaced by
    ``***``. For logs, errors and health answers; never print a configured URL without it."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, host = netloc.rsplit("@", 1)
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}:***@{host}" if ":" in userinfo else f"***@{host}"
        query = "&".join(f"{pair.split('=', 1)[0]}=***" if "=" in pair else pair
                         for pair in parts.query.split("&")) if parts.query else ""
        return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    except ValueError:
        return "<unparseable URL>"


def quote_ident(name: str) -> str:
    """An InfluxQL identifier in double quotes, escaped so no input can leave the quotes."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def quote_literal(text: str) -> str:
    """An InfluxQL string literal in single quotes."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


class InfluxClient:
    def __init__(self, settings: InfluxSettings) -> None:
        self.settings = settings
        headers = {"User-Agent": "kota-cerdas"}
        auth: httpx.BasicAuth | None = None
        if settings.token is not None:
            headers["Authorization"] = f"Token {settings.token.get_secret_value()}"
        elif settings.username is not None:
            auth = httpx.BasicAuth(settings.username,
                                   settings.password.get_secret_value()
                                   if settings.password else "")
        self._http = httpx.AsyncClient(base_url=settings.url.rstrip("/"), headers=headers,
                                       auth=auth, timeout=settings.timeout_s)
        self._write_params = {"db": settings.database, "precision": "ms"}
        if settings.retention_policy:
            self._write_params["rp"] = settings.retention_policy

    async def close(self) -> None:
        await self._http.aclose()

    async def ping(self) -> bool:
        try:
            response = await self._http.get("/ping")
        except httpx.HTTPError:
            return False
        return response.status_code in (200, 204)

    async def write(self, body: bytes) -> None:
        """Write newline-separated lines with millisecond timestamps. Returns once InfluxDB
        stored them all; raises InfluxDataError (400, a partial write included) or
        InfluxUnavailable."""
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self.settings.gzip:
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        try:
            response = await self._http.post("/write", params=self._write_params,
                                             content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise InfluxUnavailable(f"InfluxDB at {redact_url(self.settings.url)} unreachable: "
                                    f"{exc or type(exc).__name__}") from None
        status = response.status_code
        if status in (200, 204):
            return
        text = response.text[:500]
        if status == 400:
            if "partial write" in text:
                raise InfluxDataError(f"partial write: {text}")
            raise InfluxDataError(text)
        if status == 404 and self.settings.version == 1 and self.settings.create_database:
            try:
                await self.create_database()
            except InfluxDataError as exc:  # e.g. a write-only user may not create databases
                raise InfluxUnavailable(f"database {self.settings.database!r} is missing and "
                                        f"could not be created: {exc}") from None
            raise InfluxUnavailable(f"database {self.settings.database!r} was missing; created it")
        if status in (401, 403):
            raise InfluxUnavailable(f"InfluxDB refused credentials (HTTP {status}): check "
                                    "influx.token or influx.username/password")
        raise InfluxUnavailable(f"InfluxDB answered HTTP {status}: {text}")

    async def create_database(self) -> None:
        await self.query(f"CREATE DATABASE {quote_ident(self.settings.database)}", method="POST")

    def _timeout(self, timeout_s: float | None) -> httpx.Timeout | None:
        if timeout_s is None:
            return None
        # Only the wait for the answer is shortened: connecting keeps influx.timeout_s.
        return httpx.Timeout(self.settings.timeout_s, read=timeout_s)

    def _request_failed(self, exc: httpx.HTTPError, timeout_s: float | None) -> InfluxUnavailable:
        if isinstance(exc, httpx.ReadTimeout):
            waited = timeout_s if timeout_s is not None else self.settings.timeout_s
            return InfluxTimeout(f"InfluxDB did not answer within {waited:g} s", waited)
        return InfluxUnavailable(f"InfluxDB unreachable: {exc or type(exc).__name__}")

    async def query(self, influxql: str, *, method: Literal["GET", "POST"] = "GET",
                    epoch: str = "ms", timeout_s: float | None = None) -> list[dict[str, Any]]:
        """Run InfluxQL; return the series of the first statement (raise on errors).

        ``timeout_s`` bounds the wait for the answer (default ``influx.timeout_s``); when it
        passes, InfluxTimeout (a kind of InfluxUnavailable)."""
        params = {"db": self.settings.database, "q": influxql, "epoch": epoch}
        timeout = self._timeout(timeout_s)
        try:
            if method == "POST":
                response = await self._http.post("/query", params=params, timeout=timeout
                                                 or httpx.USE_CLIENT_DEFAULT)
            else:
                response = await self._http.get("/query", params=params, timeout=timeout
                                                or httpx.USE_CLIENT_DEFAULT)
        except httpx.HTTPError as exc:
            raise self._request_failed(exc, timeout_s) from None
        if response.status_code >= 500:
            raise InfluxUnavailable(f"query failed: HTTP {response.status_code}")
        try:
            data = response.json()
        except ValueError:  # e.g. a proxy's HTML error page
            raise InfluxUnavailable(f"query answered HTTP {response.status_code} without "
                                    "JSON; is influx.url an InfluxDB?") from None
        if "error" in data:
            raise InfluxDataError(data["error"])
        results = data.get("results") or [{}]
        first = results[0]
        if "error" in first:
            raise InfluxDataError(first["error"])
        series: list[dict[str, Any]] = first.get("series", [])
        return series

    async def query_chunks(self, influxql: str, *, chunk_size: int = 5000, epoch: str = "ms",
                           timeout_s: float | None = None
                           ) -> AsyncGenerator[list[dict[str, Any]], None]:
        """Run one InfluxQL SELECT with ``chunked=true`` (1.x): yield its series a chunk at a
        time (at most ``chunk_size`` rows each; a series may continue in the next chunk, with
        the same tags). Memory stays bounded by one chunk, whatever the answer's size.

        Raises like :meth:`query`; ``timeout_s`` bounds each wait for the next chunk."""
        params = {"db": self.settings.database, "q": influxql, "epoch": epoch,
                  "chunked": "true", "chunk_size": str(chunk_size)}
        timeout = self._timeout(timeout_s) or httpx.USE_CLIENT_DEFAULT
        try:
            async with self._http.stream("GET", "/query", params=params,
                                         timeout=timeout) as response:
                if response.status_code >= 500:
                    raise InfluxUnavailable(f"query failed: HTTP {response.status_code}")
                async for line in response.aiter_lines():
                    if not line.strip():
                        continue
                    try:
                        data = orjson.loads(line)
                    except orjson.JSONDecodeError:
                        raise InfluxUnavailable(f"query answered HTTP {response.status_code} "
                                                "without JSON; is influx.url an InfluxDB?"
                                                ) from None
                    if "error" in data:
                        raise InfluxDataError(data["error"])
                    first = (data.get("results") or [{}])[0]
                    if "error" in first:
                        raise InfluxDataError(first["error"])
                    series: list[dict[str, Any]] = first.get("series", [])
                    if series:
                        yield series
        except httpx.HTTPError as exc:
            raise self._request_failed(exc, timeout_s) from None
