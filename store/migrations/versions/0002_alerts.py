"""The alert engine's state: alerts, their history, the delivery outbox and silences (issue 11).

Revision ID: 0002_alerts
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_alerts"
down_revision = "0001"
branch_labels = None
depends_on = None

_when = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("rule_id", sa.String(100), nullable=False),
        sa.Column("scope", sa.String(200), nullable=False),
        sa.Column("active_key", sa.String(301), nullable=True),
        sa.Column("city", sa.String(64), nullable=False),
        sa.Column("hazard", sa.String(16), nullable=False),
        sa.Column("audience", sa.String(16), nullable=False),
        sa.Column("cap_status", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("grade", sa.Integer, nullable=False),
        sa.Column("level", sa.String(100), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("notified_version", sa.Integer, nullable=False),
        sa.Column("view", sa.JSON, nullable=False),
        sa.Column("pending_since", _when, nullable=False),
        sa.Column("fired_at", _when, nullable=True),
        sa.Column("clear_since", _when, nullable=True),
        sa.Column("last_observed_at", _when, nullable=False),
        sa.Column("last_notified_at", _when, nullable=True),
        sa.Column("acknowledged_at", _when, nullable=True),
        sa.Column("acknowledged_by", sa.String(100), nullable=True),
        sa.Column("resolved_at", _when, nullable=True),
        sa.Column("resolved_by", sa.String(100), nullable=True),
        sa.Column("updated_at", _when, nullable=False),
        sa.UniqueConstraint("active_key", name="uq_alerts_active_key"),
        sa.CheckConstraint("status IN ('pending', 'firing', 'acknowledged', 'resolved')",
                           name="ck_alerts_status"),
        sa.CheckConstraint("cap_status IN ('Actual', 'Exercise', 'Test')",
                           name="ck_alerts_cap_status"),
    )
    op.create_index("ix_alerts_status", "alerts", ["status"])
    op.create_index("ix_alerts_rule_scope", "alerts", ["rule_id", "scope"])
    op.create_table(
        "alert_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("alert_id", sa.Integer, sa.ForeignKey("alerts.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("at", _when, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("grade", sa.Integer, nullable=False),
        sa.Column("level", sa.String(100), nullable=False),
        sa.Column("note", sa.Text, nullable=True),
    )
    op.create_index("ix_alert_events_alert_id", "alert_events", ["alert_id"])
    op.create_table(
        "alert_outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("alert_id", sa.Integer, sa.ForeignKey("alerts.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", _when, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", _when, nullable=False),
        sa.Column("sent_at", _when, nullable=True),
        sa.UniqueConstraint("idempotency_key", name="uq_alert_outbox_idempotency_key"),
        sa.CheckConstraint("status IN ('queued', 'sent', 'failed')",
                           name="ck_alert_outbox_status"),
    )
    op.create_index("ix_alert_outbox_alert_id", "alert_outbox", ["alert_id"])
    op.create_index("ix_alert_outbox_due", "alert_outbox", ["status", "next_attempt_at"])
    op.create_table(
        "alert_silences",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("rule_id", sa.String(100), nullable=True),
        sa.Column("scope", sa.String(200), nullable=True),
        sa.Column("starts_at", _when, nullable=False),
        sa.Column("ends_at", _when, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("created_at", _when, nullable=False),
        sa.Column("expired_early_at", _when, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("alert_silences")
    op.drop_table("alert_outbox")
    op.drop_table("alert_events")
    op.drop_table("alerts")
