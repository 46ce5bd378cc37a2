"""Review risk: the pull (merge) request heads to assess, each once, and what was posted for them.

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

from bot.adapters.storage.tables import UtcDateTime

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "review_checks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("repo", sa.String(100), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("head_sha", sa.String(64), nullable=False),
        sa.Column("base", sa.String(300), nullable=False),
        sa.Column("forge", sa.String(20), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("claimed_until", UtcDateTime),
        sa.Column("claimed_by", sa.String(100)),
        sa.Column("claimed_epoch", sa.Integer),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text),
        sa.Column("done_at", UtcDateTime),
        sa.Column("flagged", sa.Boolean),
        sa.Column("state", sa.String(20)),
        sa.Column("comment_id", sa.BigInteger),
        sa.UniqueConstraint("repo", "number", "head_sha", name="uq_review_checks_head"),
    )
    op.create_index("ix_review_checks_pending", "review_checks", ["done_at", "claimed_until"])


def downgrade() -> None:
    op.drop_index("ix_review_checks_pending", table_name="review_checks")
    op.drop_table("review_checks")
