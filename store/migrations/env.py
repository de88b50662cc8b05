"""Alembic's environment: run from Python only (store.db), with the engine it is given."""

from __future__ import annotations

from alembic import context

# Imported for their tables: they join Base.metadata.
import store.alert_models
import store.subscription_models  # noqa: F401
from store.models import Base

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata,
                      render_as_batch=engine.dialect.name == "sqlite")
    context.run_migrations()
