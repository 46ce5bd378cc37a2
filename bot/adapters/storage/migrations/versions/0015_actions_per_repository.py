"""An action is one per repository: the incident branch is cut in every repository of the
playbook, so the idempotency key (incident, kind, commit) gains the repository.

Revision ID: 0015
Revises: 0014
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite changes a constraint by copying the table
    with op.batch_alter_table("actions") as batch:
        batch.drop_constraint("uq_actions_idempotency", type_="unique")
        batch.create_unique_constraint("uq_actions_idempotency", ["incident_id", "kind", "repo", "commit_sha"])


def downgrade() -> None:
    with op.batch_alter_table("actions") as batch:
        batch.drop_constraint("uq_actions_idempotency", type_="unique")
        batch.create_unique_constraint("uq_actions_idempotency", ["incident_id", "kind", "commit_sha"])
