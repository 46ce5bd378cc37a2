"""The tables of what Backout says outside: the Slack outbox, threads, channels, marks and incident
rooms with their roles, and PagerDuty's outbox and inbound deliveries (part of the schema in tables.py)."""

from __future__ import annotations

import sqlalchemy as sa

from bot.adapters.storage.schema import UtcDateTime, json_type, metadata

# The chat outbox: one pending summary (the incident's main message) per incident.
chat_outbox = sa.Table(
    "chat_outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id"), nullable=False),
    sa.Column("channel", sa.String(100)),
    sa.Column("payload", json_type(), nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("not_before", UtcDateTime, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("claimed_by", sa.String(100)),  # while `sending`: the drainer's replica name and epoch
    sa.Column("claimed_epoch", sa.Integer),
    sa.Index("ix_chat_outbox_state", "state", "id"),
)

# Each incident's message in chat, and how far its thread has followed the timeline.
chat_threads = sa.Table(
    "chat_threads",
    metadata,
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id"), primary_key=True),
    sa.Column("channel", sa.String(100), nullable=False),
    sa.Column("ts", sa.String(40), nullable=False),
    sa.Column("last_event_id", sa.Integer, nullable=False),
    # A reply after last_event_id was sent and its answer not recorded (a time-out, a crash): the
    # thread is read before that reply is sent again.
    sa.Column("reply_unconfirmed", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Index("ix_chat_threads_channel", "channel", "ts"),  # which incident a marked message belongs to
)

# Each channel's ID by the name the settings give, from Slack's answer to a post there: the
# methods that read or change a channel (history, replies, updates) take only the ID.
chat_channels = sa.Table(
    "chat_channels",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("channel_id", sa.String(40), nullable=False),
)

# Messages marked in chat (a pin, a reaction with the timeline emoji): one timeline entry per
# message, whichever mark came first; the marks it still has, and whether its entry is hidden.
chat_marks = sa.Table(
    "chat_marks",
    metadata,
    sa.Column("channel", sa.String(40), primary_key=True),
    sa.Column("ts", sa.String(40), primary_key=True),
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id"), nullable=False),
    sa.Column("event_id", sa.Integer, sa.ForeignKey("timeline_events.id"), nullable=False),
    sa.Column("markers", json_type(), nullable=False),
    sa.Column("hidden", sa.Boolean, nullable=False),
)

# An incident's own channel, and the steps the chat outbox still has to take for it.
chat_rooms = sa.Table(
    "chat_rooms",
    metadata,
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id"), primary_key=True),
    sa.Column("private", sa.Boolean, nullable=False),
    sa.Column("requested_at", UtcDateTime, nullable=False),
    sa.Column("requested_by", sa.String(200), nullable=False),
    sa.Column("name", sa.String(80)),
    sa.Column("channel_id", sa.String(40)),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("invites_due", sa.Boolean, nullable=False),
    sa.Column("invited", json_type(), nullable=False),
    sa.Column("pointer_ts", sa.String(40)),
    sa.Column("pointer_unconfirmed", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("not_before", UtcDateTime),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("error", sa.Text),
    sa.Index("ix_chat_rooms_state", "state"),
    sa.Index("ix_chat_rooms_channel_id", "channel_id"),
)

# Who holds each role of an incident (the lead, and the roles a playbook lists).
incident_roles = sa.Table(
    "incident_roles",
    metadata,
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id"), primary_key=True),
    sa.Column("role", sa.String(30), primary_key=True),
    sa.Column("user_id", sa.String(200), nullable=False),
    sa.Column("assigned_at", UtcDateTime, nullable=False),
    sa.Column("assigned_by", sa.String(200), nullable=False),
)

# The pager's outbox: each timeline event of a kind the pager follows, taken once (event_id), with
# what to send (none: nothing) and its delivery; and PagerDuty's webhook events, each once.
pager_outbox = sa.Table(
    "pager_outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id"), nullable=False),
    sa.Column("event_id", sa.Integer, sa.ForeignKey("timeline_events.id"), nullable=False, unique=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("payload", json_type()),
    sa.Column("state", sa.String(20), nullable=False),  # pending, sending, sent, refused, none
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("not_before", UtcDateTime, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Index("ix_pager_outbox_state", "state", "id"),
)
pager_deliveries = sa.Table(
    "pager_deliveries",
    metadata,
    sa.Column("event_id", sa.String(100), primary_key=True),
    sa.Column("received_at", UtcDateTime, nullable=False),
)
