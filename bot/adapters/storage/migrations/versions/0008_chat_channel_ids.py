"""Chat: each channel's ID by its name (the ID is what Slack's reads and updates take), and a
thread's reply whose answer was lost, so it is looked for before it is sent again.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chat_channels",
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("channel_id", sa.String(40), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_chat_channels"),
    )
    op.add_column("chat_threads",
                  sa.Column("reply_unconfirmed", sa.Boolean, nullable=False, server_default=sa.false()))


def downgrade() -> None:
    op.drop_column("chat_threads", "reply_unconfirmed")
    op.drop_table("chat_channels")
