"""Slack delivery when Slack's answer is lost (a time-out, a crash between the post and its record):
what went out is found by its metadata, read through the channel's ID, and never posted twice.
The store is SQLite, so what a restart finds is what was written down."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.adapters.slack.delivery import SlackDelivery
from bot.adapters.slack.notifier import SlackNotifier
from bot.adapters.storage import migrate
from bot.adapters.storage.engine import create_engine
from bot.adapters.storage.store import SqlStore
from bot.domain.incidents import IncidentPolicy
from bot.domain.models import Actor, AlertStatus, Delivery, IncidentStatus, ReceivedAlert
from bot.services import card, notify
from bot.services.incidents import change_status
from bot.services.ingest import ingest_delivery
from tests.conftest import Clock
from tests.fakes.slack import CHANNEL_ID, AnswerLost, FakeSlack

CHANNEL = "#incidents"


@pytest.fixture
def slack(clock: Clock) -> Iterator[FakeSlack]:
    with FakeSlack(clock=clock).serving() as fake:
        yield fake


@pytest.fixture
def store(tmp_path: Path) -> SqlStore:
    engine = create_engine(f"sqlite:///{tmp_path / 'backout.db'}")
    migrate.upgrade(engine)
    return SqlStore(engine)


def start(store: SqlStore, slack: FakeSlack, clock: Clock, client: WebClient | None = None) -> SlackDelivery:
    """A delivery as a fresh process starts it: nothing in memory but what the store holds."""
    client = client or WebClient(token="xoxb-test", base_url=f"{slack.base_url}/api/")
    return SlackDelivery(store=store, client=client, clock=clock, channel_for=lambda _: CHANNEL,
                         describe=lambda n: card.incident_message(store=store, incident_id=n))


def losing(slack: FakeSlack, *, replies: bool) -> AnswerLost:
    return AnswerLost(replies=replies, token="xoxb-test", base_url=f"{slack.base_url}/api/")


def open_incident(store: SqlStore, clock: Clock, n: int) -> None:
    alert = ReceivedAlert(fingerprint=f"{n:016x}", starts_at=clock(), ends_at=None, status=AlertStatus.FIRING,
                          labels={"alertname": "Down", "service": f"svc{n}"}, annotations={})
    ingest_delivery(store=store, playbooks=[], policy=IncidentPolicy(), now=clock(),
                    delivery=Delivery(group_key=f"g{n}", status=AlertStatus.FIRING, alerts=(alert,)))
    notifier = SlackNotifier(store=store, kick=lambda: None, clock=clock)
    notify.incident_update(store=store, notifier=notifier, incident_id=n, kind="incident.opened")


def chatter(slack: FakeSlack, count: int) -> None:
    """People talking in the channel: `count` messages after ours."""
    people = WebClient(token="xoxb-people", base_url=f"{slack.base_url}/api/")
    for n in range(count):
        people.chat_postMessage(channel=CHANNEL, text=f"message {n}")


def incident_posts(slack: FakeSlack, incident_id: int) -> list[dict[str, Any]]:
    """The incident's messages in the channel (each carries its metadata)."""
    channel = slack.channels[CHANNEL.removeprefix("#")]
    return [m for m in slack.history.get(channel, []) if "thread_ts" not in m
            and (m.get("metadata") or {}).get("event_payload", {}).get("incident") == incident_id]


def test_the_fake_refuses_channel_names_where_slack_does(slack: FakeSlack) -> None:
    """A post takes a name and answers with the ID; history, replies and updates refuse the name."""
    client = WebClient(token="xoxb-test", base_url=f"{slack.base_url}/api/")
    posted = client.chat_postMessage(channel=CHANNEL, text="hello")
    assert CHANNEL_ID.fullmatch(posted["channel"])
    for refused in (lambda: client.conversations_history(channel=CHANNEL),
                    lambda: client.conversations_replies(channel=CHANNEL, ts=posted["ts"]),
                    lambda: client.chat_update(channel=CHANNEL, ts=posted["ts"], text="hi")):
        with pytest.raises(SlackApiError, match="channel_not_found"):
            refused()
    answer = client.conversations_history(channel=posted["channel"])
    assert [m["ts"] for m in answer["messages"]] == [posted["ts"]]


def test_a_lost_post_is_found_behind_300_newer_messages(slack: FakeSlack, store: SqlStore, clock: Clock) -> None:
    """The post's answer is lost and 300 messages follow it: the retry pages the channel's history
    (by its ID) back to the post's time, finds it and updates it; one message in the channel."""
    open_incident(store, clock, 1)
    first = start(store, slack, clock, losing(slack, replies=False))
    assert first.drain().paused_until is not None
    first.close()
    chatter(slack, 300)
    clock.now += timedelta(minutes=1)
    restarted = start(store, slack, clock)
    report = restarted.drain()
    restarted.close()
    [post] = incident_posts(slack, 1)
    [update] = slack.called("chat.update")
    assert (update["channel"], update["ts"]) == (slack.channels["incidents"], post["ts"])
    assert report.posted == 1
    assert len(slack.called("conversations.history")) >= 2, "paged by cursor"
    assert {r["thread_ts"] for r in slack.called("chat.postMessage") if "thread_ts" in r} == {post["ts"]}


def test_the_channel_id_from_the_first_answer_survives_a_restart(
        slack: FakeSlack, store: SqlStore, clock: Clock) -> None:
    """Slack's first answer names the channel's ID; it is stored, so after a restart a lost post in
    the same channel is looked for by that ID, without listing the workspace's channels."""
    open_incident(store, clock, 1)
    first = start(store, slack, clock)
    first.drain()
    first.close()
    open_incident(store, clock, 2)
    losing_one = start(store, slack, clock, losing(slack, replies=False))
    losing_one.drain()
    losing_one.close()
    chatter(slack, 300)
    slack.fail("conversations.list", error="missing_scope", times=10)
    clock.now += timedelta(minutes=1)
    restarted = start(store, slack, clock)
    restarted.drain()
    restarted.close()
    assert len(incident_posts(slack, 2)) == 1
    assert all(call["channel"] == slack.channels["incidents"] for call in slack.called("conversations.history"))


def test_a_thread_reply_lost_after_posting_is_not_doubled(slack: FakeSlack, store: SqlStore, clock: Clock) -> None:
    """The reply went out but its answer was lost: after a restart the thread (conversations.replies)
    shows it by its metadata, so it is not posted again, and the thread goes on after it."""
    open_incident(store, clock, 1)
    first = start(store, slack, clock)
    first.drain()
    first.close()
    change_status(store=store, incident_id=1, target=IncidentStatus.ACKNOWLEDGED, actor=Actor.USER,
                  actor_id="U123", now=clock())
    clock.now += timedelta(seconds=3)
    losing_one = start(store, slack, clock, losing(slack, replies=True))
    assert losing_one.drain().paused_until is not None
    losing_one.close()
    clock.now += timedelta(minutes=1)
    restarted = start(store, slack, clock)
    restarted.drain()
    change_status(store=store, incident_id=1, target=IncidentStatus.RESOLVED, actor=Actor.USER,
                  actor_id="U123", now=clock())
    clock.now += timedelta(seconds=3)
    restarted.drain()
    restarted.close()
    [(channel, _)] = slack.threads
    assert CHANNEL_ID.fullmatch(channel)
    [replies] = slack.threads.values()
    texts = [r["text"] for r in replies]
    assert sum("incident.acknowledged" in t for t in texts) == 1, texts
    assert sum("incident.resolved" in t for t in texts) == 1, texts
    assert all(call["channel"] == channel for call in slack.called("conversations.replies"))


def test_a_rate_limited_history_read_waits_instead_of_posting(
        slack: FakeSlack, store: SqlStore, clock: Clock) -> None:
    """A 429 on the history read says nothing about the post: delivery waits for Retry-After and
    looks again, rather than posting a second message."""
    open_incident(store, clock, 1)
    first = start(store, slack, clock, losing(slack, replies=False))
    first.drain()
    first.close()
    slack.fail("conversations.history", status=429, retry_after=20)
    clock.now += timedelta(minutes=1)
    restarted = start(store, slack, clock)
    assert restarted.drain().paused_until == clock.now + timedelta(seconds=20)
    clock.now += timedelta(seconds=21)
    restarted.drain()
    restarted.close()
    assert len(incident_posts(slack, 1)) == 1


def test_a_reply_met_by_a_5xx_is_sent_once_later(slack: FakeSlack, store: SqlStore, clock: Clock) -> None:
    """Slack's 5xx on a reply says nothing sure: the thread is read at the next drain and the
    reply, not there, is sent then, neither lost nor doubled."""
    open_incident(store, clock, 1)
    delivery = start(store, slack, clock)
    delivery.drain()
    change_status(store=store, incident_id=1, target=IncidentStatus.ACKNOWLEDGED, actor=Actor.USER,
                  actor_id="U123", now=clock())
    slack.fail("chat.postMessage", status=500)
    clock.now += timedelta(seconds=3)
    delivery.drain()
    clock.now += timedelta(minutes=1)
    delivery.drain()
    delivery.close()
    [replies] = slack.threads.values()
    assert sum("incident.acknowledged" in r["text"] for r in replies) == 1
