"""The pager (PagerDuty): its outbox, filled from the timeline, and the webhook events it sent.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

from bot.adapters.storage.tables import UtcDateTime, json_type

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_timeline_events_kind", "timeline_events", ["kind", "at"])
    op.create_table(
        "pager_outbox",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("incident_id", sa.Integer, nullable=False),
        sa.Column("event_id", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("payload", json_type()),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("not_before", UtcDateTime, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"], name="fk_pager_outbox_incident_id"),
        sa.ForeignKeyConstraint(["event_id"], ["timeline_events.id"], name="fk_pager_outbox_event_id"),
        sa.UniqueConstraint("event_id", name="uq_pager_outbox_event_id"),
        sa.PrimaryKeyConstraint("id", name="pk_pager_outbox"),
    )
    op.create_index("ix_pager_outbox_state", "pager_outbox", ["state", "id"])
    op.create_table(
        "pager_deliveries",
        sa.Column("event_id", sa.String(100), nullable=False),
        sa.Column("received_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("event_id", name="pk_pager_deliveries"),
    )


def downgrade() -> None:
    op.drop_table("pager_deliveries")
    op.drop_index("ix_pager_outbox_state", table_name="pager_outbox")
    op.drop_table("pager_outbox")
    op.drop_index("ix_timeline_events_kind", table_name="timeline_events")
