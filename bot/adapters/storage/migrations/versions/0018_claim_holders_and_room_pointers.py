"""A held controller event's claim names its holder (a replica's name and epoch), so a replica
killed while recording one frees it when it starts again, instead of at the end of the lease; an
incident room's pointer post whose answer may be lost is marked, to be looked for, not doubled.

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("held_controller_events", sa.Column("claimed_by", sa.String(100)))
    op.add_column("held_controller_events", sa.Column("claimed_epoch", sa.Integer))
    op.add_column("chat_rooms", sa.Column("pointer_unconfirmed", sa.Boolean, nullable=False,
                                          server_default=sa.false()))


def downgrade() -> None:
    op.drop_column("chat_rooms", "pointer_unconfirmed")
    op.drop_column("held_controller_events", "claimed_epoch")
    op.drop_column("held_controller_events", "claimed_by")
