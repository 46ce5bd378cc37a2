"""The tables of what GitOps controllers report: their events once each, the objects and the revisions
they applied, failed reconciliations, image builds and drift (part of the schema in tables.py)."""

from __future__ import annotations

import sqlalchemy as sa

from bot.adapters.storage.schema import UtcDateTime, json_type, metadata

# GitOps controllers: each event once (Flux and Argo CD may redeliver), what each object last
# applied, the revisions that failed to apply, and which commit built which image tag.
controller_events = sa.Table(
    "controller_events",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("object_id", sa.String(600), nullable=False),
    sa.Column("outcome", sa.String(20), nullable=False),
    sa.Column("reason", sa.String(100), nullable=False),
    sa.Column("revision", sa.String(300), nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("received_at", UtcDateTime, nullable=False),
)
gitops_objects = sa.Table(
    "gitops_objects",
    metadata,
    sa.Column("object_id", sa.String(600), primary_key=True),
    sa.Column("label", sa.String(700), nullable=False),
    sa.Column("repo", sa.String(100)),
    sa.Column("applied_sha", sa.String(64)),
    sa.Column("applied_at", UtcDateTime),
    sa.Column("good_sha", sa.String(64)),  # the last revision that reconciled fully
    sa.Column("path", sa.String(1000)),  # the folder it deploys from, when an event said
)
# When each object applied each change (a rollout's start) and was healthy after: a service's
# applied times come from the objects that deploy it, not from whichever object reported first.
object_revisions = sa.Table(
    "object_revisions",
    metadata,
    sa.Column("object_id", sa.String(600), primary_key=True),
    sa.Column("repo", sa.String(100), primary_key=True),
    sa.Column("sha", sa.String(64), primary_key=True),
    sa.Column("label", sa.String(700), nullable=False),
    sa.Column("applied_at", UtcDateTime, nullable=False),
    sa.Column("healthy_at", UtcDateTime),
    sa.Index("ix_object_revisions_repo_applied", "repo", "applied_at"),
    sa.Index("ix_object_revisions_repo_sha", "repo", "sha"),
)
reconcile_failures = sa.Table(
    "reconcile_failures",
    metadata,
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
    sa.Index("ix_reconcile_failures_object", "object_id", "id"),
    sa.Index("ix_reconcile_failures_at", "at"),
)
image_builds = sa.Table(
    "image_builds",
    metadata,
    sa.Column("image", sa.String(500), primary_key=True),
    sa.Column("tag", sa.String(200), primary_key=True),
    sa.Column("repo", sa.String(100), nullable=False),
    sa.Column("sha", sa.String(64), nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
)
# Out-of-band changes (drift) the controllers reported: each once (the event's key), with the objects
# and fields they name, the window it happened in, and what became of it.
drifts = sa.Table(
    "drifts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(64), nullable=False, unique=True),
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
    sa.Index("ix_drifts_detected_at", "detected_at"),
    sa.Index("ix_drifts_object", "object_id", "id"),
)
# Controller events answered 202 while their revision was still being fetched: each kept (by its
# key) until it is recorded, so a restart or another replica finishes what a fetch left waiting.
held_controller_events = sa.Table(
    "held_controller_events",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("event", json_type(), nullable=False),
    sa.Column("held_at", UtcDateTime, nullable=False),
    sa.Column("claimed_until", UtcDateTime),
    sa.Column("claimed_by", sa.String(100)),  # the holder's replica name and epoch (see `replicas`)
    sa.Column("claimed_epoch", sa.Integer),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("note", sa.Text, nullable=False, server_default=""),
    sa.Index("ix_held_controller_events_held_at", "held_at"),
)
