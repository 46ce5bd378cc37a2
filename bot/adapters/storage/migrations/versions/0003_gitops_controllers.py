"""GitOps controllers: events seen, what each object applied, failed reconciliations, image builds;
who applied a change and the dry commit a hydrated one renders; failures, application commits
and hydrated commits on suspects.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from bot.adapters.storage.tables import UtcDateTime, json_type

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("changes", sa.Column("applied_by", sa.String(300)))
    op.add_column("changes", sa.Column("dry_sha", sa.String(64)))
    op.add_column("suspects", sa.Column("applied_by", sa.String(300)))
    op.add_column("suspects", sa.Column("failed", sa.Text))
    op.add_column("suspects", sa.Column("code", json_type()))
    op.add_column("suspects", sa.Column("code_note", sa.Text))
    op.add_column("suspects", sa.Column("hydrated", sa.String(200)))
    op.create_table(
        "controller_events",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("object_id", sa.String(600), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("reason", sa.String(100), nullable=False),
        sa.Column("revision", sa.String(300), nullable=False),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.Column("received_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_controller_events"),
    )
    op.create_table(
        "gitops_objects",
        sa.Column("object_id", sa.String(600), nullable=False),
        sa.Column("label", sa.String(700), nullable=False),
        sa.Column("repo", sa.String(100)),
        sa.Column("applied_sha", sa.String(64)),
        sa.Column("applied_at", UtcDateTime),
        sa.Column("good_sha", sa.String(64)),
        sa.PrimaryKeyConstraint("object_id", name="pk_gitops_objects"),
    )
    op.create_table(
        "reconcile_failures",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("object_id", sa.String(600), nullable=False),
        sa.Column("label", sa.String(700), nullable=False),
        sa.Column("repo", sa.String(100)),
        sa.Column("revision", sa.String(300), nullable=False),
        sa.Column("shas", json_type(), nullable=False),
        sa.Column("reason", sa.String(100), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.Column("resolved_at", UtcDateTime),
        sa.PrimaryKeyConstraint("id", name="pk_reconcile_failures"),
    )
    op.create_index("ix_reconcile_failures_object", "reconcile_failures", ["object_id", "id"])
    op.create_index("ix_reconcile_failures_at", "reconcile_failures", ["at"])
    op.create_table(
        "image_builds",
        sa.Column("image", sa.String(500), nullable=False),
        sa.Column("tag", sa.String(200), nullable=False),
        sa.Column("repo", sa.String(100), nullable=False),
        sa.Column("sha", sa.String(64), nullable=False),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("image", "tag", name="pk_image_builds"),
    )


def downgrade() -> None:
    op.drop_table("image_builds")
    op.drop_index("ix_reconcile_failures_at", table_name="reconcile_failures")
    op.drop_index("ix_reconcile_failures_object", table_name="reconcile_failures")
    op.drop_table("reconcile_failures")
    op.drop_table("gitops_objects")
    op.drop_table("controller_events")
    op.drop_column("suspects", "hydrated")
    op.drop_column("suspects", "code_note")
    op.drop_column("suspects", "code")
    op.drop_column("suspects", "failed")
    op.drop_column("suspects", "applied_by")
    op.drop_column("changes", "dry_sha")
    op.drop_column("changes", "applied_by")
