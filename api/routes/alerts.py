"""``/api/v1/alerts``: the alert engine's alerts, their history and CAP messages (public: only
alerts for the public with CAP status Actual), operators' actions and silences (operator), the
outbox's failed deliveries (operator; retrying them: admin). docs/api.md, section Alerts.

Three routers, one per role (api/main.py includes the operator and admin ones first, so
``/alerts/silences`` is never read as an alert id).
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from alerts.cap import ATOM_MEDIA_TYPE, CAP_MEDIA_TYPE
from alerts.model import (
    ACTIVE_STATUSES,
    AlertStatus,
    AlertView,
    Audience,
    CapStatus,
    Certainty,
    Hazard,
    MsgType,
    Severity,
    Urgency,
)
from api.auth import ROLE_RANK
from api.deps import PrincipalDep
from api.params import MAX_TIME, MIN_TIME
from api.problems import TYPE_BASE, ProblemError, problem_responses
from api.services.alerts import AlertsService, StateError, hide_actor
from store.alert_models import AlertEvent, OutboxItem, Silence
from store.models import utc

__all__ = ["admin_router", "operator_router", "router"]

router = APIRouter(prefix="/alerts", tags=["alerts"])
operator_router = APIRouter(prefix="/alerts", tags=["alerts"])
admin_router = APIRouter(prefix="/alerts", tags=["alerts"])

# The feed and CAP messages change when an alert does: a short cache spares the database from
# many readers polling at once, and a new alert still shows within half a minute.
CACHE_CONTROL = "public, max-age=30"
RULE_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"   # alerts.rules.RuleSettings.id
DB_ID_MAX = 2**31 - 1                          # an INTEGER column on PostgreSQL
MAX_SILENCE = timedelta(days=90)

AlertIdPath = Annotated[int, Path(ge=1, le=DB_ID_MAX, description="Alert id")]


def get_alerts(request: Request) -> AlertsService:
    service: AlertsService | None = getattr(request.app.state, "alerts", None)
    if service is None:
        raise ProblemError(503, "the alert state is not open", type_=TYPE_BASE + "no-alerts")
    return service


AlertsDep = Annotated[AlertsService, Depends(get_alerts)]


def _is_operator(principal: Any) -> bool:
    return bool(ROLE_RANK[principal.role] >= ROLE_RANK["operator"])


def _unknown(what: str) -> ProblemError:
    return ProblemError(404, f"no {what}", type_=TYPE_BASE + "unknown-alert",
                        title="Unknown alert")


# -- shapes ------------------------------------------------------------------------------------
class AlertTextOut(BaseModel):
    headline: str
    description: str
    instruction: str


class AreaOut(BaseModel):
    description: str
    districts: list[str] = Field(description="Kecamatan")
    circle_km: list[float] | None = Field(description="[lat, lon, radius in km]")
    polygon: list[list[float]] = Field(description="[[lat, lon], …]")


class AlertOut(BaseModel):
    """One alert at its latest version (alerts.model.AlertView)."""

    id: int
    version: int = Field(description="0 while pending; grows with every notified update")
    identifier: str = Field(description="CAP identifier of this version")
    cap_url: str | None = Field(description="This version's CAP message (null while pending)")
    rule_id: str
    scope: str = Field(description="The gauge, kecamatan or device the alert is about")
    city: str
    hazard: Hazard
    audience: Audience
    status: AlertStatus
    msg_type: MsgType
    cap_status: CapStatus
    level: str = Field(description="The words BPBD/KLHK use, e.g. 'Siaga 2 (Siaga)'")
    grade: int = Field(description="The rule's own scale: 0 clear, higher is worse")
    severity: Severity
    urgency: Urgency
    certainty: Certainty
    sent_at: datetime = Field(description="When this version was decided")
    fired_at: datetime | None
    texts: dict[str, AlertTextOut] = Field(description="By language: id-ID, en-US")
    area: AreaOut
    details: dict[str, Any] = Field(description="The figures behind the text")
    acknowledged_by: str | None = Field(description="A key's label; 'operator' for the public")
    acknowledged_at: datetime | None
    resolved_by: str | None = Field(description="'engine', a key's label; 'operator' for the "
                                                "public")
    resolved_at: datetime | None

    @classmethod
    def of(cls, view: AlertView, request: Request) -> AlertOut:
        return cls(
            id=view.id, version=view.version, identifier=view.identifier,
            cap_url=_cap_url(request, view) if view.version > 0 else None,
            rule_id=view.rule_id, scope=view.scope, city=view.city, hazard=view.hazard,
            audience=view.audience, status=view.status, msg_type=view.msg_type,
            cap_status=view.cap_status, level=view.level, grade=view.grade,
            severity=view.severity, urgency=view.urgency, certainty=view.certainty,
            sent_at=view.sent_at, fired_at=view.fired_at,
            texts={language: AlertTextOut(headline=t.headline, description=t.description,
                                          instruction=t.instruction)
                   for language, t in view.texts.items()},
            area=AreaOut(description=view.area.description, districts=list(view.area.districts),
                         circle_km=list(view.area.circle_km) if view.area.circle_km else None,
                         polygon=[list(point) for point in view.area.polygon]),
            details=view.details, acknowledged_by=view.acknowledged_by,
            acknowledged_at=view.acknowledged_at, resolved_by=view.resolved_by,
            resolved_at=view.resolved_at)


def _cap_url(request: Request, view: AlertView) -> str:
    return str(request.url_for("alert_cap", identifier=view.identifier))


class AlertList(BaseModel):
    alerts: list[AlertOut]
    next_cursor: int | None = Field(description="Pass as cursor for the next (older) page; "
                                                "null: no more")


class EventOut(BaseModel):
    at: datetime
    kind: str = Field(description="pending, fired, escalated, deescalated, repeated, "
                                  "acknowledged, resolved, silenced, withdrawn")
    actor: str = Field(description="'engine' or a key's label ('operator' for the public)")
    version: int
    grade: int
    level: str
    note: str | None = Field(description="The operator's note (not shown to the public)")

    @classmethod
    def of(cls, event: AlertEvent, public: bool) -> EventOut:
        return cls(at=utc(event.at) or event.at, kind=event.kind,
                   actor=(hide_actor(event.actor) or "") if public else event.actor,
                   version=event.version, grade=event.grade, level=event.level,
                   note=None if public else event.note)


class DeliveryOut(BaseModel):
    """One notification in the outbox: one version to one channel."""

    id: int
    alert_id: int
    version: int
    channel: str
    status: Literal["queued", "sent", "failed"]
    attempts: int
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime
    sent_at: datetime | None

    @classmethod
    def of(cls, item: OutboxItem) -> DeliveryOut:
        return cls(id=item.id, alert_id=item.alert_id, version=item.version,
                   channel=item.channel, status=item.status,  # type: ignore[arg-type]
                   attempts=item.attempts, last_error=item.last_error,
                   created_at=utc(item.created_at) or item.created_at,
                   next_attempt_at=utc(item.next_attempt_at) or item.next_attempt_at,
                   sent_at=utc(item.sent_at))


class VersionOut(BaseModel):
    version: int
    identifier: str
    msg_type: MsgType
    sent_at: datetime
    cap_url: str


class AlertDetail(BaseModel):
    alert: AlertOut
    events: list[EventOut] = Field(description="The history, oldest first")
    versions: list[VersionOut] = Field(description="Every version queued for delivery, oldest "
                                                   "first")
    deliveries: list[DeliveryOut] | None = Field(description="Operators only (null for the "
                                                             "public)")


class ActionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(default=None, max_length=2000,
                             description="What the operator knows or did (kept in the history)")


class SilenceCreate(BaseModel):
    """Hold back notifications of matching alerts (a sensor being serviced). Needs a rule or a
    scope (silencing everything is not allowed), and ``ends_at`` or ``duration_s``."""

    model_config = ConfigDict(extra="forbid")

    rule_id: str | None = Field(default=None, pattern=RULE_PATTERN, description="Only this rule")
    scope: str | None = Field(default=None, min_length=1, max_length=200,
                              description="Only this gauge, kecamatan or device, e.g. "
                                          "'gauge:manggarai'")
    starts_at: datetime | None = Field(default=None, description="Default: now (no zone: UTC)")
    ends_at: datetime | None = Field(default=None, description="No zone: UTC")
    duration_s: float | None = Field(default=None, gt=0,
                                     le=MAX_SILENCE.total_seconds(),
                                     description="Instead of ends_at")
    reason: str = Field(min_length=1, max_length=1000,
                        description="Who services what (kept with the silence)")


class SilenceOut(BaseModel):
    id: int
    rule_id: str | None
    scope: str | None
    starts_at: datetime
    ends_at: datetime
    reason: str
    created_by: str
    created_at: datetime
    expired_early_at: datetime | None
    active: bool = Field(description="Holding notifications back now")

    @classmethod
    def of(cls, silence: Silence, now: datetime) -> SilenceOut:
        starts, ends = utc(silence.starts_at), utc(silence.ends_at)
        assert starts is not None and ends is not None
        expired = utc(silence.expired_early_at)
        return cls(id=silence.id, rule_id=silence.rule_id, scope=silence.scope,
                   starts_at=starts, ends_at=ends, reason=silence.reason,
                   created_by=silence.created_by,
                   created_at=utc(silence.created_at) or silence.created_at,
                   expired_early_at=expired, active=expired is None and starts <= now < ends)


class Requeued(BaseModel):
    requeued: int = Field(description="Failed deliveries put back in the queue")


def _aware(moment: datetime | None, name: str) -> datetime | None:
    """``moment`` in UTC (no zone: UTC), within the years the API accepts."""
    if moment is None:
        return None
    moment = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    if not MIN_TIME <= moment <= MAX_TIME:
        raise ProblemError(422, f"{name} must lie between {MIN_TIME:%Y-%m-%d} and "
                                f"{MAX_TIME:%Y-%m-%d}", type_=TYPE_BASE + "invalid-parameters",
                           title="Invalid request parameters")
    return moment


# -- public (and everyone above) ---------------------------------------------------------------
_XML_RESPONSES: dict[str, dict[str, Any]] = {
    media: {"schema": {"type": "string"}} for media in (ATOM_MEDIA_TYPE, CAP_MEDIA_TYPE)}


@router.get("/cap.atom", response_class=Response, summary="Atom feed of current public alerts",
            responses={200: {"description": "Atom 1.0; each entry links to its CAP message",
                             "content": {ATOM_MEDIA_TYPE: _XML_RESPONSES[ATOM_MEDIA_TYPE]}},
                       304: {"description": "Not modified (If-None-Match)"}})
async def alerts_feed(request: Request, alerts: AlertsDep) -> Response:
    """Active public alerts with CAP status Actual, and all-clears of the last hour; with an
    ``ETag`` and ``Cache-Control: max-age=30``."""
    base = str(request.url_for("alert_cap", identifier="x")).rsplit("/", 1)[0]
    body = await asyncio.to_thread(alerts.feed, base_url=base,
                                   feed_url=str(request.url_for("alerts_feed")))
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL}
    asked = {tag.strip().removeprefix("W/")
             for tag in request.headers.get("if-none-match", "").split(",")}
    if etag in asked:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=ATOM_MEDIA_TYPE, headers=headers)


@router.get("/cap/{identifier}", response_class=Response, name="alert_cap",
            summary="The CAP 1.2 message of one alert version",
            responses={200: {"description": "CAP 1.2 XML (OASIS)",
                             "content": {CAP_MEDIA_TYPE: _XML_RESPONSES[CAP_MEDIA_TYPE]}},
                       **problem_responses(404, 422)})
async def alert_cap(request: Request, alerts: AlertsDep, principal: PrincipalDep,
                    identifier: Annotated[str, Path(
                        pattern=r"^kota-[a-z0-9-]+-alert-[0-9]{1,18}-v[0-9]{1,9}$",
                        description="kota-<city>-alert-<id>-v<version>")]) -> Response:
    """Its ``references`` list every version queued before it. Public: only alerts for the
    public with CAP status Actual."""
    body = await asyncio.to_thread(alerts.cap, identifier, public=not _is_operator(principal))
    if body is None:
        raise _unknown(f"CAP message {identifier!r}")
    return Response(body, media_type=CAP_MEDIA_TYPE, headers={"Cache-Control": CACHE_CONTROL})


@router.get("", response_model=AlertList, summary="Alerts, newest first (active: worst first)",
            responses=problem_responses(422, 503))
async def list_alerts(
        request: Request, alerts: AlertsDep, principal: PrincipalDep,
        status: Annotated[list[AlertStatus] | None, Query(description="Only these (repeat)")]
        = None,
        active: Annotated[bool | None, Query(description="true: pending, firing, acknowledged, "
                                                         "worst first; false: resolved")] = None,
        hazard: Annotated[Hazard | None, Query(description="Only this hazard")] = None,
        rule: Annotated[str | None, Query(pattern=RULE_PATTERN,
                                          description="Only this rule")] = None,
        since: Annotated[datetime | None, Query(description="Changed at or after (no zone: "
                                                            "UTC)")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        cursor: Annotated[int | None, Query(ge=1, le=DB_ID_MAX,
                                            description="next_cursor of the previous page")]
        = None) -> AlertList:
    """Public callers see only alerts for the public with CAP status Actual that have fired;
    operators and admins see every alert (drills, operators' and field teams' alerts,
    pending ones)."""
    statuses: list[str] | None = list(status) if status else None
    if active is not None:
        wanted = set(ACTIVE_STATUSES) if active else {"resolved"}
        statuses = [s for s in (statuses or sorted(wanted)) if s in wanted] or ["none"]
    if active and cursor is not None:
        raise ProblemError(422, "active=true lists the active alerts worst first in one page "
                                "(up to limit); it takes no cursor",
                           type_=TYPE_BASE + "invalid-parameters",
                           title="Invalid request parameters")
    views = await asyncio.to_thread(
        alerts.find, public=not _is_operator(principal), statuses=statuses, hazard=hazard,
        rule_id=rule, since=_aware(since, "since"), limit=limit, before_id=cursor,
        worst_first=bool(active))
    more = not active and len(views) == limit
    return AlertList(alerts=[AlertOut.of(view, request) for view in views],
                     next_cursor=views[-1].id if more and views else None)


@router.get("/{alert_id}", response_model=AlertDetail, summary="One alert with its history",
            responses=problem_responses(404, 422, 503))
async def get_alert(alert_id: AlertIdPath, request: Request, alerts: AlertsDep,
                    principal: PrincipalDep) -> AlertDetail:
    """Its events (who, when, what), the versions sent and, for operators, its deliveries.
    Public: only alerts for the public with CAP status Actual, without names or notes."""
    public = not _is_operator(principal)
    detail = await asyncio.to_thread(alerts.detail, alert_id, public=public)
    if detail is None:
        raise _unknown(f"alert {alert_id}")
    return AlertDetail(
        alert=AlertOut.of(detail.view, request),
        events=[EventOut.of(event, public) for event in detail.events],
        versions=[VersionOut(version=v.version, identifier=v.identifier, msg_type=v.msg_type,
                             sent_at=v.sent_at, cap_url=_cap_url(request, v))
                  for v in detail.versions],
        deliveries=None if public else [DeliveryOut.of(item) for item in detail.deliveries])


# -- operators ---------------------------------------------------------------------------------
@operator_router.get("/silences", response_model=list[SilenceOut], summary="Silences",
                     responses=problem_responses(422, 503))
async def list_silences(alerts: AlertsDep,
                        active: Annotated[bool, Query(description="Only those holding now")]
                        = False) -> list[SilenceOut]:
    now = datetime.now(UTC)
    silences = await asyncio.to_thread(alerts.silences, active_at=now if active else None)
    return [SilenceOut.of(silence, now) for silence in silences]


@operator_router.post("/silences", response_model=SilenceOut, status_code=201,
                      summary="Silence a rule or a scope for a while",
                      responses=problem_responses(422, 503))
async def add_silence(body: SilenceCreate, alerts: AlertsDep,
                      principal: PrincipalDep) -> SilenceOut:
    """Matching alerts still change state and are recorded; their notifications are held and
    the current version is sent when the silence ends."""
    def invalid(detail: str) -> ProblemError:
        return ProblemError(422, detail, type_=TYPE_BASE + "invalid-silence",
                            title="Invalid silence")

    if body.rule_id is None and body.scope is None:
        raise invalid("a silence needs rule_id or scope (silencing everything is not allowed)")
    if (body.ends_at is None) == (body.duration_s is None):
        raise invalid("give ends_at or duration_s (one of them)")
    now = datetime.now(UTC)
    starts = _aware(body.starts_at, "starts_at") or now
    ends = _aware(body.ends_at, "ends_at") or starts + timedelta(seconds=body.duration_s or 0)
    if ends - starts > MAX_SILENCE:
        raise invalid(f"a silence may last at most {MAX_SILENCE.days} days")
    try:
        made = await asyncio.to_thread(
            alerts.add_silence, rule_id=body.rule_id, scope=body.scope, starts_at=starts,
            ends_at=ends, reason=body.reason, actor=_actor(principal))
    except StateError as exc:
        raise invalid(str(exc)) from None
    return SilenceOut.of(made, now)


@operator_router.delete("/silences/{silence_id}", response_model=SilenceOut,
                        summary="End a silence now", responses=problem_responses(404, 422, 503))
async def end_silence(silence_id: Annotated[int, Path(ge=1, le=DB_ID_MAX)],
                      alerts: AlertsDep) -> SilenceOut:
    try:
        silence = await asyncio.to_thread(alerts.expire_silence, silence_id)
    except StateError as exc:
        raise ProblemError(404, str(exc), type_=TYPE_BASE + "unknown-silence",
                           title="Unknown silence") from None
    return SilenceOut.of(silence, datetime.now(UTC))


@operator_router.get("/deliveries", response_model=list[DeliveryOut],
                     summary="Notifications in the outbox (e.g. the failed ones)",
                     responses=problem_responses(422, 503))
async def list_deliveries(
        alerts: AlertsDep,
        status: Annotated[Literal["queued", "sent", "failed"] | None, Query()] = None,
        channel: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: Annotated[int | None, Query(ge=1, le=DB_ID_MAX,
                                            description="Older than this delivery id")]
        = None) -> list[DeliveryOut]:
    """Newest first; ``status=failed``: what gave up after its retries (last_error says why)."""
    items = await asyncio.to_thread(alerts.deliveries, status=status, channel=channel,
                                    limit=limit, before_id=cursor)
    return [DeliveryOut.of(item) for item in items]


def _actor(principal: Any) -> str:
    # The alerts table keeps 100 characters of who acted.
    return f"api:{principal.label}"[:100]


async def _act(action: str, alert_id: int, body: ActionBody | None, request: Request,
               alerts: AlertsService, principal: Any) -> AlertOut:
    if not await asyncio.to_thread(alerts.exists, alert_id):
        raise _unknown(f"alert {alert_id}")
    try:
        view = await asyncio.to_thread(getattr(alerts, action), alert_id, _actor(principal),
                                       body.note if body else None)
    except StateError as exc:
        raise ProblemError(409, str(exc), type_=TYPE_BASE + "alert-state",
                           title="Not possible in this state") from None
    return AlertOut.of(view, request)


_ACTION_RESPONSES = {**problem_responses(404, 422, 503),
                     409: {**problem_responses(404)[404], "description": "Conflict"}}


@operator_router.post("/{alert_id}/ack", response_model=AlertOut,
                      summary="Acknowledge a firing alert", responses=_ACTION_RESPONSES)
async def acknowledge(alert_id: AlertIdPath, request: Request, alerts: AlertsDep,
                      principal: PrincipalDep, body: ActionBody | None = None) -> AlertOut:
    """Seen: no more repeats until it escalates. Recorded with the key's label and the note;
    409 when the alert is not firing."""
    return await _act("acknowledge", alert_id, body, request, alerts, principal)


@operator_router.post("/{alert_id}/resolve", response_model=AlertOut,
                      summary="Resolve an alert by hand", responses=_ACTION_RESPONSES)
async def resolve(alert_id: AlertIdPath, request: Request, alerts: AlertsDep,
                  principal: PrincipalDep, body: ActionBody | None = None) -> AlertOut:
    """The all-clear is queued to the alert service's channels like the engine's; 409 when it
    is already resolved. If the condition still holds, the next observation starts a new
    alert."""
    return await _act("resolve", alert_id, body, request, alerts, principal)


# -- admins ------------------------------------------------------------------------------------
@admin_router.post("/deliveries/retry", response_model=Requeued,
                   summary="Put failed deliveries back in the queue",
                   responses=problem_responses(422, 503))
async def retry_deliveries(
        alerts: AlertsDep,
        channel: Annotated[str | None, Query(min_length=1, max_length=64,
                                             description="Only this channel")] = None
        ) -> Requeued:
    """After the cause was fixed (a receiver back up, a password corrected): attempts start
    again from 0 with the same idempotency keys, so a receiver that honours them gets each
    notification once."""
    return Requeued(requeued=await asyncio.to_thread(alerts.retry_failed, channel))
