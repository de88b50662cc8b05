"""The Kemendagri kecamatan code of each device (kode wilayah, issue 13).

Revision ID: 0005_device_district_code
Revises: 0004_subscriptions
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_device_district_code"
down_revision = "0004_subscriptions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # "" = none stored: the registry takes the code of kota/regions for the city and district.
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("district_code", sa.String(8), nullable=False,
                                   server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("district_code")
