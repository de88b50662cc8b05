"""``/api/v1/subscriptions``: residents sign up for the alerts they choose (public, with double
opt-in), confirm, unsubscribe with one click, see and delete what is stored about them; operators
add agencies' chat groups and webhooks, list subscribers (addresses masked except for admins),
remove them and read the dead-letter list. docs/api.md, section Subscriptions;
docs/subscriptions.md.

Two routers: api/main.py includes the public one first, so ``/subscriptions/me`` is never read
as a subscriber id.
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from alerts.subscriptions import tokens
from alerts.subscriptions.registry import (
    HAZARDS,
    LANGUAGES,
    MAX_RADIUS_KM,
    SEVERITIES,
    Invalid,
    Wanted,
    mask_address,
    validate,
)
from api.auth import ROLE_RANK
from api.deps import PrincipalDep
from api.problems import (
    PROBLEM_MEDIA_TYPE,
    TYPE_BASE,
    Problem,
    ProblemError,
    problem_responses,
)
from api.services.subscriptions import Page, SubscriptionsService, html_page
from store.models import utc
from store.subscription_models import NOTIFICATION_STATUSES, SUBSCRIBER_STATUSES

__all__ = ["operator_router", "router"]

log = logging.getLogger("kota.api.subscriptions")
router = APIRouter(prefix="/subscriptions", tags=["subscriptions"])
operator_router = APIRouter(prefix="/subscriptions", tags=["subscriptions"])

DB_ID_MAX = 2**31 - 1
TOKEN_MAX_CHARS = 400
Hazard = Literal["flood", "air", "rain", "safety"]
Severity = Literal["Minor", "Moderate", "Severe", "Extreme"]
Language = Literal["id-ID", "en-US"]
TokenQuery = Annotated[str, Query(min_length=10, max_length=TOKEN_MAX_CHARS,
                                  description="The signed token from the link")]
_TOKEN_REFUSED: dict[int | str, dict[str, Any]] = {400: {
    "model": Problem, "description": "The link's token is malformed, forged, for another purpose, "
                                     "replaced or expired (invalid-token)",
    "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}}}
ACCEPTED = {"status": "accepted",
            "detail": "If the address can receive alerts, a confirmation is on its way: open "
                      "the link in it to start. Nothing is sent before that."}


def get_subscriptions(request: Request) -> SubscriptionsService:
    service: SubscriptionsService | None = getattr(request.app.state, "subscriptions", None)
    if service is None:
        raise ProblemError(503, "subscriptions are not set up",
                           type_=TYPE_BASE + "no-subscriptions")
    return service


def signing(service: Annotated[SubscriptionsService, Depends(get_subscriptions)]
            ) -> SubscriptionsService:
    """The service, when links can be signed (alerts.subscriptions.secret is set)."""
    try:
        on = service.signing_on
    except (OSError, ValueError) as exc:
        log.error("alerts.subscriptions.secret_file: %s", exc)
        on = False
    if not on:
        raise ProblemError(503, "subscriptions are off: alerts.subscriptions.secret (or "
                                "secret_file) is not set", type_=TYPE_BASE + "subscriptions-off",
                           title="Subscriptions off")
    return service


SubscriptionsDep = Annotated[SubscriptionsService, Depends(get_subscriptions)]
SigningDep = Annotated[SubscriptionsService, Depends(signing)]


# -- shapes ------------------------------------------------------------------------------------
class AreasChoice(BaseModel):
    """Where: kecamatan, kelurahan, or a point and radius (any of them together)."""

    districts: list[str] = Field(default_factory=list, max_length=50,
                                 description="Kecamatan, as GET /subscriptions/areas names them")
    kelurahan: list[str] = Field(default_factory=list, max_length=50)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    radius_km: float | None = Field(default=None, gt=0, le=MAX_RADIUS_KM,
                                    description=f"Around lat/lon, at most {MAX_RADIUS_KM:g} km")
    hazards: list[Hazard] = Field(min_length=1, max_length=len(HAZARDS))
    min_severity: Severity = Field(default="Moderate",
                                   description="The lowest CAP severity to hear about")
    language: Language = "id-ID"
    quiet_start_h: int | None = Field(default=None, ge=0, le=23,
                                      description="No messages from this local hour (Asia/"
                                                  "Jakarta) ... except Extreme")
    quiet_end_h: int | None = Field(default=None, ge=0, le=23, description="... to this one")


class SignUp(AreasChoice):
    """A resident's sign-up: an email (double opt-in) or a webhook (challenge)."""

    model_config = ConfigDict(extra="forbid")

    channel: Literal["email", "webhook"] = "email"
    address: str = Field(min_length=3, max_length=2000,
                         description="Email address, or the webhook's http(s) URL")


class AgencySubscription(AreasChoice):
    """An agency's group (BPBD, Satpol PP, kelurahan staff): active at once."""

    model_config = ConfigDict(extra="forbid")

    channel: Literal["apprise", "webhook"]
    address: str = Field(min_length=3, max_length=2000,
                         description="An apprise URL (tgram://, slack://, ntfy://, ...) or a "
                                     "webhook URL")
    label: str = Field(min_length=1, max_length=100,
                       description="Whose group, e.g. 'BPBD Jakarta Timur, Telegram'")


class Accepted(BaseModel):
    status: Literal["accepted"]
    detail: str


class AreaOut(BaseModel):
    name: str
    kota: str = Field(description="Kota administrasi ('' when not known)")


class KelurahanOut(BaseModel):
    name: str
    district: str = Field(description="Its kecamatan")


class AreasOut(BaseModel):
    city: str
    districts: list[AreaOut]
    kelurahan: list[KelurahanOut]
    hazards: list[str]
    severities: list[str] = Field(description="CAP severities, lowest first")
    languages: list[str]
    max_radius_km: float


class SubscriberOut(BaseModel):
    id: int
    channel: str
    address: str = Field(description="Masked (s***@example.org) except for admins and the "
                                     "subscriber")
    status: str
    language: str
    districts: list[str]
    kelurahan: list[str]
    lat: float | None
    lon: float | None
    radius_km: float | None
    hazards: list[str]
    min_severity: str
    quiet_start_h: int | None
    quiet_end_h: int | None
    created_by: str
    label: str | None
    created_at: datetime | None
    confirmed_at: datetime | None
    updated_at: datetime | None
    unsubscribed_at: datetime | None
    last_sent_at: datetime | None


class SubscriberList(BaseModel):
    subscribers: list[SubscriberOut]
    next_after: int | None = Field(description="Pass as after for the next page; null: no more")


class StoredNotification(BaseModel):
    id: int
    alert_id: int
    version: int
    channel: str
    severity: str
    status: str
    attempts: int
    created_at: str | None
    sent_at: str | None


class MyData(SubscriberOut):
    """Everything stored about the subscriber (UU 27/2022: the right to see it)."""

    stored_also: list[str]
    notifications: list[StoredNotification]


class NotificationOut(BaseModel):
    id: int
    subscriber_id: int
    alert_id: int
    version: int
    channel: str
    severity: str
    status: str
    attempts: int
    last_error: str | None
    created_at: datetime | None
    next_attempt_at: datetime | None
    sent_at: datetime | None


class NotificationList(BaseModel):
    notifications: list[NotificationOut]
    next_after: int | None


# -- helpers -----------------------------------------------------------------------------------
def _wanted(service: SubscriptionsService, body: AreasChoice, *, channel: str, address: str,
            label: str | None = None, operator: bool = False) -> Wanted:
    try:
        return validate(service.areas(), channel=channel, address=address,
                        hazards=body.hazards, min_severity=body.min_severity,
                        language=body.language, districts=body.districts,
                        kelurahan=body.kelurahan, lat=body.lat, lon=body.lon,
                        radius_km=body.radius_km, quiet_start_h=body.quiet_start_h,
                        quiet_end_h=body.quiet_end_h, label=label, operator=operator)
    except Invalid as exc:
        raise _invalid(exc) from None


def _invalid(exc: Invalid) -> ProblemError:
    # The detail starts with the request field: "districts: unknown kecamatan 'X' ...".
    return ProblemError(422, str(exc), type_=TYPE_BASE + "invalid-subscription",
                        title="Invalid subscription")


def _wants_html(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "text/html" in accept


def _bad_token(request: Request, exc: Exception) -> Response:
    detail = str(exc)
    if _wants_html(request):
        return HTMLResponse(html_page("id-ID", Page(
            "Tautan tidak berlaku · Link not valid",
            "Tautan ini tidak berlaku lagi atau sudah kedaluwarsa. This link is no longer "
            "valid or has expired.")), status_code=400)
    raise ProblemError(400, f"the link's token is not valid: {detail}",
                       type_=TYPE_BASE + "invalid-token", title="Invalid link")


def _client(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def _is_admin(principal: Any) -> bool:
    return bool(ROLE_RANK[principal.role] >= ROLE_RANK["admin"])


# -- public ------------------------------------------------------------------------------------
@router.get("/areas", response_model=AreasOut, summary="What one may subscribe to")
async def subscription_areas(service: SubscriptionsDep) -> AreasOut:
    """The kecamatan (with their kota administrasi) and kelurahan of the registry's city, the
    hazards, severities and languages; the sign-up page builds its form from it."""
    areas = await asyncio.to_thread(service.areas)
    return AreasOut(
        city=areas.city,
        districts=[AreaOut(name=name, kota=kota) for name, kota in
                   sorted(areas.districts.items(), key=lambda item: (item[1], item[0]))],
        kelurahan=[KelurahanOut(name=name, district=district)
                   for name, district in sorted(areas.kelurahan.items())],
        hazards=list(HAZARDS), severities=list(SEVERITIES), languages=list(LANGUAGES),
        max_radius_km=MAX_RADIUS_KM)


@router.post("", status_code=202, response_model=Accepted, summary="Sign up (double opt-in)",
             responses=problem_responses(422, 429, 503))
async def sign_up(request: Request, body: SignUp, service: SigningDep) -> Accepted:
    """Email: a confirmation mail with a link; webhook: a POST of ``{"type":
    "kota.subscription.challenge", "challenge": "..."}`` that must be answered 2xx with the same
    challenge (JSON ``{"challenge": ...}`` or the bare text). The answer is the same whether or
    not the address was known; limited per client (``signup.per_client_per_hour``: 429) and
    per address (``signup.per_address_per_day``: no more mail that day)."""
    if not service.settings.signup.enabled:
        raise ProblemError(503, "public sign-up is off (alerts.subscriptions.signup.enabled)",
                           type_=TYPE_BASE + "subscriptions-off", title="Subscriptions off")
    wait_s = service.limiter.allow(_client(request))
    if wait_s is not None:
        raise ProblemError(429, "too many sign-ups from this address; try again later "
                                "(alerts.subscriptions.signup.per_client_per_hour)",
                           type_=TYPE_BASE + "too-many-signups", title="Too many sign-ups",
                           headers={"Retry-After": str(int(wait_s))})
    wanted = _wanted(service, body, channel=body.channel, address=body.address)
    created = await asyncio.to_thread(service.sign_up_blocking, wanted)
    if created is not None:
        service.dispatch(wanted, *created)
    return Accepted.model_validate(ACCEPTED)


@router.get("/confirm", summary="Confirm a sign-up (the link in the mail)",
            response_class=HTMLResponse,
            responses={200: {"description": "A page in the subscriber's language (JSON with "
                                            "Accept: application/json)"},
                       **_TOKEN_REFUSED, **problem_responses(422, 503)})
async def confirm(request: Request, token: TokenQuery, service: SigningDep) -> Response:
    try:
        done = await asyncio.to_thread(service.registry.confirm, token)
    except tokens.TokenError as exc:
        return _bad_token(request, exc)
    log.info("subscriber %d confirmed", done.subscriber_id)
    if not _wants_html(request):
        return JSONResponse({"status": "active", "language": done.language})
    if done.language == "en-US":
        page = Page("Subscription confirmed", "You will receive the alerts you chose. Every "
                    "message carries a link to unsubscribe and to see or delete your data.")
    else:
        page = Page("Langganan dikonfirmasi", "Anda akan menerima peringatan yang Anda pilih. "
                    "Setiap pesan berisi tautan untuk berhenti berlangganan dan untuk melihat "
                    "atau menghapus data Anda.")
    return HTMLResponse(html_page(done.language, page))


@router.get("/unsubscribe", summary="The unsubscribe page (asks before it acts)",
            response_class=HTMLResponse,
            responses={**_TOKEN_REFUSED, **problem_responses(422, 503)})
async def unsubscribe_page(request: Request, token: TokenQuery, service: SigningDep) -> Response:
    """A page with one button that POSTs to the same link; GET itself changes nothing (mail
    scanners open links)."""
    try:
        row = await asyncio.to_thread(service.registry.subscriber_for, token, "unsubscribe")
    except tokens.TokenError as exc:
        return _bad_token(request, exc)
    language = row.language if row is not None else "id-ID"
    if row is None or row.status == "unsubscribed":
        page = (Page("Already unsubscribed", "This address receives nothing from us any more.")
                if language == "en-US" else
                Page("Sudah berhenti berlangganan", "Alamat ini tidak menerima apa pun lagi."))
    elif language == "en-US":
        page = Page("Unsubscribe?", "Stop all alerts to this address. The address is deleted "
                    "at once.", form_action=f"unsubscribe?token={token}", button="Unsubscribe")
    else:
        page = Page("Berhenti berlangganan?", "Hentikan semua peringatan ke alamat ini. Alamat "
                    "langsung dihapus.", form_action=f"unsubscribe?token={token}",
                    button="Berhenti berlangganan")
    return HTMLResponse(html_page(language, page))


@router.post("/unsubscribe", summary="Unsubscribe (one click, RFC 8058)",
             response_class=HTMLResponse,
             responses={**_TOKEN_REFUSED, **problem_responses(422, 503)})
async def unsubscribe(request: Request, token: TokenQuery, service: SigningDep) -> Response:
    """``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` POSTs here; so does the page's
    button. Nothing more is sent; the address is erased at once. Idempotent."""
    try:
        row = await asyncio.to_thread(service.registry.subscriber_for, token, "unsubscribe")
    except tokens.TokenError as exc:
        return _bad_token(request, exc)
    if row is not None and await asyncio.to_thread(service.registry.unsubscribe, row.id):
        log.info("subscriber %d unsubscribed", row.id)
    language = row.language if row is not None else "id-ID"
    if not _wants_html(request):
        return JSONResponse({"status": "unsubscribed"})
    page = (Page("Unsubscribed", "You will receive nothing more; your address is deleted.")
            if language == "en-US" else
            Page("Berhenti berlangganan", "Anda tidak akan menerima apa pun lagi; alamat Anda "
                 "sudah dihapus."))
    return HTMLResponse(html_page(language, page))


def _manage_row(service: SubscriptionsService, token: str) -> int:
    try:
        row = service.registry.subscriber_for(token, "manage")
    except tokens.TokenError as exc:
        raise ProblemError(400, f"the link's token is not valid: {exc}",
                           type_=TYPE_BASE + "invalid-token", title="Invalid link") from None
    if row is None:
        raise ProblemError(404, "nothing is stored for this link any more (deleted)",
                           type_=TYPE_BASE + "unknown-subscriber", title="Unknown subscriber")
    return row.id


@router.get("/me", response_model=MyData, summary="What is stored about me",
            responses={**_TOKEN_REFUSED, **problem_responses(404, 422, 503)})
async def my_data(token: TokenQuery, service: SigningDep) -> MyData:
    """With the manage link from any mail: every stored field and the notifications sent."""
    subscriber_id = await asyncio.to_thread(_manage_row, service, token)
    data = await asyncio.to_thread(service.registry.export, subscriber_id)
    if data is None:
        raise ProblemError(404, "nothing is stored for this link any more (deleted)",
                           type_=TYPE_BASE + "unknown-subscriber", title="Unknown subscriber")
    return MyData.model_validate(data)


@router.delete("/me", status_code=204, response_class=Response,
               summary="Delete everything stored about me",
               responses={**_TOKEN_REFUSED, **problem_responses(404, 422, 503)})
async def delete_my_data(token: TokenQuery, service: SigningDep) -> Response:
    subscriber_id = await asyncio.to_thread(_manage_row, service, token)
    await asyncio.to_thread(service.registry.delete, subscriber_id)
    log.info("subscriber %d deleted by its owner", subscriber_id)
    return Response(status_code=204)


# -- operators ---------------------------------------------------------------------------------
@operator_router.post("/agency", status_code=201, response_model=SubscriberOut,
                      summary="An agency's chat group or webhook, active at once",
                      responses=problem_responses(422, 503))
async def agency_subscription(body: AgencySubscription, service: SigningDep,
                              principal: PrincipalDep) -> SubscriberOut:
    wanted = _wanted(service, body, channel=body.channel, address=body.address,
                     label=body.label, operator=True)
    created = await asyncio.to_thread(service.registry.create, wanted,
                                      created_by=principal.label, active=True)
    assert created.subscriber_id is not None
    log.info("agency subscriber %d (%s) added by %s", created.subscriber_id, body.channel,
             principal.label)
    [row] = await asyncio.to_thread(service.registry.listing, after_id=created.subscriber_id - 1,
                                    limit=1, mask=not _is_admin(principal))
    return SubscriberOut.model_validate(row)


@operator_router.get("", response_model=SubscriberList, summary="Subscribers",
                     responses=problem_responses(422, 503))
async def list_subscribers(
        service: SubscriptionsDep, principal: PrincipalDep,
        status: Annotated[Literal["pending", "active", "unsubscribed"] | None,
                          Query(description="Only these")] = None,
        after: Annotated[int, Query(ge=0, le=DB_ID_MAX, description="Ids after this")] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> SubscriberList:
    """Addresses are masked (``s***@example.org``) except for admins."""
    assert status is None or status in SUBSCRIBER_STATUSES
    rows = await asyncio.to_thread(service.registry.listing, status=status, limit=limit,
                                   after_id=after, mask=not _is_admin(principal))
    return SubscriberList(subscribers=[SubscriberOut.model_validate(r) for r in rows],
                          next_after=rows[-1]["id"] if len(rows) == limit else None)


@operator_router.get("/notifications", response_model=NotificationList,
                     summary="Notifications to subscribers (failed: the dead-letter list)",
                     responses=problem_responses(422, 503))
async def list_notifications(
        service: SubscriptionsDep, principal: PrincipalDep,
        status: Annotated[Literal["queued", "sent", "failed", "digested"] | None,
                          Query(description="failed (default): delivery gave up")] = "failed",
        after: Annotated[int, Query(ge=0, le=DB_ID_MAX)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> NotificationList:
    """A failed notification's ``last_error`` may quote the address (an SMTP refusal): masked
    for operators like the subscriber list."""
    assert status is None or status in NOTIFICATION_STATUSES
    rows = await asyncio.to_thread(service.registry.notifications, status=status, limit=limit,
                                   after_id=after)
    admin = _is_admin(principal)
    return NotificationList(notifications=[NotificationOut(
        id=n.id, subscriber_id=n.subscriber_id, alert_id=n.alert_id, version=n.version,
        channel=n.channel, severity=n.severity, status=n.status, attempts=n.attempts,
        last_error=n.last_error if admin else _mask_error(n.last_error),
        created_at=utc(n.created_at), next_attempt_at=utc(n.next_attempt_at),
        sent_at=utc(n.sent_at)) for n in rows],
        next_after=rows[-1].id if len(rows) == limit else None)


def _mask_error(text: str | None) -> str | None:
    if text is None:
        return None
    return re.sub(r"[\w.+-]+@[\w-]+(\.[\w-]+)+",
                  lambda found: mask_address("email", found.group(0)), text)


@operator_router.delete("/{subscriber_id}", status_code=204, response_class=Response,
                        summary="Remove a subscriber and its notifications",
                        responses=problem_responses(404, 422, 503))
async def delete_subscriber(
        service: SubscriptionsDep, principal: PrincipalDep,
        subscriber_id: Annotated[int, Path(ge=1, le=DB_ID_MAX)]) -> Response:
    if not await asyncio.to_thread(service.registry.delete, subscriber_id):
        raise ProblemError(404, f"no subscriber {subscriber_id}",
                           type_=TYPE_BASE + "unknown-subscriber", title="Unknown subscriber")
    log.info("subscriber %d deleted by %s", subscriber_id, principal.label)
    return Response(status_code=204)
