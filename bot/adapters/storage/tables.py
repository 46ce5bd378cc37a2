"""The schema. Unique constraints make every write idempotent; Alembic migrations mirror this.
The incidents' own tables are here; tables_chat.py and tables_gitops.py hold the rest, all on the
one `metadata` of schema.py, and are re-exported here so `tables.<name>` names every table."""

from __future__ import annotations

import sqlalchemy as sa

from bot.adapters.storage.schema import ACTIVE, UtcDateTime, json_type, metadata
from bot.adapters.storage.tables_chat import (
    chat_channels,
    chat_marks,
    chat_outbox,
    chat_rooms,
    chat_threads,
    incident_roles,
    pager_deliveries,
    pager_outbox,
)
from bot.adapters.storage.tables_gitops import (
    controller_events,
    drifts,
    gitops_objects,
    held_controller_events,
    image_builds,
    object_revisions,
    reconcile_failures,
)
from bot.adapters.storage.tables_reviews import review_checks

__all__ = [
    "ACTIVE",
    "PENDING",
    "UtcDateTime",
    "actions",
    "alerts",
    "author_notices",
    "change_reverts",
    "changes",
    "chat_channels",
    "chat_marks",
    "chat_outbox",
    "chat_rooms",
    "chat_threads",
    "controller_events",
    "drifts",
    "follow_ups",
    "gitops_objects",
    "held_controller_events",
    "image_builds",
    "incident_roles",
    "incidents",
    "json_type",
    "metadata",
    "object_revisions",
    "pager_deliveries",
    "pager_outbox",
    "probe_states",
    "rankings",
    "reconcile_failures",
    "replicas",
    "repo_heads",
    "review_checks",
    "server_keys",
    "suspects",
    "timeline_events",
    "verdicts",
    "verifications",
]

incidents = sa.Table(
    "incidents",
    metadata,
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
    sa.Column("mitigated_at", UtcDateTime),
    sa.Column("verified_at", UtcDateTime),
    sa.Column("resolved_at", UtcDateTime),
    sa.Column("closed_at", UtcDateTime),
    sa.Column("follows", sa.Integer),
    sa.Index("ix_incidents_group_key", "group_key", "id"),
    sa.Index("ix_incidents_status", "status", "id"),
    # One active incident per grouping key, whatever the number of replicas writing.
    sa.Index(
        "uq_incidents_active_group_key",
        "group_key",
        unique=True,
        sqlite_where=sa.text(ACTIVE),
        postgresql_where=sa.text(ACTIVE),
    ),
)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id"), index=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("starts_at", UtcDateTime, nullable=False),
    sa.Column("ends_at", UtcDateTime),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("labels", json_type(), nullable=False),
    sa.Column("annotations", json_type(), nullable=False),
    sa.Column("generator_url", sa.Text, nullable=False, default=""),
    sa.Column("source", sa.String(40), nullable=False),
    sa.Column("received_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("fingerprint", "starts_at", name="uq_alerts_identity"),
)

timeline_events = sa.Table(
    "timeline_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id"), nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("kind", sa.String(60), nullable=False),
    sa.Column("actor", sa.String(20), nullable=False),
    sa.Column("actor_id", sa.String(200), nullable=False, default=""),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("data", json_type(), nullable=False),
    # Hidden by a later correction (an unpinned message): left out of every reading, never deleted.
    sa.Column("hidden", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Index("ix_timeline_events_incident", "incident_id", "id"),
    sa.Index("ix_timeline_events_kind", "kind", "at"),  # the pager's outbox follows a few kinds
)

# The change log: first-parent commits of each watched branch.
changes = sa.Table(
    "changes",
    metadata,
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
    sa.Column("pr_ref", sa.String(20)),
    sa.Column("image_bump", sa.Boolean, nullable=False),
    # The best known applied time; the commit time while applied_source is commit_time.
    sa.Column("applied_at", UtcDateTime, nullable=False),
    sa.Column("applied_source", sa.String(40), nullable=False),
    sa.Column("applied_by", sa.String(300)),  # the controller object that reported applying it
    sa.Column("dry_sha", sa.String(64)),  # Argo CD source hydrator: the dry commit this one renders
    sa.UniqueConstraint("repo", "sha", name="uq_changes_repo_sha"),
    sa.Index("ix_changes_repo_applied", "repo", "applied_at"),
    sa.Index("ix_changes_sha", "sha"),
)

# Commits on a watched branch (merged branches included) that revert another; `target` may be
# a prefix, as git's "This reverts commit" line or a Backout branch name gives it.
change_reverts = sa.Table(
    "change_reverts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("repo", sa.String(100), nullable=False),
    sa.Column("target", sa.String(64), nullable=False),
    sa.Column("by_sha", sa.String(64), nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("repo", "target", "by_sha", name="uq_change_reverts_repo_target_by"),
)

repo_heads = sa.Table(
    "repo_heads",
    metadata,
    sa.Column("repo", sa.String(100), primary_key=True),
    sa.Column("head_sha", sa.String(64), nullable=False),
    sa.Column("refreshed_at", UtcDateTime, nullable=False),
)

rankings = sa.Table(
    "rankings",
    metadata,
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id"), primary_key=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("confident", sa.Boolean, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("ranked_at", UtcDateTime),
    sa.Column("onset_at", UtcDateTime),
    sa.Column("floor", sa.Float, nullable=False, server_default="0"),  # the evidence floor it was ranked with
    sa.Column("confidence", sa.Float, nullable=False, server_default="0"),  # the best suspect's share
)

suspects = sa.Table(
    "suspects",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id"), nullable=False),
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
    sa.Column("pr_ref", sa.String(20)),
    sa.Column("warnings", json_type(), nullable=False),
    sa.Column("effective", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("reverted_by", sa.String(64)),
    sa.Column("is_revert", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("applied_by", sa.String(300)),
    sa.Column("failed", sa.Text),  # the failed reconciliation that names it
    sa.Column("code", json_type()),  # application commits behind an image bump
    sa.Column("code_note", sa.Text),
    sa.Column("hydrated", sa.String(200)),  # repo@sha of the hydrated commit a dry suspect stands for
    sa.Column("ruled_out", sa.Text),  # a responder's "not this one", described
    sa.UniqueConstraint("incident_id", "repo", "sha", name="uq_suspects_incident_change"),
)

# The comment Backout keeps on a suspect's pull request (playbook `suspects.notify_authors`).
author_notices = sa.Table(
    "author_notices",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id"), nullable=False),
    sa.Column("repo", sa.String(100), nullable=False),
    sa.Column("sha", sa.String(64), nullable=False),
    sa.Column("pr_number", sa.Integer, nullable=False),
    sa.Column("comment_id", sa.BigInteger, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("incident_id", "repo", "sha", name="uq_author_notices_incident_change"),
)

# Work an incident still needs after the delivery that opened or resolved it (investigate it,
# announce it), written in the same transaction: a crash after the 200 leaves it here, and the
# sweep or the next start finishes it. One pending row per incident and kind.
PENDING = "done_at IS NULL"
follow_ups = sa.Table(
    "follow_ups",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id"), nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("claimed_until", UtcDateTime),
    sa.Column("claimed_by", sa.String(100)),  # the holder's replica name and epoch (see `replicas`)
    sa.Column("claimed_epoch", sa.Integer),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text),
    sa.Column("done_at", UtcDateTime),
    sa.Index("uq_follow_ups_pending", "incident_id", "kind", unique=True,
             sqlite_where=sa.text(PENDING), postgresql_where=sa.text(PENDING)),
    sa.Index("ix_follow_ups_done", "done_at", "id"),
)

# What responders said about the cause: a change was (or was not) it, or no change caused it.
verdicts = sa.Table(
    "verdicts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id"), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("repo", sa.String(100)),
    sa.Column("sha", sa.String(64)),
    sa.Column("actor", sa.String(40), nullable=False),
    sa.Column("actor_id", sa.String(200)),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("on_behalf_of", sa.String(100), nullable=False, server_default=""),  # an API caller's `by`
    sa.Index("ix_verdicts_incident", "incident_id", "id"),
)

# Keys Backout makes for itself once and every replica shares (the page links' signing key when
# api.link_secret is unset): the first replica to commit one wins, the others read it.
server_keys = sa.Table(
    "server_keys",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("value", sa.String(200), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

actions = sa.Table(
    "actions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id"), nullable=False),
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
    # one incident branch per repository: the repository is part of the key (0015)
    sa.UniqueConstraint("incident_id", "kind", "repo", "commit_sha", name="uq_actions_idempotency"),
)

# Each serving process's stable name and how many times it has started (its epoch). Claims carry
# both: a process starting again frees at once what its previous run held when it died.
replicas = sa.Table(
    "replicas",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("epoch", sa.Integer, nullable=False),
    sa.Column("started_at", UtcDateTime, nullable=False),
)

# Probe states, so a probe's `for` and its firing alert survive a restart.
probe_states = sa.Table(
    "probe_states",
    metadata,
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("since", UtcDateTime),
    sa.Column("value", sa.Float),
    sa.Column("error", sa.Text, nullable=False),
)

# Watching the key metric after a rollback, one per incident.
verifications = sa.Table(
    "verifications",
    metadata,
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id"), primary_key=True),
    sa.Column("query", sa.Text, nullable=False),
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("healthy_since", UtcDateTime),
    sa.Column("outcome", sa.String(20), nullable=False),
)
