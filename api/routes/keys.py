"""``/api/v1/keys``: API keys, for admins (the same as ``kota keys``; docs/security.md)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field, field_validator

from api.deps import KeysDep, PrincipalDep
from api.problems import TYPE_BASE, ProblemError, problem_responses
from store.keys import KEY_SCOPE_AREAS, KeyInfo, check_scopes

router = APIRouter(prefix="/keys", tags=["keys"])


class KeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100, description="Who or what uses it")
    role: Literal["public", "operator", "admin"]
    expires_in_days: float | None = Field(default=90, gt=0, le=3660,
                                          description="Lifetime; null: never expires")
    scopes: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9:._-]{0,39}$")]] = Field(
        default_factory=list, max_length=20,
        description="Optional limits within the role: an API area (" + ", ".join(
            KEY_SCOPE_AREAS) + "), alone for every method or with :read for reading only, "
            "e.g. [\"alerts\", \"readings:read\"]; none: everything the role may do")

    @field_validator("scopes")
    @classmethod
    def _known_scopes(cls, scopes: list[str]) -> list[str]:
        return list(check_scopes(scopes))


class KeyPublic(BaseModel):
    id: int
    name: str
    role: str
    scopes: list[str]
    prefix: str = Field(description="The key's first part (kota_<prefix>_...), for recognising")
    status: Literal["active", "expired", "revoked"]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    created_by: str

    @classmethod
    def of(cls, info: KeyInfo) -> KeyPublic:
        return cls(id=info.id, name=info.name, role=info.role, scopes=list(info.scopes),
                   prefix=info.prefix, status=info.status(), created_at=info.created_at,
                   expires_at=info.expires_at, revoked_at=info.revoked_at,
                   last_used_at=info.last_used_at, created_by=info.created_by)


class KeyCreated(KeyPublic):
    key: str = Field(description="The key itself: shown this once, stored only as a hash")


@router.post("", response_model=KeyCreated, status_code=201, summary="Create an API key",
             responses=problem_responses(422))
async def create_key(body: KeyCreate, store: KeysDep, principal: PrincipalDep) -> KeyCreated:
    lifetime = timedelta(days=body.expires_in_days) if body.expires_in_days else None
    info, key = await asyncio.to_thread(
        store.create, body.name, body.role, expires_in=lifetime, scopes=body.scopes,
        created_by=f"api:{principal.label}")
    return KeyCreated(**KeyPublic.of(info).model_dump(), key=key)


@router.get("", response_model=list[KeyPublic], summary="Every API key (never the key itself)")
async def list_keys(store: KeysDep) -> list[KeyPublic]:
    return [KeyPublic.of(info) for info in await asyncio.to_thread(store.list)]


@router.delete("/{key_id}", response_model=KeyPublic, summary="Revoke an API key",
               responses=problem_responses(404, 422))
async def revoke_key(key_id: Annotated[int, Path(ge=1)], store: KeysDep) -> KeyPublic:
    info = await asyncio.to_thread(store.revoke, key_id)
    if info is None:
        raise ProblemError(404, f"no API key {key_id}", type_=TYPE_BASE + "unknown-key",
                           title="Unknown API key")
    return KeyPublic.of(info)
