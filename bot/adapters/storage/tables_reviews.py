"""The table of review risk (part of the schema in tables.py): each pull (merge) request head to
assess, once, claimed by one replica at a time, with what was posted for it."""

from __future__ import annotations

import sqlalchemy as sa

from bot.adapters.storage.schema import UtcDateTime, metadata

review_checks = sa.Table(
    "review_checks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("repo", sa.String(100), nullable=False),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("head_sha", sa.String(64), nullable=False),
    sa.Column("base", sa.String(300), nullable=False),
    sa.Column("forge", sa.String(20), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("claimed_until", UtcDateTime),
    sa.Column("claimed_by", sa.String(100)),
    sa.Column("claimed_epoch", sa.Integer),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text),
    sa.Column("done_at", UtcDateTime),
    sa.Column("flagged", sa.Boolean),  # set when done: the head touched what caused incidents
    sa.Column("state", sa.String(20)),  # clean, warn, blocked; dropped (closed first); None: nothing posted
    sa.Column("comment_id", sa.BigInteger),  # the request's one comment (note), once posted
    sa.UniqueConstraint("repo", "number", "head_sha", name="uq_review_checks_head"),
    sa.Index("ix_review_checks_pending", "done_at", "claimed_until"),
)
