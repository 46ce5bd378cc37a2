"""Incident rooms and roles: a channel per declared incident (the steps the chat outbox still has
to take for it) and who holds each role of an incident.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

from bot.adapters.storage.tables import UtcDateTime, json_type

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chat_rooms",
        sa.Column("incident_id", sa.Integer, nullable=False),
        sa.Column("private", sa.Boolean, nullable=False),
        sa.Column("requested_at", UtcDateTime, nullable=False),
        sa.Column("requested_by", sa.String(200), nullable=False),
        sa.Column("name", sa.String(80)),
        sa.Column("channel_id", sa.String(40)),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("invites_due", sa.Boolean, nullable=False),
        sa.Column("invited", json_type(), nullable=False),
        sa.Column("pointer_ts", sa.String(40)),
        sa.Column("not_before", UtcDateTime),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("error", sa.Text),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"], name="fk_chat_rooms_incident_id"),
        sa.PrimaryKeyConstraint("incident_id", name="pk_chat_rooms"),
    )
    op.create_index("ix_chat_rooms_state", "chat_rooms", ["state"])
    op.create_index("ix_chat_rooms_channel_id", "chat_rooms", ["channel_id"])
    op.create_table(
        "incident_roles",
        sa.Column("incident_id", sa.Integer, nullable=False),
        sa.Column("role", sa.String(30), nullable=False),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("assigned_at", UtcDateTime, nullable=False),
        sa.Column("assigned_by", sa.String(200), nullable=False),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"], name="fk_incident_roles_incident_id"),
        sa.PrimaryKeyConstraint("incident_id", "role", name="pk_incident_roles"),
    )


def downgrade() -> None:
    op.drop_table("incident_roles")
    op.drop_index("ix_chat_rooms_channel_id", table_name="chat_rooms")
    op.drop_index("ix_chat_rooms_state", table_name="chat_rooms")
    op.drop_table("chat_rooms")
