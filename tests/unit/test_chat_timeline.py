"""The chat-timeline service over the in-memory store and a fake of the ChatMessages port: which
messages count, once per message, each person's mark on its own, and corrections."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from bot.domain.chat_marks import PIN, ChatMessage, Mark, reaction_marker
from bot.domain.models import Actor, Incident, IncidentStatus, Severity
from bot.domain.ports import ChatThread
from bot.services.chat_timeline import ChatTimeline
from tests.conftest import Clock
from tests.fakes.store import InMemoryStore

CHANNEL, CARD = "C0INCIDENTS", "1795299660.000001"
REPLY = "1795299700.000100"


@dataclass
class FakeMessages:
    messages: dict[str, ChatMessage] = field(default_factory=dict)
    reads: list[str] = field(default_factory=list)
    link: str | None = "https://acme.slack.com/archives/C0INCIDENTS/p1795299700000100"

    def message(self, channel: str, ts: str) -> ChatMessage | None:
        self.reads.append(f"message {ts}")
        return self.messages.get(ts)

    def permalink(self, channel: str, ts: str) -> str | None:
        self.reads.append(f"permalink {ts}")
        return self.link


@pytest.fixture
def store(clock: Clock) -> InMemoryStore:
    store = InMemoryStore()

    def seed(tx):  # type: ignore[no-untyped-def]
        tx.incidents.add(Incident(group_key="k", title="checkout errors", service="checkout", playbook=None,
                                  severity=Severity.ERROR,
                                  status=IncidentStatus.OPEN, opened_at=clock.now, started_at=clock.now))
        tx.chat.save_thread(ChatThread(incident_id=1, channel=CHANNEL, ts=CARD, last_event_id=0))

    store.run(seed)
    return store


@pytest.fixture
def messages() -> FakeMessages:
    return FakeMessages({REPLY: ChatMessage(channel=CHANNEL, ts=REPLY, author="U1", text="failover done",
                                            thread_ts=CARD)})


def service(store: InMemoryStore, messages: FakeMessages, clock: Clock) -> ChatTimeline:
    return ChatTimeline(store=store, messages=messages, clock=clock)


def pinned(store: InMemoryStore) -> list[str]:
    return [e.text for e in store.run(lambda tx: tx.timeline.for_incident(1)) if e.kind == "chat.pinned"]


def test_two_peoples_pushpins_are_two_marks(store: InMemoryStore, messages: FakeMessages, clock: Clock) -> None:
    """Two people's 📌: one entry; one removed keeps it; both removed hides it, once."""
    chat = service(store, messages, clock)
    first, second = (Mark(channel=CHANNEL, ts=REPLY, marker=reaction_marker("pushpin", user), by=user)
                     for user in ("U1", "U2"))
    assert chat.marked(first) == chat.marked(second)
    assert pinned(store) == ["failover done"]
    assert chat.unmarked(first) is None
    assert pinned(store) == ["failover done"]
    assert chat.unmarked(second) is not None
    assert chat.unmarked(second) is None, "a second removal of the same mark corrects nothing"
    assert pinned(store) == []
    corrections = [e for e in store.run(lambda tx: tx.timeline.for_incident(1)) if e.kind == "chat.unpinned"]
    assert [(e.actor, e.actor_id) for e in corrections] == [(Actor.USER, "U2")]


def test_what_belongs_to_no_incident_costs_no_read(store: InMemoryStore, messages: FakeMessages,
                                                   clock: Clock) -> None:
    """A channel with no incident's message: nothing is read, nothing added. A message in the
    incident's channel but in no incident's thread: read once (to learn its thread), not added."""
    chat = service(store, messages, clock)
    assert chat.marked(Mark(channel="C0ELSEWHERE", ts=REPLY, marker=PIN, by="U2")) is None
    assert messages.reads == []
    messages.messages["1795299800.000001"] = ChatMessage(channel=CHANNEL, ts="1795299800.000001", author="U1",
                                                         text="lunch?")
    assert chat.marked(Mark(channel=CHANNEL, ts="1795299800.000001", marker=PIN, by="U2")) is None
    assert messages.reads == ["message 1795299800.000001"]
    assert pinned(store) == []


def test_an_unreadable_message_adds_nothing_and_a_missing_link_is_kept_out(
        store: InMemoryStore, messages: FakeMessages, clock: Clock) -> None:
    """The message cannot be read: no entry (a later mark tries again). No permalink to be had:
    the entry is added without one."""
    chat = service(store, messages, clock)
    gone = Mark(channel=CHANNEL, ts="1795299900.000001", marker=PIN, by="U2", thread_ts=CARD)
    assert chat.marked(gone) is None
    messages.link = None
    assert chat.marked(Mark(channel=CHANNEL, ts=REPLY, marker=PIN, by="U2", thread_ts=CARD)) is not None
    [entry] = [e for e in store.run(lambda tx: tx.timeline.for_incident(1)) if e.kind == "chat.pinned"]
    assert entry.data["permalink"] is None
    assert entry.at.timestamp() == float(REPLY)
