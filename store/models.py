"""The tables, as SQLAlchemy models. The schema itself is the migrations (store/migrations)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Boolean, DateTime, Float, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["DEVICE_STATUSES", "ROLES", "ApiKey", "Base", "DeviceRecord", "utc"]

# Lowest to highest: each role may do what the ones before it may (docs/security.md).
ROLES = ("public", "operator", "admin")
# A device row: active (in the exported registry, with a broker identity) or decommissioned.
DEVICE_STATUSES = ("active", "decommissioned")


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


class DeviceRecord(Base):
    """One device of the registry (the YAML/CSV registry file is exported from these rows).

    A decommissioned device keeps its row (who had which id, and when), without a broker
    identity, and is left out of the exported file.
    """

    __tablename__ = "devices"

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    city: Mapped[str] = mapped_column(String(32))
    district: Mapped[str] = mapped_column(String(64))
    # Kemendagri kecamatan code (e.g. 31.71.01); "" = none: the registry takes kota/regions'.
    district_code: Mapped[str] = mapped_column(String(8), default="")
    kelurahan: Mapped[str] = mapped_column(String(64), default="")
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    name: Mapped[str] = mapped_column(String(200), default="")
    # The registry's per-kind parameters as a JSON object (gauge_id, mount_height_cm, zone ...).
    params: Mapped[str] = mapped_column(Text, default="{}")
    status: Mapped[str] = mapped_column(String(16))  # active | decommissioned
    # True when the broker identity was made here (dynamic security), not by make-secrets.sh.
    provisioned: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(100))
    decommissioned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True),
                                                               nullable=True)
