"""``database:`` settings: where the relational store lives (docs/security.md).

One model, embedded by every service that needs the store (``api.database`` now); ``kota db``
and ``kota keys`` read the same section.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

__all__ = ["DEFAULT_URL", "DatabaseSettings", "engine_url"]

DEFAULT_URL = "sqlite:///run/kota.db"
_DRIVERS = {"sqlite": "sqlite", "postgresql": "postgresql+psycopg",
            "postgresql+psycopg": "postgresql+psycopg"}


def engine_url(url: str) -> URL:
    """The SQLAlchemy URL for a setting: ``postgresql://`` means the psycopg 3 driver."""
    parsed = make_url(url)
    return parsed.set(drivername=_DRIVERS[parsed.drivername])


class DatabaseSettings(BaseModel):
    """The relational database of API keys (and, next, the alert engine's state)."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        default=DEFAULT_URL,
        description="sqlite:///run/kota.db (a file, relative to the working directory) or "
                    "postgresql://user:password@host:5432/kota; a secret when it holds a "
                    "password: set it in the environment")
    migrate_on_start: bool = Field(
        default=True,
        description="The API brings the schema up to date when it starts; false: it refuses "
                    "to start on an old schema (run `kota db upgrade`)")

    @field_validator("url")
    @classmethod
    def _known_url(cls, value: str) -> str:
        try:
            parsed = make_url(value)
        except ArgumentError:
            raise ValueError("not a database URL: expected sqlite:///path/to/file.db or "
                             "postgresql://user@host:port/name") from None
        if parsed.drivername not in _DRIVERS:
            raise ValueError(f"unsupported database {parsed.drivername!r}: use sqlite:/// or "
                             "postgresql://")
        if parsed.drivername == "sqlite" and not parsed.database:
            raise ValueError("a SQLite URL needs a file: sqlite:///run/kota.db")
        # .env.example's "change-me" values must not reach a running service (issue 10).
        if "change-me" in (parsed.password or ""):
            raise ValueError("the password is still the change-me placeholder: set a real one")
        return value
