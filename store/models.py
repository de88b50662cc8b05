"""The tables, as SQLAlchemy models. The schema itself is the migrations (store/migrations)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["ROLES", "ApiKey", "Base", "utc"]

# Lowest to highest: each role may do what the ones before it may (docs/security.md).
ROLES = ("public", "operator", "admin")


class Base(DeclarativeBase):
    pass


def utc(moment: datetime | None) -> datetime | None:
    """SQLite gives naive datetimes back: everything stored is UTC."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class ApiKey(Base):
    """One API key. The key itself is never stored: only the SHA-256 of it, and its prefix."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))
    scopes: Mapped[str | None] = mapped_column(String(500), nullable=True)
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True),
                                                          nullable=True)
    created_by: Mapped[str] = mapped_column(String(100))
