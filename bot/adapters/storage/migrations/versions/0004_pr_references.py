"""Pull and merge request references as their forge writes them ("#12", "!12" on GitLab).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("changes", sa.Column("pr_ref", sa.String(20)))
    op.add_column("suspects", sa.Column("pr_ref", sa.String(20)))


def downgrade() -> None:
    op.drop_column("suspects", "pr_ref")
    op.drop_column("changes", "pr_ref")
