"""Claims name their holder (a replica's name and epoch), and each replica's epoch is kept, so a
process that starts again frees at once what its previous run held when it died.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

from bot.adapters.storage.tables import UtcDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

CLAIMED = ("follow_ups", "chat_outbox")


def upgrade() -> None:
    for table in CLAIMED:
        op.add_column(table, sa.Column("claimed_by", sa.String(100)))
        op.add_column(table, sa.Column("claimed_epoch", sa.Integer))
    op.create_table(
        "replicas",
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("epoch", sa.Integer, nullable=False),
        sa.Column("started_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_replicas"),
    )


def downgrade() -> None:
    op.drop_table("replicas")
    for table in CLAIMED:
        op.drop_column(table, "claimed_epoch")
        op.drop_column(table, "claimed_by")
