"""Slack delivery through the outbox against the fake Slack Web API over HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from slack_sdk import WebClient

from bot.adapters.slack.delivery import SlackDelivery
from bot.adapters.slack.notifier import SlackNotifier
from bot.config import load_playbooks
from bot.domain.incidents import IncidentPolicy
from bot.domain.models import Actor, AlertStatus, Delivery, IncidentStatus, ReceivedAlert
from bot.domain.ports import IncidentMessage
from bot.services import card, notify
from bot.services.incidents import change_status
from bot.services.ingest import ingest_delivery
from tests.conftest import PLAYBOOKS, Clock, delivery
from tests.fakes.slack import FakeSlack
from tests.fakes.store import InMemoryStore


@pytest.fixture
def slack(clock: Clock) -> Iterator[FakeSlack]:
    with FakeSlack(clock=clock).serving() as fake:
        yield fake


@pytest.fixture
def parts(slack: FakeSlack, clock: Clock) -> Iterator[tuple[InMemoryStore, SlackDelivery, SlackNotifier]]:
    store = InMemoryStore()
    client = WebClient(token="xoxb-test", base_url=f"{slack.base_url}/api/")
    playbooks = {p.name: p for p in load_playbooks(PLAYBOOKS)}

    def channel_for(name: str | None) -> str:
        playbook = playbooks.get(name or "")
        return (playbook.chat.channel if playbook and playbook.chat.channel else None) or "#incidents"

    deliver = SlackDelivery(store=store, client=client, clock=clock, channel_for=channel_for,
                            describe=lambda incident_id: card.incident_message(store=store, incident_id=incident_id))
    # No kick: each test drains by hand, so nothing races with it.
    yield store, deliver, SlackNotifier(store=store, kick=lambda: None, clock=clock)
    deliver.close()


def open_incident(store: InMemoryStore, notifier: SlackNotifier, clock: Clock) -> None:
    ingest_delivery(store=store, delivery=delivery("01"), playbooks=load_playbooks(PLAYBOOKS),
                    policy=IncidentPolicy(), now=clock())
    notify.incident_update(store=store, notifier=notifier, incident_id=1, kind="incident.opened")


def open_incidents(store: InMemoryStore, notifier: SlackNotifier, clock: Clock, count: int) -> None:
    """`count` incidents of no playbook, each announced (its summary queued)."""
    for n in range(count):
        alert = ReceivedAlert(fingerprint=f"{n:016x}", starts_at=clock(), ends_at=None, status=AlertStatus.FIRING,
                              labels={"alertname": "Down", "service": f"svc{n}"}, annotations={})
        ingest_delivery(store=store, playbooks=[], policy=IncidentPolicy(), now=clock(),
                        delivery=Delivery(group_key=f"g{n}", status=AlertStatus.FIRING, alerts=(alert,)))
        notify.incident_update(store=store, notifier=notifier, incident_id=n + 1, kind="incident.opened")


def test_one_message_per_incident_then_updates_and_a_thread(slack: FakeSlack, parts, clock: Clock) -> None:  # type: ignore[no-untyped-def]
    """The incident is posted once in the playbook's channel, updated after, and its timeline
    events go to the thread in order."""
    store, deliver, notifier = parts
    open_incident(store, notifier, clock)
    deliver.drain()
    [post] = [c for c in slack.called("chat.postMessage") if "thread_ts" not in c]
    assert post["channel"] == "#inc-checkout"
    [reply] = [c for c in slack.called("chat.postMessage") if "thread_ts" in c]
    lines = reply["text"].splitlines()  # the events waiting at once go in one reply, a line each
    assert len(lines) == 3
    assert "incident.opened" in reply["text"]
    replies = [reply]
    change_status(store=store, incident_id=1, target=IncidentStatus.ACKNOWLEDGED, actor=Actor.USER,
                  actor_id="U123", now=clock())
    notify.incident_update(store=store, notifier=notifier, incident_id=1, kind="incident.acknowledged")
    clock.now += timedelta(seconds=3)
    deliver.drain()
    [update] = slack.called("chat.update")
    assert update["ts"] == replies[0]["thread_ts"]
    assert "*Acknowledged* · severity critical · service checkout · lead <@U123>" in str(update["blocks"])
    assert "U123" in slack.called("chat.postMessage")[-1]["text"]


def test_alert_text_pings_no_one(slack: FakeSlack, parts, clock: Clock) -> None:  # type: ignore[no-untyped-def]
    """The real fixture's `<!channel>` and `<url|text>` (in an alert's description) never reach Slack
    as such; the title from its summary arrives escaped."""
    store, deliver, notifier = parts
    open_incident(store, notifier, clock)
    deliver.drain()
    everything = str(slack.calls)
    assert "<!channel>" not in everything
    assert "<https://evil.example|click>" not in everything
    [post] = [c for c in slack.called("chat.postMessage") if "thread_ts" not in c]
    assert post["text"] == "INC-1 HighErrorRate on checkout: 5xx &gt; 5% on checkout"


def test_a_429_delays_delivery_and_nothing_is_lost(slack: FakeSlack, parts, clock: Clock) -> None:  # type: ignore[no-untyped-def]
    """Rate limited: delivery pauses for Retry-After, then sends everything in order."""
    store, deliver, notifier = parts
    slack.fail("chat.postMessage", status=429, retry_after=30)
    open_incident(store, notifier, clock)
    report = deliver.drain()
    assert report.paused_until == clock.now + timedelta(seconds=30)
    assert deliver.drain().posted == 0, "still paused"
    clock.now += timedelta(seconds=31)
    report = deliver.drain()
    assert (report.posted, report.replies) == (1, 1)  # three events, one reply


def test_a_slack_outage_queues_until_it_is_back(slack: FakeSlack, parts, clock: Clock) -> None:  # type: ignore[no-untyped-def]
    """Slack unreachable: delivery waits and retries; the message and thread still go out."""
    store, deliver, notifier = parts
    deliver._client = WebClient(token="x", base_url="http://127.0.0.1:9/api/", timeout=1)
    open_incident(store, notifier, clock)
    assert deliver.drain().paused_until is not None
    deliver._client = WebClient(token="x", base_url=f"{slack.base_url}/api/")
    clock.now += timedelta(minutes=1)
    report = deliver.drain()
    assert (report.posted, report.replies) == (1, 1)  # three events, one reply


def test_ok_false_is_recorded_and_retried_later(slack: FakeSlack, parts, clock: Clock) -> None:  # type: ignore[no-untyped-def]
    """`ok: false` (e.g. channel_not_found) is kept with its error and tried again later."""
    store, deliver, notifier = parts
    slack.fail("chat.postMessage", error="channel_not_found")
    open_incident(store, notifier, clock)
    assert deliver.drain().errors == ["channel_not_found"]
    [row] = store.state.outbox.values()
    assert (row["state"], row["error"]) == ("pending", "channel_not_found")
    clock.now += timedelta(minutes=2)
    assert deliver.drain().posted == 1


def test_updates_in_a_storm_are_debounced(slack: FakeSlack, parts, clock: Clock) -> None:  # type: ignore[no-untyped-def]
    """Ten summaries in a second become one chat.update."""
    store, deliver, notifier = parts
    open_incident(store, notifier, clock)
    deliver.drain()
    for _ in range(10):
        notify.incident_update(store=store, notifier=notifier, incident_id=1, kind="incident.changed")
        deliver.drain()
    assert slack.called("chat.update") == []
    clock.now += timedelta(seconds=3)
    deliver.drain()
    assert len(slack.called("chat.update")) == 1


def test_reminders_reach_the_channel(slack: FakeSlack, parts, clock: Clock) -> None:  # type: ignore[no-untyped-def]
    """A reminder is a thread reply broadcast to the channel; other events stay in the thread."""
    from bot.domain.playbooks import Playbook
    from bot.services.watching import send_reminders

    store, deliver, notifier = parts
    open_incident(store, notifier, clock)
    deliver.drain()
    clock.now += timedelta(minutes=11)
    book = Playbook.model_validate({"name": "checkout", "service": "checkout", "match": {"service": "checkout"}})
    assert send_reminders(store=store, notifier=notifier, playbooks=[book], now=clock.now) == 1
    deliver.drain()
    last = slack.called("chat.postMessage")[-1]
    assert "incident.reminder" in last["text"]
    assert last["reply_broadcast"] is True
    assert not any(c.get("reply_broadcast") for c in slack.called("chat.postMessage")[:-1])


def test_any_notice_refreshes_the_message_from_the_store(slack: FakeSlack, parts, clock: Clock) -> None:  # type: ignore[no-untyped-def]
    """A single-step notice (a revert's pull request opened) updates the incident's message with the
    current state: the pull request's link."""
    from bot.domain.actions import Action, ActionKind, ActionState
    from bot.domain.ports import Notice

    store, deliver, notifier = parts
    open_incident(store, notifier, clock)
    deliver.drain()
    store.run(lambda tx: tx.actions.add(Action(
        incident_id=1, kind=ActionKind.REVERT, repo="gitops", commit_sha="a" * 40, state=ActionState.PR_OPEN,
        branch="backout/INC-1/revert-aaaaaaa", created_at=clock.now, updated_at=clock.now,
        url="https://github.example/acme/gitops/pull/7", detail={"pr_number": 7})))
    notifier.notify(Notice(incident_id=1, kind="action.pr_open", title="INC-1 revert", lines=("opened",)))
    clock.now += timedelta(seconds=3)
    deliver.drain()
    [update] = slack.called("chat.update")
    assert "<https://github.example/acme/gitops/pull/7|Pull request #7>" in str(update["blocks"])


def test_a_post_whose_answer_was_lost_is_found_not_posted_again(slack: FakeSlack, parts, clock: Clock) -> None:  # type: ignore[no-untyped-def]
    """The message went out but its ts was never recorded (a crash, a timeout): the next delivery
    finds it by its metadata in the channel's history and updates it instead of posting twice."""
    from bot.adapters.slack.lookup import METADATA_TYPE

    store, deliver, notifier = parts
    open_incident(store, notifier, clock)
    opened_at = store.run(lambda tx: tx.incidents.get(1)).opened_at  # type: ignore[union-attr]
    client = WebClient(token="xoxb-test", base_url=f"{slack.base_url}/api/")
    # A drainer took the summary, posted, and died before recording it.
    store.run(lambda tx: tx.chat.claim_summaries(clock(), until=clock() + timedelta(seconds=5)))
    clock.now += timedelta(seconds=6)
    lost = client.chat_postMessage(channel="#inc-checkout", text="INC-1 ...", metadata={
        "event_type": METADATA_TYPE, "event_payload": {"incident": 1, "opened_at": opened_at.isoformat()}})
    deliver.drain()
    top = [c for c in slack.called("chat.postMessage") if "thread_ts" not in c]
    assert len(top) == 1, "the lost post only"
    [update] = slack.called("chat.update")
    assert update["ts"] == lost["ts"]
    replies = [c for c in slack.called("chat.postMessage") if "thread_ts" in c]
    assert {r["thread_ts"] for r in replies} == {lost["ts"]}


def test_an_unreadable_history_still_posts(slack: FakeSlack, parts, clock: Clock) -> None:  # type: ignore[no-untyped-def]
    """No history scope, or not in the channel: the message is posted (and carries its metadata)."""
    store, deliver, notifier = parts
    slack.fail("conversations.history", error="not_in_channel")
    open_incident(store, notifier, clock)
    deliver.drain()
    [post] = [c for c in slack.called("chat.postMessage") if "thread_ts" not in c]
    assert post["metadata"]["event_payload"]["incident"] == 1


def test_only_the_leading_replica_delivers(slack: FakeSlack, parts, clock: Clock) -> None:  # type: ignore[no-untyped-def]
    """A replica that does not lead drains nothing; the leader's drain posts the message once."""
    store, deliver, notifier = parts
    client = WebClient(token="xoxb-test", base_url=f"{slack.base_url}/api/")
    follower = SlackDelivery(store=store, client=client, clock=clock, channel_for=lambda _: "#incidents",
                             describe=lambda i: card.incident_message(store=store, incident_id=i),
                             may_deliver=lambda: False)
    open_incident(store, notifier, clock)
    assert follower.drain().posted == 0
    assert slack.called("chat.postMessage") == []
    assert deliver.drain().posted == 1
    follower.close()


def test_a_storm_stays_within_the_channel_rate_and_loses_nothing(slack: FakeSlack, parts, clock: Clock) -> None:  # type: ignore[no-untyped-def]
    """30 incidents in one channel at once: a burst of 10 calls, then about one a second as time
    passes; in the end each incident posted once, its events on its thread."""
    store, deliver, notifier = parts
    open_incidents(store, notifier, clock, 30)
    first = deliver.drain()
    assert (first.posted, first.replies) == (10, 0)
    assert first.paced > 0
    for _ in range(60):
        clock.now += timedelta(seconds=1)
        deliver.drain()
    calls = slack.called("chat.postMessage")
    assert len([c for c in calls if "thread_ts" not in c]) == 30
    assert len([c for c in calls if "thread_ts" in c]) == 30  # each thread: its waiting events in one reply
    assert len(calls) <= 10 + 60  # the burst, then one a second


def test_the_chart_and_the_draft_go_to_the_thread_when_it_resolves(slack: FakeSlack, clock: Clock) -> None:
    """Resolved: the thread gets the review files once; an upload that fails costs the thread nothing."""
    store = InMemoryStore()
    client = WebClient(token="xoxb-test", base_url=f"{slack.base_url}/api/")
    asked: list[int] = []

    def review_files(incident_id: int) -> list[tuple[str, bytes]]:
        asked.append(incident_id)
        return [(f"INC-{incident_id}-chart.png", b"\x89PNG..."), (f"INC-{incident_id}.md", b"# INC-1\n")]

    deliver = SlackDelivery(store=store, client=client, clock=clock, channel_for=lambda _: "#incidents",
                            describe=lambda n: card.incident_message(store=store, incident_id=n),
                            review_files=review_files)
    notifier = SlackNotifier(store=store, kick=lambda: None, clock=clock)
    try:
        open_incident(store, notifier, clock)
        deliver.drain()
        assert slack.called("files.completeUploadExternal") == []
        change_status(store=store, incident_id=1, target=IncidentStatus.RESOLVED, actor=Actor.USER, actor_id="U1",
                      now=clock())
        notify.incident_update(store=store, notifier=notifier, incident_id=1, kind="incident.resolved")
        clock.now += timedelta(seconds=3)
        deliver.drain()
        [done] = slack.called("files.completeUploadExternal")
        thread_ts = next(c for c in slack.called("chat.postMessage") if "thread_ts" in c)["thread_ts"]
        assert done["thread_ts"] == thread_ts
        assert {f["title"] for f in json.loads(done["files"])} == {"INC-1-chart.png", "INC-1.md"}
        assert asked == [1]
        clock.now += timedelta(seconds=3)
        deliver.drain()
        assert len(slack.called("files.completeUploadExternal")) == 1, "once"
    finally:
        deliver.close()


def test_a_backlog_in_one_channel_builds_a_message_only_when_one_can_go(slack: FakeSlack, clock: Clock) -> None:
    """60 incidents queued in one channel (a restart's backlog): once the burst is spent, drains
    at the same instant (one per new summary) build no message and touch no summary, and as time
    passes each drain builds about what it posts, at the channel's rate."""
    store = InMemoryStore()
    built: list[int] = []

    def describe(incident_id: int) -> IncidentMessage:
        built.append(incident_id)
        return card.incident_message(store=store, incident_id=incident_id)

    deliver = SlackDelivery(store=store, client=WebClient(token="xoxb-test", base_url=f"{slack.base_url}/api/"),
                            clock=clock, channel_for=lambda _: "#incidents", describe=describe, channel_rate=2)
    notifier = SlackNotifier(store=store, kick=lambda: None, clock=clock)
    open_incidents(store, notifier, clock, 60)
    try:
        assert deliver.drain().posted == 10  # the burst
        built.clear()
        runs = store.runs
        for _ in range(50):
            deliver.drain()
        assert (built, store.runs - runs) == ([], 0), "a spent channel's backlog was churned"
        posted = 0
        for _ in range(20):
            clock.now += timedelta(seconds=1)
            posted += deliver.drain().posted
        assert posted == 40  # two a second
        assert len(built) <= posted + 20  # at most one message built and given back per drain
    finally:
        deliver.close()
