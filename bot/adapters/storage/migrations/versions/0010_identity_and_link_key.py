"""Who acted for whom: a verdict keeps the `by` an API caller gave ("on behalf of"); and the key
that signs page links when api.link_secret is unset, made once and shared by every replica.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

from bot.adapters.storage.tables import UtcDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("verdicts", sa.Column("on_behalf_of", sa.String(100), nullable=False, server_default=""))
    op.create_table(
        "server_keys",
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("value", sa.String(200), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_server_keys"),
    )


def downgrade() -> None:
    op.drop_table("server_keys")
    op.drop_column("verdicts", "on_behalf_of")
