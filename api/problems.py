"""Errors as problem details (RFC 9457, ``application/problem+json``), never a bare error dict.

Every error leaves the API as ``{"type", "title", "status", "detail", "instance"}``; validation
errors add ``errors`` (which parameter, what was wrong). InfluxDB being away is a 503 with a
``Retry-After``; a query it did not answer in time a 504 that says so (retrying the same request
will likely time out again); anything unexpected is a 500 whose detail does not leak internals.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from kota.influx import InfluxDataError, InfluxTimeout, InfluxUnavailable

__all__ = [
    "PROBLEM_RESPONSES",
    "Problem",
    "ProblemError",
    "install_problem_handlers",
    "problem_responses",
]

log = logging.getLogger("kota.api")

PROBLEM_MEDIA_TYPE = "application/problem+json"
# Problem types are identifiers (RFC 9457 §3.1.1), listed in docs/api.md; not dereferenceable.
TYPE_BASE = "urn:kota-cerdas:problem:"


class InvalidParam(BaseModel):
    loc: list[str | int] = Field(description="Where: ['query', 'device'], ['path', 'device_id']")
    msg: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = Field(default="about:blank", description="URI identifying the problem type")
    title: str
    status: int
    detail: str | None = None
    instance: str | None = Field(default=None, description="The request path")
    errors: list[InvalidParam] | None = Field(default=None,
                                              description="Validation errors, one per parameter")


class ProblemError(Exception):
    """Raise from a route or service to answer with a problem document."""

    def __init__(self, status: int, detail: str, *, type_: str = "about:blank",
                 title: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.type = type_
        self.title = title or HTTPStatus(status).phrase
        self.headers = headers


def _content(problem: Problem) -> dict[str, Any]:
    return problem.model_dump(exclude_none=True)


ResponsesDoc = dict[int | str, dict[str, Any]]

PROBLEM_RESPONSES: ResponsesDoc = {
    status: {"model": Problem, "description": HTTPStatus(status).phrase,
             "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
    for status in (404, 413, 422, 429, 503, 504)
}


def problem_responses(*statuses: int) -> ResponsesDoc:
    """The OpenAPI ``responses`` entry for these problem statuses."""
    return {status: PROBLEM_RESPONSES[status] for status in statuses}


def problem_response(request: Request, status: int, detail: str | None, *,
                     type_: str = "about:blank", title: str | None = None,
                     errors: list[InvalidParam] | None = None,
                     headers: dict[str, str] | None = None) -> JSONResponse:
    problem = Problem(type=type_, title=title or HTTPStatus(status).phrase, status=status,
                      detail=detail, instance=request.url.path, errors=errors)
    return JSONResponse(_content(problem), status_code=status, headers=headers,
                        media_type=PROBLEM_MEDIA_TYPE)


def _clean_loc(loc: Any) -> list[str | int]:
    return [part if isinstance(part, int) else str(part) for part in loc]


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [InvalidParam(loc=_clean_loc(error.get("loc", ())), msg=str(error.get("msg", "")),
                           type=str(error.get("type", "")))
              for error in exc.errors()]
    names = ", ".join(".".join(str(p) for p in e.loc[1:]) or str(e.loc[0]) for e in errors)
    return problem_response(request, 422, f"invalid request parameter(s): {names}",
                            type_=TYPE_BASE + "invalid-parameters",
                            title="Invalid request parameters", errors=errors)


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return problem_response(request, exc.status_code, str(exc.detail),
                            headers=dict(exc.headers) if exc.headers else None)


async def _problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    return problem_response(request, exc.status, exc.detail, type_=exc.type, title=exc.title,
                            headers=exc.headers)


async def _influx_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("InfluxDB unavailable: %s", exc)
    return problem_response(request, 503, "the time-series database is unavailable; retry later",
                            type_=TYPE_BASE + "database-unavailable",
                            headers={"Retry-After": "5"})


async def _influx_timeout(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InfluxTimeout)
    log.warning("InfluxDB timeout on %s: %s", request.url.path, exc)
    return problem_response(
        request, 504, f"the time-series database did not answer within {exc.timeout_s:g} s "
                      "(api.limits.query_timeout_s); ask for less (shorter range, coarser "
                      "interval, fewer devices)",
        type_=TYPE_BASE + "database-timeout", title="Database timeout")


async def _influx_data(request: Request, exc: Exception) -> JSONResponse:
    # Our statements are built from validated input; a refusal is our bug, not the caller's.
    log.error("InfluxDB refused a query: %s", exc)
    return problem_response(request, 502, "the time-series database refused the query",
                            type_=TYPE_BASE + "database-refused")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s", request.url.path, exc_info=exc)
    return problem_response(request, 500, "unexpected error; it has been logged")


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(ProblemError, _problem)
    app.add_exception_handler(InfluxUnavailable, _influx_unavailable)
    app.add_exception_handler(InfluxTimeout, _influx_timeout)  # the subclass: its own handler
    app.add_exception_handler(InfluxDataError, _influx_data)
    app.add_exception_handler(Exception, _unexpected)
