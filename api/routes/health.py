"""``/healthz`` (the process answers) and ``/readyz`` (it can serve data: InfluxDB answers)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel

from api.deps import StateDep
from api.problems import PROBLEM_RESPONSES, TYPE_BASE, ProblemError
from kota.influx import redact_url

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready"]
    influx: Literal["up"]
    database: str
    devices: int


@router.get("/healthz", response_model=Health, summary="Liveness")
async def healthz() -> Health:
    """The process runs and answers. Checks nothing else (use /readyz for that)."""
    return Health(status="ok")


@router.get("/readyz", response_model=Ready, summary="Readiness",
            responses={503: PROBLEM_RESPONSES[503]})
async def readyz(state: StateDep) -> Ready:
    """InfluxDB answers its ping: the API can serve data. 503 problem otherwise."""
    if not await state.influx.ping():
        raise ProblemError(503, f"InfluxDB at {redact_url(state.settings.influx.url)} does not "
                                "answer",
                           type_=TYPE_BASE + "database-unavailable", title="Not ready",
                           headers={"Retry-After": "5"})
    return Ready(status="ready", influx="up", database=state.settings.influx.database,
                 devices=len(state.registry))
