"""Applied times per controller object: when each object applied each change (the rollout's
start) and was healthy after; the folder an object deploys from.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

from bot.adapters.storage.tables import UtcDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("gitops_objects", sa.Column("path", sa.String(1000)))
    op.create_table(
        "object_revisions",
        sa.Column("object_id", sa.String(600), nullable=False),
        sa.Column("repo", sa.String(100), nullable=False),
        sa.Column("sha", sa.String(64), nullable=False),
        sa.Column("label", sa.String(700), nullable=False),
        sa.Column("applied_at", UtcDateTime, nullable=False),
        sa.Column("healthy_at", UtcDateTime),
        sa.PrimaryKeyConstraint("object_id", "repo", "sha", name="pk_object_revisions"),
    )
    op.create_index("ix_object_revisions_repo_applied", "object_revisions", ["repo", "applied_at"])
    op.create_index("ix_object_revisions_repo_sha", "object_revisions", ["repo", "sha"])


def downgrade() -> None:
    op.drop_index("ix_object_revisions_repo_sha", table_name="object_revisions")
    op.drop_index("ix_object_revisions_repo_applied", table_name="object_revisions")
    op.drop_table("object_revisions")
    op.drop_column("gitops_objects", "path")
