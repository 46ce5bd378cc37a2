"""A ranking keeps its evidence floor and confidence, and a suspect the responder's "not this one".

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("rankings", sa.Column("floor", sa.Float, nullable=False, server_default="0"))
    op.add_column("rankings", sa.Column("confidence", sa.Float, nullable=False, server_default="0"))
    op.add_column("suspects", sa.Column("ruled_out", sa.Text))


def downgrade() -> None:
    op.drop_column("suspects", "ruled_out")
    op.drop_column("rankings", "confidence")
    op.drop_column("rankings", "floor")
