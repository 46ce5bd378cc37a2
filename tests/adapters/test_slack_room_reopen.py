"""An incident reopened after its channel was archived, against the fake Slack Web API over HTTP:
the channel is unarchived (`conversations.unarchive`, the bot token), its people invited again and
the card delivered there again; where Slack refuses the unarchive (a missing scope), a new channel
with a suffix takes its place and the timeline says why."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.domain.models import Actor, IncidentStatus
from bot.services.incidents import change_status
from tests.adapters.test_slack_rooms import OWNER, Parts, build, cards, open_incident
from tests.conftest import Clock
from tests.fakes.slack import FakeSlack

ROOM = "inc-1-checkout"


@pytest.fixture
def slack(clock: Clock) -> Iterator[FakeSlack]:
    with FakeSlack(clock=clock).serving() as fake:
        yield fake


def archived_room(slack: FakeSlack, clock: Clock) -> Parts:
    """INC-1 with its own channel, resolved, and the channel archived `archive_after` (1 h) later."""
    parts = build(slack, clock, archive_after=timedelta(hours=1))
    open_incident(parts, clock)
    parts.deliver.drain()
    set_status(parts, IncidentStatus.RESOLVED, clock)
    clock.now += timedelta(hours=1, minutes=1)
    for _ in range(2):
        clock.now += timedelta(seconds=6)
        parts.deliver.drain()
    assert slack.channels[ROOM] in slack.archived
    return parts


def set_status(parts: Parts, target: IncidentStatus, clock: Clock) -> None:
    change_status(store=parts.store, incident_id=1, target=target, actor=Actor.USER, actor_id=OWNER, now=clock())


def reopen(parts: Parts, clock: Clock) -> None:
    """Reopened by a person a day later; the delivery drains as the scheduler would."""
    clock.now += timedelta(days=1)
    set_status(parts, IncidentStatus.OPEN, clock)
    for _ in range(3):
        clock.now += timedelta(seconds=3)
        parts.deliver.drain()


def events(parts: Parts, kind: str) -> list[str]:
    return [e.text for e in parts.store.state.events.values() if e.kind == kind]


def test_the_fake_unarchives_as_slack_documents(slack: FakeSlack) -> None:
    """`not_archived` for a channel that is not, `channel_not_found` for one that does not exist."""
    client = WebClient(token="xoxb-test", base_url=f"{slack.base_url}/api/")
    made = client.conversations_create(name="inc-9-x")["channel"]["id"]
    for channel, error in ((made, "not_archived"), ("C0NOTHERE", "channel_not_found")):
        with pytest.raises(SlackApiError, match=error):
            client.conversations_unarchive(channel=channel)
    client.conversations_archive(channel=made)
    assert client.conversations_unarchive(channel=made)["ok"]
    assert made not in slack.archived


def test_a_reopened_incident_unarchives_its_channel_and_the_card_goes_there_again(
        slack: FakeSlack, clock: Clock) -> None:
    """conversations.unarchive on the archived channel; its people invited again; the card updated
    there (no longer dropped), the thread carries the reopen and the channel shows it (a broadcast
    reply); the timeline says the channel is back."""
    parts = archived_room(slack, clock)
    room = slack.channels[ROOM]
    [card] = cards(slack)
    invites_before = len(slack.called("conversations.invite"))
    reopen(parts, clock)
    assert [c["channel"] for c in slack.called("conversations.unarchive")] == [room]
    assert room not in slack.archived
    assert len(slack.called("conversations.invite")) > invites_before, "invited again"
    assert [c["name"] for c in slack.called("conversations.create")] == [ROOM]
    [back] = events(parts, "room.unarchived")
    assert f"#{ROOM}" in back
    [message] = [m for m in slack.history[room] if m.get("metadata", {}).get("event_type") == "backout_incident"]
    unarchived = next(i for i, (name, _) in enumerate(slack.calls) if name == "conversations.unarchive")
    [update] = [args for name, args in slack.calls[unarchived:]
                if name == "chat.update" and (args["channel"], args["ts"]) == (room, message["ts"])]
    assert "backout_resolve" in str(update["blocks"])
    assert "backout_reopen" not in str(update["blocks"])
    replies = slack.threads[(room, message["ts"])]
    assert any("incident.reopened" in reply["text"] for reply in replies)
    [shown] = [reply for reply in replies if "room.unarchived" in reply["text"]]
    assert shown in slack.history[room], "the reopen is broadcast to the channel, not only in the thread"
    assert len(cards(slack)) == 1
    assert card["channel"] == room


def test_an_unarchive_slack_refuses_gives_a_new_channel_and_the_timeline_says_why(
        slack: FakeSlack, clock: Clock) -> None:
    """missing_scope on conversations.unarchive: a channel named with the next suffix is made, the
    card is posted there, the alerts channel points to it, and the timeline names the error."""
    parts = archived_room(slack, clock)
    slack.fail("conversations.unarchive", error="missing_scope")
    reopen(parts, clock)
    assert [c["name"] for c in slack.called("conversations.create")] == [ROOM, f"{ROOM}-1"]
    new = slack.channels[f"{ROOM}-1"]
    assert cards(slack)[-1]["channel"] == new
    [why] = [text for text in events(parts, "room.failed") if "unarchive" in text]
    assert "missing_scope" in why
    assert f"#{ROOM}-1" in why
    pointers = [c for c in slack.called("chat.postMessage") if "backout_room_pointer" in str(c.get("metadata"))]
    assert f"<#{new}>" in pointers[-1]["text"]
    assert pointers[-1]["channel"] == "#inc-checkout"
