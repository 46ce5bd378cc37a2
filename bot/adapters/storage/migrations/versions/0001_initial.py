"""The initial schema: incidents, alerts, timeline, changes, rankings, suspects, actions.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from bot.adapters.storage.tables import UtcDateTime, json_type

ACTIVE = "status IN ('open', 'acknowledged', 'mitigating')"  # as this revision made it; see 0006

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("group_key", sa.String(512), nullable=False),
        sa.Column("title", sa.String(400), nullable=False),
        sa.Column("service", sa.String(200), nullable=False),
        sa.Column("severity", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("playbook", sa.String(100)),
        sa.Column("started_at", UtcDateTime, nullable=False),
        sa.Column("opened_at", UtcDateTime, nullable=False),
        sa.Column("acknowledged_at", UtcDateTime),
        sa.Column("mitigating_at", UtcDateTime),
        sa.Column("resolved_at", UtcDateTime),
        sa.Column("closed_at", UtcDateTime),
        sa.PrimaryKeyConstraint("id", name="pk_incidents"),
    )
    op.create_index("ix_incidents_group_key", "incidents", ["group_key", "id"])
    op.create_index("ix_incidents_status", "incidents", ["status", "id"])
    op.create_index(
        "uq_incidents_active_group_key", "incidents", ["group_key"], unique=True,
        sqlite_where=sa.text(ACTIVE), postgresql_where=sa.text(ACTIVE),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("incident_id", sa.Integer,
                  sa.ForeignKey("incidents.id", name="fk_alerts_incident_id")),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("starts_at", UtcDateTime, nullable=False),
        sa.Column("ends_at", UtcDateTime),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("labels", json_type(), nullable=False),
        sa.Column("annotations", json_type(), nullable=False),
        sa.Column("generator_url", sa.Text, nullable=False),
        sa.Column("source", sa.String(40), nullable=False),
        sa.Column("received_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
        sa.UniqueConstraint("fingerprint", "starts_at", name="uq_alerts_identity"),
    )
    op.create_index("ix_alerts_incident_id", "alerts", ["incident_id"])
    op.create_table(
        "timeline_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("incident_id", sa.Integer,
                  sa.ForeignKey("incidents.id", name="fk_timeline_events_incident_id"),
                  nullable=False),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.Column("kind", sa.String(60), nullable=False),
        sa.Column("actor", sa.String(20), nullable=False),
        sa.Column("actor_id", sa.String(200), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("data", json_type(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_timeline_events"),
    )
    op.create_index("ix_timeline_events_incident", "timeline_events", ["incident_id", "id"])
    op.create_table(
        "changes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("repo", sa.String(100), nullable=False),
        sa.Column("sha", sa.String(64), nullable=False),
        sa.Column("parents", json_type(), nullable=False),
        sa.Column("author", sa.String(300), nullable=False),
        sa.Column("committed_at", UtcDateTime, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("files", json_type(), nullable=False),
        sa.Column("additions", sa.Integer, nullable=False),
        sa.Column("deletions", sa.Integer, nullable=False),
        sa.Column("pr_number", sa.Integer),
        sa.Column("image_bump", sa.Boolean, nullable=False),
        sa.Column("applied_at", UtcDateTime, nullable=False),
        sa.Column("applied_source", sa.String(40), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_changes"),
        sa.UniqueConstraint("repo", "sha", name="uq_changes_repo_sha"),
    )
    op.create_index("ix_changes_repo_applied", "changes", ["repo", "applied_at"])
    op.create_index("ix_changes_sha", "changes", ["sha"])
    op.create_table(
        "repo_heads",
        sa.Column("repo", sa.String(100), nullable=False),
        sa.Column("head_sha", sa.String(64), nullable=False),
        sa.Column("refreshed_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("repo", name="pk_repo_heads"),
    )
    op.create_table(
        "rankings",
        sa.Column("incident_id", sa.Integer,
                  sa.ForeignKey("incidents.id", name="fk_rankings_incident_id"), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("confident", sa.Boolean, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("ranked_at", UtcDateTime),
        sa.PrimaryKeyConstraint("incident_id", name="pk_rankings"),
    )
    op.create_table(
        "suspects",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("incident_id", sa.Integer,
                  sa.ForeignKey("incidents.id", name="fk_suspects_incident_id"), nullable=False),
        sa.Column("rank", sa.Integer, nullable=False),
        sa.Column("repo", sa.String(100), nullable=False),
        sa.Column("sha", sa.String(64), nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("author", sa.String(300), nullable=False),
        sa.Column("applied_at", UtcDateTime, nullable=False),
        sa.Column("applied_source", sa.String(40), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("reasons", json_type(), nullable=False),
        sa.Column("pr_number", sa.Integer),
        sa.Column("warnings", json_type(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_suspects"),
        sa.UniqueConstraint("incident_id", "repo", "sha", name="uq_suspects_incident_change"),
    )
    op.create_table(
        "actions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("incident_id", sa.Integer,
                  sa.ForeignKey("incidents.id", name="fk_actions_incident_id"), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("repo", sa.String(100), nullable=False),
        sa.Column("commit_sha", sa.String(64), nullable=False),
        sa.Column("state", sa.String(40), nullable=False),
        sa.Column("branch", sa.String(300), nullable=False),
        sa.Column("url", sa.Text),
        sa.Column("auto", sa.Boolean, nullable=False),
        sa.Column("actor_id", sa.String(200), nullable=False),
        sa.Column("detail", json_type(), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_actions"),
        sa.UniqueConstraint("incident_id", "kind", "commit_sha", name="uq_actions_idempotency"),
    )
    op.create_table(
        "chat_outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("incident_id", sa.Integer,
                  sa.ForeignKey("incidents.id", name="fk_chat_outbox_incident_id"), nullable=False),
        sa.Column("channel", sa.String(100)),
        sa.Column("payload", json_type(), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("not_before", UtcDateTime, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_chat_outbox"),
    )
    op.create_index("ix_chat_outbox_state", "chat_outbox", ["state", "id"])
    op.create_table(
        "chat_threads",
        sa.Column("incident_id", sa.Integer,
                  sa.ForeignKey("incidents.id", name="fk_chat_threads_incident_id"), nullable=False),
        sa.Column("channel", sa.String(100), nullable=False),
        sa.Column("ts", sa.String(40), nullable=False),
        sa.Column("last_event_id", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("incident_id", name="pk_chat_threads"),
    )
    op.create_table(
        "probe_states",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("since", UtcDateTime),
        sa.Column("value", sa.Float),
        sa.Column("error", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_probe_states"),
    )
    op.create_table(
        "verifications",
        sa.Column("incident_id", sa.Integer,
                  sa.ForeignKey("incidents.id", name="fk_verifications_incident_id"), nullable=False),
        sa.Column("query", sa.Text, nullable=False),
        sa.Column("started_at", UtcDateTime, nullable=False),
        sa.Column("healthy_since", UtcDateTime),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.PrimaryKeyConstraint("incident_id", name="pk_verifications"),
    )


def downgrade() -> None:
    for table in ("verifications", "probe_states", "chat_threads", "chat_outbox", "actions", "suspects",
                  "rankings", "repo_heads", "changes", "timeline_events", "alerts", "incidents"):
        op.drop_table(table)
