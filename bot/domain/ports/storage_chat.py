"""The storage ports of what Backout says outside: the chat outbox and threads, marked messages,
incident rooms and roles, the pager's outbox (part of the storage ports in storage.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from bot.domain.chat_marks import MarkedMessage
from bot.domain.models import TimelineEvent


@dataclass(frozen=True)
class ChatThread:
    incident_id: int
    channel: str
    ts: str  # `channel` is the channel's ID (Slack's answer to the post), `ts` the message's
    last_event_id: int
    reply_unconfirmed: bool = False  # a reply after last_event_id went out, its answer unrecorded



@dataclass(frozen=True)
class PendingSummary:
    id: int
    incident_id: int
    channel: str | None
    payload: dict[str, Any]
    attempts: int



class ChatRepository(Protocol):
    """The chat outbox: one pending summary per incident, and each thread's cursor on the timeline."""

    def put_summary(self, incident_id: int, channel: str | None, payload: dict[str, Any],
                    *, at: datetime) -> None: ...
    def put_summaries(self, payloads: Mapping[int, dict[str, Any]], *, at: datetime) -> None:
        """`put_summary` for many incidents (in the default channel), in two statements."""
        ...
    def claim_summaries(self, now: datetime, *, until: datetime, limit: int = 20) -> list[PendingSummary]:
        """Take due summaries until `until` (one per incident, none of an incident another drainer
        is sending); each is then finished, or delayed back to pending."""
        ...
    def backlog(self) -> int:
        """Summaries not delivered yet."""
        ...
    def finish_summary(self, summary_id: int) -> None: ...
    def delay_summary(self, summary_id: int, *, until: datetime, error: str) -> None: ...
    def thread(self, incident_id: int) -> ChatThread | None: ...
    def threads_behind(self, limit: int = 20) -> list[ChatThread]: ...
    def save_thread(self, thread: ChatThread) -> None: ...
    def channel_id(self, name: str) -> str | None:
        """The ID Slack gave for the channel of this name, if it ever answered a post there."""
        ...
    def save_channel_id(self, name: str, channel_id: str) -> None: ...
    def incident_by_message(self, channel: str, ts: str) -> int | None:
        """The incident whose message (its card, the start of its thread) is `ts` in `channel` (an ID)."""
        ...
    def has_messages_in(self, channel: str) -> bool:
        """Whether any incident's message is in this channel (by ID)."""
        ...



class ChatMarkRepository(Protocol):
    """Messages marked in chat (pinned, or a reaction) and the timeline entry each became."""

    def get(self, channel: str, ts: str) -> MarkedMessage | None:
        """The marked message, held for this transaction (its marks are about to change)."""
        ...
    def add(self, mark: MarkedMessage) -> None:
        """Record a newly marked message; one per (channel, ts): a second add conflicts."""
        ...
    def save(self, mark: MarkedMessage) -> None: ...



@dataclass(frozen=True)
class Room:
    """An incident's own channel, as the chat outbox drives it: asked for (`channel_id` None), made,
    people invited (`invites_due` when the ranking or the on-call may add some), a pointer in the
    alerts channel, archived a while after the resolution."""

    incident_id: int
    private: bool
    requested_at: datetime
    requested_by: str
    name: str | None = None  # the name being tried or taken (set before the create call)
    channel_id: str | None = None
    state: str = "pending"  # pending (to create), open, archived
    invites_due: bool = True
    invited: tuple[str, ...] = ()  # Slack users invited, and emails looked up (named when no match)
    pointer_ts: str | None = None
    pointer_unconfirmed: bool = False  # a pointer post whose answer may be lost: looked for before posting again
    not_before: datetime | None = None  # paced or failed: not before then
    attempts: int = 0
    error: str | None = None



class RoomRepository(Protocol):
    def get(self, incident_id: int) -> Room | None: ...
    def by_channel(self, channel_id: str) -> Room | None: ...
    def add(self, room: Room) -> bool:
        """Record the room unless the incident has one; True when added."""
        ...
    def save(self, room: Room) -> None: ...
    def due(self, now: datetime, *, resolved_before: datetime | None, limit: int = 20) -> list[Room]:
        """Rooms with a step to take now: to create, to invite into, to point to, or (when
        `resolved_before` is given) open with their incident resolved or closed before it."""
        ...
    def request_invites(self, incident_id: int) -> None:
        """Someone new may belong in the room (a ranking, the on-call): look again. No room: nothing."""
        ...
    def request_invites_many(self, incident_ids: Sequence[int]) -> None:
        """`request_invites` for each, in one statement."""
        ...



class RoleRepository(Protocol):
    def for_incident(self, incident_id: int) -> dict[str, str]:
        """Each role given on the incident and who holds it."""
        ...
    def assign(self, incident_id: int, role: str, user: str, *, at: datetime, by: str) -> str | None:
        """Give the role to `user`; returns who held it before (None: nobody)."""
        ...



@dataclass(frozen=True)
class PendingPage:
    id: int
    incident_id: int
    payload: dict[str, Any]  # Page.to_json()
    attempts: int



class PagerRepository(Protocol):
    """The pager's outbox, filled from the timeline, and PagerDuty's webhook deliveries seen."""

    def unsent_events(self, kinds: Sequence[str], *, since: datetime, limit: int = 100) -> list[TimelineEvent]:
        """Timeline events of these kinds at or after `since` that the outbox has not taken yet,
        oldest first."""
        ...
    def add(self, *, incident_id: int, event_id: int, kind: str, payload: dict[str, Any] | None,
            at: datetime) -> None:
        """Take a timeline event into the outbox: a page to send, or None for nothing to send (it
        is not looked at again). An event already taken is kept as it is."""
        ...
    def triggered(self, incident_id: int) -> bool:
        """Whether a page (trigger) was queued for the incident."""
        ...
    def claim(self, now: datetime, *, until: datetime, limit: int = 20) -> list[PendingPage]:
        """Take due pages until `until`, in order: none of an incident whose earlier page is not
        sent yet (an acknowledgement never overtakes its trigger)."""
        ...
    def finish(self, page_id: int, *, at: datetime) -> None: ...
    def retry(self, page_id: int, *, until: datetime, error: str) -> None: ...
    def refuse(self, page_id: int, *, error: str) -> None:
        """The pager refused it: never sent again."""
        ...
    def backlog(self) -> int:
        """Pages not sent yet."""
        ...
    def first_delivery(self, event_id: str, *, at: datetime) -> bool:
        """Record a PagerDuty webhook event by its id; False when it was recorded before."""
        ...
