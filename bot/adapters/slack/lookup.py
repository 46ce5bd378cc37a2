"""Finding what an earlier attempt posted when Slack's answer was lost (a time-out, a crash between
the post and its record): the incident's message in the channel's history, a reply in its thread,
each by the metadata Backout puts on what it posts. Slack's reads take a channel's ID, never its
name; the ID comes from Slack's answer to a post, or else from the workspace's channel list."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import datetime
from itertools import islice
from typing import Any

import structlog
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse

log = structlog.get_logger(__name__)
METADATA_TYPE = "backout_incident"  # on each incident message, so a lost post is found, not repeated
REPLY_METADATA_TYPE = "backout_thread_reply"  # on each thread reply: which timeline events it carries
CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{2,}")  # C0123ABC; a channel's name is lowercase
PAGE = 200  # Slack's recommended page size for history, replies and channel lists
MAX_PAGES = 50  # 10,000 messages back to the post, or channels: past that, the search gives up


def message_marker(incident_id: int, opened_at: datetime) -> dict[str, Any]:
    """Names the incident's message across deployments sharing a channel (INC-7 of another
    Backout was opened at another instant)."""
    return {"incident": incident_id, "opened_at": opened_at.isoformat()}


def reply_marker(incident_id: int, *, after: int, through: int) -> dict[str, Any]:
    """Names a thread reply by the timeline events it carries: those after `after`, up to `through`."""
    return {"incident": incident_id, "after": after, "through": through}


def find_message(client: WebClient, channel_id: str, marker: dict[str, Any], *, since: datetime,
                 event_type: str = METADATA_TYPE) -> str | None:
    """The ts of the message carrying `marker`, read back through the history to `since` (a
    minute's margin); None when there is none or the history cannot be read (then it is posted)."""
    found = _first(_pages(lambda: client.conversations_history(
        channel=channel_id, oldest=f"{since.timestamp() - 60:.6f}", limit=PAGE, include_all_metadata=True),
        "messages", channel=channel_id), event_type, marker)
    return str(found["ts"]) if found else None


def find_reply(client: WebClient, channel_id: str, thread_ts: str, *, incident_id: int, after: int) -> int | None:
    """The last timeline event a reply after `after` carried, if one went out (conversations.replies)."""
    wanted = {"incident": incident_id, "after": after}
    replies = _pages(lambda: client.conversations_replies(
        channel=channel_id, ts=thread_ts, limit=PAGE, include_all_metadata=True), "messages", channel=channel_id)
    for message in replies:
        meta = message.get("metadata") or {}
        payload = meta.get("event_payload") or {}
        if meta.get("event_type") == REPLY_METADATA_TYPE and {k: payload.get(k) for k in wanted} == wanted:
            return int(payload["through"])
    return None


def channel_id_by_name(client: WebClient, name: str) -> str | None:
    """The channel's ID from the workspace's list (scopes channels:read, groups:read), for when
    no answer of Slack's has named it yet; None when it is not there or cannot be listed."""
    found = channel_by_name(client, name)
    return str(found["id"]) if found else None


def channel_by_name(client: WebClient, name: str) -> dict[str, Any] | None:
    """The channel of this name as the workspace's list gives it (`id`, `creator`, `created`, ...)."""
    wanted = name.removeprefix("#")
    channels = _pages(lambda: client.conversations_list(
        types="public_channel,private_channel", exclude_archived=True, limit=PAGE), "channels", channel=name)
    return next((c for c in channels if c.get("name") == wanted), None)


def _first(messages: Iterable[dict[str, Any]], event_type: str, payload: dict[str, Any]) -> dict[str, Any] | None:
    for message in messages:
        meta = message.get("metadata") or {}
        if meta.get("event_type") == event_type and meta.get("event_payload") == payload:
            return message
    return None


def _pages(first: Callable[[], SlackResponse], key: str, *, channel: str) -> Iterable[dict[str, Any]]:
    """Each item of each page (slack_sdk follows `next_cursor`), at most MAX_PAGES. A refusal that
    waiting will not cure (not_in_channel, missing_scope) ends the items; a 429, Slack's 5xx and
    connection errors are raised, so delivery waits and looks again rather than posting blind."""
    try:
        for page in islice(first(), MAX_PAGES):
            yield from page.get(key, [])
    except SlackApiError as exc:
        if exc.response.status_code == 429 or exc.response.status_code >= 500:
            raise
        log.info("slack.unreadable", channel=channel, error=str(exc.response.get("error", "")))
