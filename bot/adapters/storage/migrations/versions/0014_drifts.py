"""Out-of-band changes (drift) the GitOps controllers reported.

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

from bot.adapters.storage.tables import UtcDateTime, json_type

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "drifts",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("object_id", sa.String(600), nullable=False),
        sa.Column("label", sa.String(700), nullable=False),
        sa.Column("controller", sa.String(20), nullable=False),
        sa.Column("revision", sa.String(300), nullable=False),
        sa.Column("resources", json_type(), nullable=False),
        sa.Column("services", json_type(), nullable=False),
        sa.Column("playbooks", json_type(), nullable=False),
        sa.Column("since", UtcDateTime),
        sa.Column("detected_at", UtcDateTime, nullable=False),
        sa.Column("corrected_at", UtcDateTime),
        sa.Column("correction", sa.String(300), nullable=False),
        sa.Column("sync", sa.String(500)),
        sa.Column("message", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_drifts"),
        sa.UniqueConstraint("key", name="uq_drifts_key"),
    )
    op.create_index("ix_drifts_detected_at", "drifts", ["detected_at"])
    op.create_index("ix_drifts_object", "drifts", ["object_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_drifts_object", table_name="drifts")
    op.drop_index("ix_drifts_detected_at", table_name="drifts")
    op.drop_table("drifts")
