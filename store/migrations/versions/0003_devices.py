"""The device registry in the database; the YAML/CSV registry file is exported from it (issue 10).

Revision ID: 0003_devices
Revises: 0002_alerts
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_devices"
down_revision = "0002_alerts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("device_id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("city", sa.String(32), nullable=False),
        sa.Column("district", sa.String(64), nullable=False),
        sa.Column("kelurahan", sa.String(64), nullable=False, server_default=""),
        sa.Column("lat", sa.Float, nullable=False),
        sa.Column("lon", sa.Float, nullable=False),
        sa.Column("name", sa.String(200), nullable=False, server_default=""),
        sa.Column("params", sa.Text, nullable=False, server_default="{}"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("provisioned", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("decommissioned_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('active', 'decommissioned')", name="ck_devices_status"),
    )


def downgrade() -> None:
    op.drop_table("devices")
