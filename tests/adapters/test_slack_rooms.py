"""A channel per declared incident, against the fake Slack Web API over HTTP: made from the name
template (a suffix on `name_taken`), private when the playbook says so, people invited, a pointer
in the alerts channel, archived a while after the resolution, never made twice."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.web import SlackResponse

from bot.adapters.pagerduty import PagerDutyPager
from bot.adapters.slack.delivery import SlackDelivery
from bot.adapters.slack.notifier import SlackNotifier
from bot.adapters.slack.rooms import SlackRooms
from bot.config import load_playbooks
from bot.domain.changes import AppliedSource
from bot.domain.incidents import IncidentPolicy
from bot.domain.models import Actor, IncidentStatus
from bot.domain.playbooks import Playbook
from bot.domain.ports import Pager
from bot.domain.rooms import RoomPolicy
from bot.domain.suspects import Ranking, RankingStatus, Suspect
from bot.services import card, notify
from bot.services.incidents import add_note, change_status, open_manually
from bot.services.ingest import ingest_delivery
from bot.services.rooms import declare_due, declare_room, invitees
from tests.conftest import PLAYBOOKS, Clock, delivery
from tests.fakes.pagerduty import API_TOKEN, ROUTING_KEY, FakePagerDuty
from tests.fakes.slack import AnswerLost, FakeSlack
from tests.fakes.store import InMemoryStore

OWNER = "U0123ABCD"  # the checkout playbook's owner


@pytest.fixture
def slack(clock: Clock) -> Iterator[FakeSlack]:
    with FakeSlack(clock=clock).serving() as fake:
        yield fake


@dataclass
class Parts:
    store: InMemoryStore
    deliver: SlackDelivery
    notifier: SlackNotifier
    playbooks: list[Playbook]


NO_ROOM_POLICY = RoomPolicy()


def build(slack: FakeSlack, clock: Clock, *, room: RoomPolicy = NO_ROOM_POLICY, client: WebClient | None = None,
          archive_after: timedelta | None = timedelta(days=1), pager: Pager | None = None) -> Parts:
    store = InMemoryStore()
    client = client or WebClient(token="xoxb-test", base_url=f"{slack.base_url}/api/")
    playbooks = [p.model_copy(update={"room": room}) for p in load_playbooks(PLAYBOOKS)]
    by_name = {p.name: p for p in playbooks}

    def channel_for(name: str | None) -> str:
        playbook = by_name.get(name or "")
        return (playbook.chat.channel if playbook and playbook.chat.channel else None) or "#incidents"

    rooms = SlackRooms(store=store, client=client, template="inc-{id}-{service}", archive_after=archive_after,
                       alerts_channel=channel_for,
                       declare=lambda now: declare_due(store=store, playbooks=playbooks, now=now),
                       invitees=lambda number: invitees(store=store, playbooks=playbooks, incident_id=number,
                                                        pager=pager))
    deliver = SlackDelivery(store=store, client=client, clock=clock, channel_for=channel_for, rooms=rooms,
                            describe=lambda number: card.incident_message(store=store, incident_id=number))
    return Parts(store, deliver, SlackNotifier(store=store, kick=lambda: None, clock=clock), playbooks)


def open_incident(parts: Parts, clock: Clock, *, declare: bool = True) -> None:
    ingest_delivery(store=parts.store, delivery=delivery("01"), playbooks=parts.playbooks, policy=IncidentPolicy(),
                    now=clock())
    if declare:
        declare_room(store=parts.store, playbooks=parts.playbooks, incident_id=1, actor=Actor.USER,
                     actor_id="U0DECLARER", now=clock(), reason="opened by U0DECLARER")
    notify.incident_update(store=parts.store, notifier=parts.notifier, incident_id=1, kind="incident.opened")


def cards(slack: FakeSlack) -> list[dict[str, Any]]:
    """The incident messages posted (not thread replies, not pointers)."""
    return [c for c in slack.called("chat.postMessage") if "thread_ts" not in c and "backout_incident" in
            str(c.get("metadata"))]


def kinds(parts: Parts) -> list[str]:
    return [e.kind for e in parts.store.state.events.values()]


def test_a_declared_incident_gets_a_channel_named_by_the_template_with_its_message(slack: FakeSlack,
                                                                                    clock: Clock) -> None:
    """conversations.create from `inc-{id}-{service}`; the incident's message goes there, and one
    line in the alerts channel points to it."""
    parts = build(slack, clock)
    open_incident(parts, clock)
    parts.deliver.drain()
    [create] = slack.called("conversations.create")
    assert create["name"] == "inc-1-checkout"
    assert str(create.get("is_private")).lower() in ("false", "0")
    room = slack.channels["inc-1-checkout"]
    [card] = cards(slack)
    assert card["channel"] == room
    [pointer] = [c for c in slack.called("chat.postMessage") if "backout_room_pointer" in str(c.get("metadata"))]
    assert pointer["channel"] == "#inc-checkout"
    assert f"<#{room}>" in pointer["text"]
    assert "\n" not in pointer["text"]
    assert "room.created" in kinds(parts)


def test_a_name_taken_gets_a_suffix(slack: FakeSlack, clock: Clock) -> None:
    """Someone else's channel has the name: the next name is tried (`-1`), not theirs adopted."""
    slack.channel_id("inc-1-checkout")  # a person made it; Backout did not
    parts = build(slack, clock)
    open_incident(parts, clock)
    parts.deliver.drain()
    assert [c["name"] for c in slack.called("conversations.create")] == ["inc-1-checkout", "inc-1-checkout-1"]
    assert cards(slack)[0]["channel"] == slack.channels["inc-1-checkout-1"]


def test_a_playbook_may_ask_for_a_private_channel(slack: FakeSlack, clock: Clock) -> None:
    """`room.private: true` (security incidents): is_private on conversations.create."""
    parts = build(slack, clock, room=RoomPolicy(private=True))
    open_incident(parts, clock)
    parts.deliver.drain()
    [create] = slack.called("conversations.create")
    assert str(create["is_private"]).lower() in ("true", "1")
    assert slack.made[slack.channels["inc-1-checkout"]]["is_private"] is True


def _ranked(parts: Parts, clock: Clock, *authors: str) -> None:
    suspects = tuple(Suspect(repo="gitops", sha=f"{n}" * 40, subject="change", author=author,
                             applied_at=clock.now - timedelta(minutes=10), applied_source=AppliedSource.COMMIT_TIME,
                             score=0.5, reasons=("recent",)) for n, author in enumerate(authors, start=1))
    ranking = Ranking(status=RankingStatus.RANKED, reason="ranked", suspects=suspects)
    parts.store.run(lambda tx: tx.rankings.save(1, ranking))


@pytest.fixture
def pager(tmp_path: Path) -> Iterator[tuple[FakePagerDuty, PagerDutyPager]]:
    with FakePagerDuty().serving(tmp_path) as fake:
        built = PagerDutyPager(routing_key=ROUTING_KEY, api_token=API_TOKEN, events_url=fake.base_url,
                               api_url=fake.base_url, ca_file=fake.ca_file, timeout=5, max_wait=0.05)
        yield fake, built
        built.close()


def test_responders_the_on_call_and_authors_are_invited_and_the_unmatched_named(
        slack: FakeSlack, clock: Clock, pager: tuple[FakePagerDuty, PagerDutyPager]) -> None:
    """The playbook's responders and owners, who declared it, the on-call (PagerDuty's, for the
    playbook's service) and the suspects' authors (by commit email) are invited; an email with no
    Slack user is named on the timeline, not invited."""
    fake_pd, pagerduty = pager
    fake_pd.services["PCHK123"] = "PEPCHK1"  # the shipped checkout playbook's pagerduty.service_id
    fake_pd.on_call("PEPCHK1", ("On Call", "oncall@example.com", 1), ("Backup", "backup@example.com", 2))
    parts = build(slack, clock, room=RoomPolicy(responders=("U0RESPOND",), invite_authors=True), pager=pagerduty)
    slack.emails |= {"oncall@example.com": "U0ONCALL", "dev@example.com": "U0DEV"}
    open_incident(parts, clock)
    _ranked(parts, clock, "Dev <dev@example.com>", "Ghost <ghost@example.com>")
    parts.deliver.drain()
    room = slack.channels["inc-1-checkout"]
    assert slack.members[room] == {"U0DECLARER", "U0RESPOND", OWNER, "U0ONCALL", "U0DEV"}
    [invited] = [e for e in parts.store.state.events.values() if e.kind == "room.invited"]
    assert "Ghost (ghost@example.com)" in invited.text
    assert "U0DEV" in invited.text
    assert {c["email"] for c in slack.called("users.lookupByEmail")} == {
        "oncall@example.com", "dev@example.com", "ghost@example.com"}


def test_a_new_suspect_author_is_invited_later_and_nobody_twice(slack: FakeSlack, clock: Clock) -> None:
    """The ranking comes after the channel: its authors are invited then; earlier guests are not
    invited (nor looked up) again."""
    parts = build(slack, clock, room=RoomPolicy(invite_authors=True))
    slack.emails["dev@example.com"] = "U0DEV"
    open_incident(parts, clock)
    parts.deliver.drain()
    _ranked(parts, clock, "Dev <dev@example.com>")
    notify.incident_update(store=parts.store, notifier=parts.notifier, incident_id=1, kind="suspects.changed")
    clock.now += timedelta(seconds=5)
    parts.deliver.drain()
    invites = slack.called("conversations.invite")
    assert [c["users"] for c in invites] == [f"U0DECLARER,{OWNER}", "U0DEV"]
    assert len(slack.called("users.lookupByEmail")) == 1


def test_the_channel_is_archived_the_configured_time_after_the_resolution(slack: FakeSlack, clock: Clock) -> None:
    """Not before `archive_after` has passed since the resolution (the test's clock moves), then once."""
    parts = build(slack, clock, archive_after=timedelta(hours=2))
    open_incident(parts, clock)
    parts.deliver.drain()
    change_status(store=parts.store, incident_id=1, target=IncidentStatus.RESOLVED, actor=Actor.USER,
                  actor_id=OWNER, now=clock())
    clock.now += timedelta(hours=1, minutes=59)
    parts.deliver.drain()
    assert slack.called("conversations.archive") == []
    clock.now += timedelta(minutes=1)
    parts.deliver.drain()
    clock.now += timedelta(minutes=1)
    parts.deliver.drain()
    assert [c["channel"] for c in slack.called("conversations.archive")] == [slack.channels["inc-1-checkout"]]
    assert "room.archived" in kinds(parts)


def test_the_archive_waits_for_the_thread_and_nothing_is_sent_there_after(slack: FakeSlack, clock: Clock) -> None:
    """Due at once (`archive_after: 0s`): the thread first carries the resolution, then the channel
    is archived; a later note stays on the timeline and nothing more goes to the archived channel."""
    parts = build(slack, clock, archive_after=timedelta(0))
    open_incident(parts, clock)
    parts.deliver.drain()
    change_status(store=parts.store, incident_id=1, target=IncidentStatus.RESOLVED, actor=Actor.USER,
                  actor_id=OWNER, now=clock())
    for _ in range(3):
        clock.now += timedelta(seconds=6)
        parts.deliver.drain()
    room = slack.channels["inc-1-checkout"]
    archived = next(i for i, (name, _) in enumerate(slack.calls) if name == "conversations.archive")
    resolved = next(i for i, (name, args) in enumerate(slack.calls)
                    if name == "chat.postMessage" and "incident.resolved" in str(args.get("text")))
    assert resolved < archived
    add_note(store=parts.store, incident_id=1, text="review on Monday", actor=Actor.USER, actor_id=OWNER,
             now=clock())
    clock.now += timedelta(seconds=6)
    parts.deliver.drain()
    assert [name for name, args in slack.calls[archived + 1:] if args.get("channel") == room] == []


class CreateAnswerLost(WebClient):
    """Slack makes the channel, then its answer never arrives (a time-out; a crash looks the same)."""

    def conversations_create(self, **kwargs: Any) -> SlackResponse:
        super().conversations_create(**kwargs)
        raise TimeoutError("The read operation timed out")


def test_a_create_whose_answer_was_lost_does_not_make_a_second_channel(slack: FakeSlack, clock: Clock) -> None:
    """The next attempt meets `name_taken`, finds the channel Backout made after the request and
    adopts it: one channel, and the message goes there."""
    parts = build(slack, clock, client=CreateAnswerLost(token="xoxb-test", base_url=f"{slack.base_url}/api/"))
    open_incident(parts, clock)
    parts.deliver.drain()
    assert cards(slack) == [], "the message waits for its channel"
    clock.now += timedelta(minutes=1)
    parts.deliver.drain()
    assert [c["name"] for c in slack.called("conversations.create")] == ["inc-1-checkout", "inc-1-checkout"]
    assert list(slack.made) == [slack.channels["inc-1-checkout"]]
    assert cards(slack)[0]["channel"] == slack.channels["inc-1-checkout"]


def test_ratelimited_waits_for_retry_after(slack: FakeSlack, clock: Clock) -> None:
    """A 429 on conversations.create: nothing is made nor posted until Retry-After has passed."""
    slack.fail("conversations.create", status=429, retry_after=30)
    parts = build(slack, clock)
    open_incident(parts, clock)
    parts.deliver.drain()
    clock.now += timedelta(seconds=29)
    parts.deliver.drain()
    assert len(slack.called("conversations.create")) == 1
    assert cards(slack) == []
    clock.now += timedelta(seconds=2)
    parts.deliver.drain()
    assert len(slack.called("conversations.create")) == 2
    assert cards(slack)[0]["channel"] == slack.channels["inc-1-checkout"]


def test_creates_keep_to_their_tier(slack: FakeSlack, clock: Clock) -> None:
    """Tier 2 (about 20 a minute): of eight rooms asked at once, a burst is made now, the rest paced."""
    parts = build(slack, clock)
    for number in range(8):
        incident = open_manually(store=parts.store, title=f"outage {number}", service="checkout", playbook=None,
                                 actor_id="U0X", now=clock())
        declare_room(store=parts.store, playbooks=parts.playbooks, incident_id=incident.id or 0, actor=Actor.USER,
                     actor_id="U0X", now=clock(), reason="test")
    parts.deliver.drain()
    assert len(slack.called("conversations.create")) == 3
    for _ in range(10):
        clock.now += timedelta(seconds=3)
        parts.deliver.drain()
    assert len(slack.called("conversations.create")) == 8


def test_a_refused_channel_says_why_and_the_message_goes_to_the_alerts_channel(slack: FakeSlack,
                                                                                clock: Clock) -> None:
    """missing_scope: the timeline says what to grant, and the incident is announced where it
    would be without a channel."""
    slack.fail("conversations.create", error="missing_scope")
    parts = build(slack, clock)
    open_incident(parts, clock)
    parts.deliver.drain()
    clock.now += timedelta(seconds=3)
    parts.deliver.drain()
    [failed] = [e for e in parts.store.state.events.values() if e.kind == "room.failed"]
    assert "channels:manage" in failed.text
    assert cards(slack)[0]["channel"] == "#inc-checkout"


def test_severity_at_the_playbook_threshold_declares_and_the_message_moves_in(slack: FakeSlack,
                                                                             clock: Clock) -> None:
    """`room.declare_at: critical`: the critical incident's channel is made without anyone asking;
    a message already in the alerts channel becomes the pointer and the message is posted in the room."""
    parts = build(slack, clock, room=RoomPolicy(declare_at="critical"))
    parts.playbooks[:] = [p.model_copy(update={"room": RoomPolicy()}) for p in parts.playbooks]
    open_incident(parts, clock, declare=False)
    parts.deliver.drain()
    assert cards(slack)[0]["channel"] == "#inc-checkout"
    assert slack.called("conversations.create") == []
    parts.playbooks[:] = [p.model_copy(update={"room": RoomPolicy(declare_at="critical")}) for p in parts.playbooks]
    clock.now += timedelta(seconds=3)
    parts.deliver.drain()
    room = slack.channels["inc-1-checkout"]
    [pointer] = [c for c in slack.called("chat.update") if "its own channel" in c["text"]]
    assert pointer["channel"] == slack.channels["inc-checkout"]  # the message that was there
    assert cards(slack)[-1]["channel"] == room
    assert "room.declared" in kinds(parts)


@pytest.mark.parametrize("status", [None, 503], ids=["timed out", "5xx"])
def test_a_pointer_whose_answer_was_lost_is_found_not_posted_again(slack: FakeSlack, clock: Clock,
                                                                   status: int | None) -> None:
    """Slack posts the pointer in the alerts channel, then its answer is lost (a time-out, or a
    5xx after the post): the next attempt finds it by its metadata in the channel's history
    (conversations.history, by the channel's ID) instead of posting a second one."""
    lost = AnswerLost(replies=False, event_type="backout_room_pointer", status=status, token="xoxb-test",
                      base_url=f"{slack.base_url}/api/")
    parts = build(slack, clock, client=lost)
    open_incident(parts, clock)
    parts.deliver.drain()
    for _ in range(2):
        clock.now += timedelta(minutes=1)
        parts.deliver.drain()
    alerts = slack.channels["inc-checkout"]
    pointers = [m for m in slack.history[alerts] if "backout_room_pointer" in str(m.get("metadata"))]
    assert len(pointers) == 1
    assert parts.store.state.rooms[1].pointer_ts == pointers[0]["ts"]
    assert {c["channel"] for c in slack.called("conversations.history")} == {alerts}
