"""The relational store: API keys now, the alert engine's state next (issue 11).

SQLite in a file under ``run/`` by default (one machine, a Raspberry Pi), PostgreSQL for a city
deployment; the schema is the Alembic migrations in ``store/migrations`` (``kota db upgrade``).
It sits above ``kota`` and below the services (docs/architecture.md); it knows nothing of HTTP.
"""
