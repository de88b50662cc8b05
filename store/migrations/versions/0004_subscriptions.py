"""Subscriptions and their notifications (issue 12).

Revision ID: 0004_subscriptions
Revises: 0003_devices
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_subscriptions"
down_revision = "0003_devices"
branch_labels = None
depends_on = None

_when = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "subscribers",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("address", sa.Text, nullable=False),
        sa.Column("address_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("districts", sa.JSON, nullable=False),
        sa.Column("kelurahan", sa.JSON, nullable=False),
        sa.Column("lat", sa.Float, nullable=True),
        sa.Column("lon", sa.Float, nullable=True),
        sa.Column("radius_km", sa.Float, nullable=True),
        sa.Column("hazards", sa.JSON, nullable=False),
        sa.Column("min_severity", sa.String(16), nullable=False),
        sa.Column("quiet_start_h", sa.Integer, nullable=True),
        sa.Column("quiet_end_h", sa.Integer, nullable=True),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("label", sa.String(100), nullable=True),
        sa.Column("confirm_hash", sa.String(64), nullable=True),
        sa.Column("confirm_sent_at", _when, nullable=True),
        sa.Column("confirmed_at", _when, nullable=True),
        sa.Column("created_at", _when, nullable=False),
        sa.Column("updated_at", _when, nullable=False),
        sa.Column("unsubscribed_at", _when, nullable=True),
        sa.Column("last_sent_at", _when, nullable=True),
        sa.CheckConstraint("channel IN ('email', 'webhook', 'apprise')",
                           name="ck_subscribers_channel"),
        sa.CheckConstraint("status IN ('pending', 'active', 'unsubscribed')",
                           name="ck_subscribers_status"),
    )
    op.create_index("ix_subscribers_address_hash", "subscribers", ["address_hash"])
    op.create_index("ix_subscribers_status", "subscribers", ["status"])
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("subscriber_id", sa.Integer,
                  sa.ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False),
        sa.Column("alert_id", sa.Integer, sa.ForeignKey("alerts.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", _when, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("digest_id", sa.Integer, nullable=True),
        sa.Column("created_at", _when, nullable=False),
        sa.Column("sent_at", _when, nullable=True),
        sa.UniqueConstraint("subscriber_id", "alert_id", "version",
                            name="uq_notifications_subscriber_alert_version"),
        sa.CheckConstraint("status IN ('queued', 'sent', 'failed', 'digested')",
                           name="ck_notifications_status"),
    )
    op.create_index("ix_notifications_subscriber_id", "notifications", ["subscriber_id"])
    op.create_index("ix_notifications_alert_id", "notifications", ["alert_id"])
    op.create_index("ix_notifications_due", "notifications",
                    ["channel", "status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_table("notifications")
    op.drop_table("subscribers")
