"""Ranking signals: reverts on the branch, the metric's onset, effective and reverted suspects,
responders' verdicts, comments on suspects' pull requests; durable follow-up work.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from bot.adapters.storage.tables import PENDING, UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "change_reverts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("repo", sa.String(100), nullable=False),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("by_sha", sa.String(64), nullable=False),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_change_reverts"),
        sa.UniqueConstraint("repo", "target", "by_sha", name="uq_change_reverts_repo_target_by"),
    )
    op.create_table(
        "verdicts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("incident_id", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("repo", sa.String(100)),
        sa.Column("sha", sa.String(64)),
        sa.Column("actor", sa.String(40), nullable=False),
        sa.Column("actor_id", sa.String(200)),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_verdicts"),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"], name="fk_verdicts_incident_id"),
    )
    op.create_index("ix_verdicts_incident", "verdicts", ["incident_id", "id"])
    op.create_table(
        "author_notices",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("incident_id", sa.Integer, nullable=False),
        sa.Column("repo", sa.String(100), nullable=False),
        sa.Column("sha", sa.String(64), nullable=False),
        sa.Column("pr_number", sa.Integer, nullable=False),
        sa.Column("comment_id", sa.BigInteger, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_author_notices"),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"], name="fk_author_notices_incident_id"),
        sa.UniqueConstraint("incident_id", "repo", "sha", name="uq_author_notices_incident_change"),
    )
    op.create_table(
        "follow_ups",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("incident_id", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("claimed_until", UtcDateTime),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text),
        sa.Column("done_at", UtcDateTime),
        sa.PrimaryKeyConstraint("id", name="pk_follow_ups"),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"], name="fk_follow_ups_incident_id"),
    )
    op.create_index("uq_follow_ups_pending", "follow_ups", ["incident_id", "kind"], unique=True,
                    sqlite_where=sa.text(PENDING), postgresql_where=sa.text(PENDING))
    op.create_index("ix_follow_ups_done", "follow_ups", ["done_at", "id"])
    with op.batch_alter_table("rankings") as batch:
        batch.add_column(sa.Column("onset_at", UtcDateTime))
    with op.batch_alter_table("suspects") as batch:
        batch.add_column(sa.Column("effective", sa.Boolean, nullable=False, server_default=sa.true()))
        batch.add_column(sa.Column("reverted_by", sa.String(64)))
        batch.add_column(sa.Column("is_revert", sa.Boolean, nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("suspects") as batch:
        batch.drop_column("is_revert")
        batch.drop_column("reverted_by")
        batch.drop_column("effective")
    with op.batch_alter_table("rankings") as batch:
        batch.drop_column("onset_at")
    op.drop_index("ix_follow_ups_done", table_name="follow_ups")
    op.drop_index("uq_follow_ups_pending", table_name="follow_ups")
    op.drop_table("follow_ups")
    op.drop_table("author_notices")
    op.drop_index("ix_verdicts_incident", table_name="verdicts")
    op.drop_table("verdicts")
    op.drop_table("change_reverts")
