"""Chat feeds the timeline: each message marked in chat (a pin, a reaction with the timeline emoji)
once, with its marks; a timeline entry can be hidden by a later correction (never deleted); an
incident's message found by its channel and ts.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

from bot.adapters.storage.tables import json_type

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("timeline_events", sa.Column("hidden", sa.Boolean, nullable=False, server_default=sa.false()))
    op.create_index("ix_chat_threads_channel", "chat_threads", ["channel", "ts"])
    op.create_table(
        "chat_marks",
        sa.Column("channel", sa.String(40), nullable=False),
        sa.Column("ts", sa.String(40), nullable=False),
        sa.Column("incident_id", sa.Integer,
                  sa.ForeignKey("incidents.id", name="fk_chat_marks_incident_id"), nullable=False),
        sa.Column("event_id", sa.Integer,
                  sa.ForeignKey("timeline_events.id", name="fk_chat_marks_event_id"), nullable=False),
        sa.Column("markers", json_type(), nullable=False),
        sa.Column("hidden", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("channel", "ts", name="pk_chat_marks"),
    )


def downgrade() -> None:
    op.drop_table("chat_marks")
    op.drop_index("ix_chat_threads_channel", table_name="chat_threads")
    with op.batch_alter_table("timeline_events") as batch:  # SQLite drops a column by copying the table
        batch.drop_column("hidden")
