"""Messages people mark in an incident's channel (a pin, a reaction with the timeline emoji), which
become timeline entries: the message at its own time, with its author and permalink, once per
message however many marks it gets; the last mark removed hides the entry again. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

PIN = "pin"
TEXT_LIMIT = 3000  # characters of a marked message kept on the timeline (Slack allows 40,000)


def reaction_marker(emoji: str, user: str) -> str:
    """One person's reaction: two people's 📌 are two marks, each removed on its own."""
    return f"reaction:{emoji}:{user}"


def emoji_counts(name: str, wanted: frozenset[str]) -> bool:
    """`pushpin`, or a skin tone of it (`thumbsup::skin-tone-2` is `thumbsup`), is a wanted emoji."""
    return name.split("::", 1)[0] in wanted


@dataclass(frozen=True)
class Mark:
    """Someone marked (or unmarked) the message `ts` in `channel` (an ID)."""

    channel: str
    ts: str
    marker: str  # PIN, or one person's reaction (reaction_marker)
    by: str  # who marked it
    thread_ts: str | None = None  # the thread the message is in, when the event says


@dataclass(frozen=True)
class ChatMessage:
    """A message as people read it: `text` is untrusted and escaped wherever it is shown."""

    channel: str  # the channel's ID
    ts: str
    author: str  # a user's ID (U…), or a bot's name
    text: str
    thread_ts: str | None = None  # the thread it is a reply in
    permalink: str | None = None

    @property
    def at(self) -> datetime | None:
        """The message's own time (its `ts` is seconds since the epoch); None for a malformed ts."""
        return message_time(self.ts)


def message_time(ts: str) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(ts), tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None


@dataclass(frozen=True)
class MarkedMessage:
    """A message on an incident's timeline because people marked it: the marks it still has, and
    whether its entry is hidden (every mark was removed; nothing is deleted)."""

    incident_id: int
    channel: str
    ts: str
    event_id: int  # the timeline entry
    markers: frozenset[str] = field(default_factory=frozenset)
    hidden: bool = False

    def marked(self, marker: str) -> MarkedMessage:
        return MarkedMessage(incident_id=self.incident_id, channel=self.channel, ts=self.ts,
                             event_id=self.event_id, markers=self.markers | {marker}, hidden=False)

    def unmarked(self, marker: str) -> MarkedMessage:
        markers = self.markers - {marker}
        return MarkedMessage(incident_id=self.incident_id, channel=self.channel, ts=self.ts,
                             event_id=self.event_id, markers=markers, hidden=self.hidden or not markers)
