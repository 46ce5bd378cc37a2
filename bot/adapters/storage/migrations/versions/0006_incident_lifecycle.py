"""The incident's whole life: mitigated and verified are states (and active: a new alert joins
them), each stamped; a new incident may say which resolved one it follows.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

from bot.adapters.storage.tables import UtcDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

ACTIVE = "status IN ('open', 'acknowledged', 'mitigating', 'mitigated', 'verified')"
ACTIVE_BEFORE = "status IN ('open', 'acknowledged', 'mitigating')"


def upgrade() -> None:
    op.add_column("incidents", sa.Column("mitigated_at", UtcDateTime))
    op.add_column("incidents", sa.Column("verified_at", UtcDateTime))
    op.add_column("incidents", sa.Column("follows", sa.Integer))
    # Before, mitigating was stamped when the revert merged or the metric recovered: mitigated now.
    op.execute("UPDATE incidents SET mitigated_at = mitigating_at")
    op.execute("UPDATE incidents SET status = 'mitigated' WHERE status = 'mitigating'")
    _active_index(ACTIVE)


def downgrade() -> None:
    # Mitigated and verified incidents were mitigating before these states existed.
    op.execute("UPDATE incidents SET status = 'mitigating' WHERE status IN ('mitigated', 'verified')")
    _active_index(ACTIVE_BEFORE)
    op.drop_column("incidents", "follows")
    op.drop_column("incidents", "verified_at")
    op.drop_column("incidents", "mitigated_at")


def _active_index(where: str) -> None:
    """One active incident per grouping key, over the states that count as active."""
    op.drop_index("uq_incidents_active_group_key", table_name="incidents")
    op.create_index("uq_incidents_active_group_key", "incidents", ["group_key"], unique=True,
                    sqlite_where=sa.text(where), postgresql_where=sa.text(where))
