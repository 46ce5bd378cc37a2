"""Controller events answered 202 while their revision was still being fetched are kept until they
are recorded (a restart, or another replica, finishes them).

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

from bot.adapters.storage.tables import UtcDateTime, json_type

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "held_controller_events",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("event", json_type(), nullable=False),
        sa.Column("held_at", UtcDateTime, nullable=False),
        sa.Column("claimed_until", UtcDateTime),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("note", sa.Text, nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("key", name="pk_held_controller_events"),
    )
    op.create_index("ix_held_controller_events_held_at", "held_controller_events", ["held_at"])


def downgrade() -> None:
    op.drop_index("ix_held_controller_events_held_at", table_name="held_controller_events")
    op.drop_table("held_controller_events")
