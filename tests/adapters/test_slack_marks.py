"""The incident's channel feeds its timeline: pins and 📌 reactions (or the configured emoji) on
messages in the incident's thread, delivered as Slack delivers them in HTTP mode (signed), against
the fake Slack Web API over HTTP and the real SQLite store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from slack_sdk import WebClient

from bot import bootstrap
from bot.adapters.slack.marks import SlackMessages, pin_mark, reaction_mark, slack_text
from bot.adapters.storage import tables as t
from bot.config import Settings
from bot.domain.chat_marks import Mark, reaction_marker
from bot.domain.ports import ChatThread
from tests.adapters import test_slack_delivery
from tests.adapters.slack_room import OTHER, PERSON, Timeline, open_incident, post_event, slack_settings
from tests.adapters.test_slack_http import post_command, wait_for
from tests.conftest import Clock
from tests.fakes.slack import FakeSlack

# As Slack sends what a person typed: `<!channel>` is Slack's markup for @channel; `<`, `>` and
# `&` typed by the person arrive as entities.
TYPED = "<!channel> *bold* &lt;script&gt;alert(1)&lt;/script&gt; {{ 7*7 }} a &amp; b"
READ = "<!channel> *bold* <script>alert(1)</script> {{ 7*7 }} a & b"


slack = test_slack_delivery.slack  # the fake Slack Web API, its messages stamped by the test's clock


@pytest.fixture
def room(slack: FakeSlack, build: Callable[..., bootstrap.App],
         make_settings: Callable[..., Settings]) -> Iterator[tuple[bootstrap.App, TestClient, ChatThread]]:
    app = build(slack_settings(make_settings, slack, timeline_emoji=["pushpin", ":memo:"]))
    with TestClient(app.http) as client:
        yield app, client, open_incident(app, client)


def test_a_pin_in_the_thread_is_on_the_timeline_at_the_message_time_with_author_and_link(
        room: tuple[bootstrap.App, TestClient, ChatThread], slack: FakeSlack, clock: Clock) -> None:
    """Pinned ten minutes after it was said: on the timeline at the message's own time (before a
    note made meanwhile, in the export), by its author, with its permalink (chat.getPermalink by
    the channel's ID), once; a 📌 on it later and the same pin delivered again add nothing."""
    app, client, thread = room
    said_at = clock.now
    ts = slack.say(thread.channel, "rolled back the canary by hand", user=PERSON, thread_ts=thread.ts)
    clock.now += timedelta(minutes=5)
    post_command(client, slack, "note INC-1 checking the canary")
    wait_for(lambda: slack.responses)
    clock.now += timedelta(minutes=5)
    pinned = slack.pin(thread.channel, ts, user=OTHER)
    post_event(client, pinned)
    [entry] = Timeline(client).wait(1)
    assert datetime.fromisoformat(entry["at"]) == datetime.fromtimestamp(float(ts), tz=UTC)
    assert datetime.fromisoformat(entry["at"]) - said_at < timedelta(seconds=1)
    assert (entry["actor"], entry["actor_id"], entry["text"]) == ("user", PERSON, "rolled back the canary by hand")
    assert entry["data"]["permalink"] == slack.permalink(thread.channel, slack.message(thread.channel, ts) or {})
    assert entry["data"]["marked_by"] == OTHER
    assert slack.called("chat.getPermalink") == [{"channel": thread.channel, "message_ts": ts}]
    exported = [e["kind"] for e in client.get("/api/incidents/1/export").json()["timeline"]]
    assert exported.index("chat.pinned") < exported.index("note"), "the page and the draft read in time order"
    post_event(client, pinned | {"event_ts": "1.000001"})  # the same pin delivered again
    post_event(client, slack.react(thread.channel, ts, user=PERSON))
    wait_for(lambda: _markers(app, thread.channel, ts) == {"pin", f"reaction:pushpin:{PERSON}"})
    assert len(Timeline(client).entries()) == 1
    assert len(slack.called("chat.getPermalink")) == 1


def test_a_reaction_first_reads_the_message_by_channel_id_even_in_a_thread(
        room: tuple[bootstrap.App, TestClient, ChatThread], slack: FakeSlack) -> None:
    """A 📌 carries only the channel and ts: the message is read (history, then the thread that
    holds it), by ID; the pin that follows adds no second entry."""
    _app, client, thread = room
    ts = slack.say(thread.channel, "DB failover done", user=PERSON, thread_ts=thread.ts)
    post_event(client, slack.react(thread.channel, ts, user=OTHER))
    [entry] = Timeline(client).wait(1)
    assert (entry["actor_id"], entry["text"]) == (PERSON, "DB failover done")
    [history] = [c for c in slack.called("conversations.history") if "latest" in c]
    assert history == {"channel": thread.channel, "latest": ts, "inclusive": "1", "limit": "1"}
    assert [c["ts"] for c in slack.called("conversations.replies") if "latest" in c] == [ts]
    post_event(client, slack.pin(thread.channel, ts, user=OTHER))
    wait_for(lambda: len(slack.events) == 2)
    assert len(Timeline(client).entries()) == 1


def test_the_configured_emoji_counts_and_others_cost_nothing(
        room: tuple[bootstrap.App, TestClient, ChatThread], slack: FakeSlack) -> None:
    """`slack.timeline_emoji: [pushpin, ":memo:"]`: a 📝 adds the message; a 👍 is ignored without
    a call to Slack; a message outside any incident's thread is not added."""
    _app, client, thread = room
    liked = slack.say(thread.channel, "nice", user=PERSON, thread_ts=thread.ts)
    post_event(client, slack.react(thread.channel, liked, user=OTHER, name="thumbsup"))
    elsewhere = slack.say(thread.channel, "lunch?", user=PERSON)  # in the channel, in no incident's thread
    post_event(client, slack.react(thread.channel, elsewhere, user=OTHER))
    noted = slack.say(thread.channel, "customer impact: EU only", user=PERSON, thread_ts=thread.ts)
    post_event(client, slack.react(thread.channel, noted, user=OTHER, name="memo"))
    [entry] = Timeline(client).wait(1)
    assert entry["text"] == "customer impact: EU only"
    assert [c["latest"] for c in slack.called("conversations.history") if "latest" in c] == [elsewhere, noted]


def test_the_last_mark_removed_hides_the_entry_with_a_correction_and_deletes_nothing(
        room: tuple[bootstrap.App, TestClient, ChatThread], slack: FakeSlack) -> None:
    """Pinned and 📌: unpinning keeps the entry (a mark remains); removing the 📌 too adds a
    correction and hides the entry from the timeline, the page and the draft; the row stays.
    Pinned again: shown again."""
    app, client, thread = room
    ts = slack.say(thread.channel, "suspect: the cache TTL change", user=PERSON, thread_ts=thread.ts)
    post_event(client, slack.pin(thread.channel, ts, user=OTHER))
    Timeline(client).wait(1)
    post_event(client, slack.react(thread.channel, ts, user=PERSON))
    wait_for(lambda: len(_markers(app, thread.channel, ts)) == 2)
    post_event(client, slack.pin(thread.channel, ts, user=OTHER, add=False))
    wait_for(lambda: len(_markers(app, thread.channel, ts)) == 1)
    assert len(Timeline(client).entries()) == 1, "a 📌 remains"
    post_event(client, slack.react(thread.channel, ts, user=PERSON, add=False))
    [correction] = Timeline(client).wait(1, kind="chat.unpinned")
    assert correction["actor_id"] == PERSON
    assert Timeline(client).entries() == []
    assert "suspect: the cache TTL change" not in client.get("/incidents/1").text
    assert app.engine is not None
    with app.engine.connect() as conn:
        stored = conn.execute(sa.select(t.timeline_events.c.text, t.timeline_events.c.hidden)
                              .where(t.timeline_events.c.kind == "chat.pinned")).all()
    assert [tuple(row) for row in stored] == [("suspect: the cache TTL change", True)]
    post_event(client, slack.pin(thread.channel, ts, user=OTHER))
    Timeline(client).wait(1, kind="chat.repinned")
    assert [e["text"] for e in Timeline(client).entries()] == ["suspect: the cache TTL change"]


def test_message_text_shows_literally_everywhere(
        room: tuple[bootstrap.App, TestClient, ChatThread], slack: FakeSlack) -> None:
    """`<!channel> *bold* <script> {{ 7*7 }}` as typed: stored as people read it and shown
    literally in the JSON, on the page (escaped HTML), in the Markdown draft (backslashed) and in
    Slack (the thread's line and `/incident timeline`, entities: pings no one)."""
    app, client, thread = room
    ts = slack.say(thread.channel, TYPED, user=PERSON, thread_ts=thread.ts)
    post_event(client, slack.pin(thread.channel, ts, user=OTHER))
    [entry] = Timeline(client).wait(1)
    assert entry["text"] == READ
    page = client.get("/incidents/1").text
    assert "&lt;!channel&gt; *bold* &lt;script&gt;alert(1)&lt;/script&gt; {{ 7*7 }} a &amp; b" in page
    assert "<script>alert" not in page
    markdown = client.get("/api/incidents/1/export", params={"format": "markdown"}).text
    assert r"\<!channel> \*bold\* \<script>alert(1)\</script> {{ 7\*7 }} a & b" in markdown
    assert app.ctx.slack is not None
    app.ctx.slack.delivery.drain()
    lines = [r["text"] for r in slack.called("chat.postMessage") if r.get("thread_ts") == thread.ts]
    assert any("&lt;!channel&gt; *bold* &lt;script&gt;alert(1)&lt;/script&gt; {{ 7*7 }} a &amp; b" in line
               for line in lines), lines
    assert not any("<!channel>" in line for line in lines)
    post_command(client, slack, "timeline INC-1")
    [answer] = wait_for(lambda: slack.responses)
    assert "&lt;!channel&gt; *bold* &lt;script&gt;alert(1)&lt;/script&gt;" in answer["text"]


def test_slack_events_are_parsed_at_the_border() -> None:
    """A pin of a file is no mark; a reaction's skin tone is the same emoji; Slack's entities are
    read back as typed, its own markup kept as text."""
    channel, ts = "C0INCIDENTS", "1795299700.000100"
    assert pin_mark({"type": "pin_added", "user": "U2", "channel_id": channel,
                     "item": {"type": "file", "channel": channel}}) is None
    assert pin_mark({"type": "pin_added", "item": "not an object"}) is None
    on_message = {"type": "message", "channel": channel, "ts": ts}
    mark = reaction_mark({"type": "reaction_added", "user": "U2", "reaction": "memo::skin-tone-3",
                          "item": on_message}, frozenset({"memo"}))
    assert mark == Mark(channel=channel, ts=ts, marker=reaction_marker("memo", "U2"), by="U2")
    assert reaction_mark({"type": "reaction_added", "user": "U2", "reaction": "thumbsup", "item": on_message},
                         frozenset({"memo"})) is None
    assert slack_text("&lt;@U1&gt; said <@U1> &amp;lt; <!here>") == "<@U1> said <@U1> &lt; <!here>"


def test_reads_take_ids_wait_out_a_short_rate_limit_and_give_up_on_a_long_one(slack: FakeSlack) -> None:
    """By name Slack finds no channel (nothing read); a 429 with Retry-After: 1 is waited out and
    read again; one with Retry-After: 60 gives up at once rather than hold a listener thread."""
    messages = SlackMessages(WebClient(token="xoxb-test", base_url=f"{slack.base_url}/api/"))
    channel = slack.channel_id("#incidents")
    ts = slack.say(channel, "hello", user=PERSON)
    assert messages.message("#incidents", ts) is None
    slack.fail("conversations.history", status=429, retry_after=1)
    found = messages.message(channel, ts)
    assert found is not None
    assert (found.text, found.author) == ("hello", PERSON)
    assert len(slack.called("conversations.history")) == 3
    slack.fail("chat.getPermalink", status=429, retry_after=60)
    assert messages.permalink(channel, ts) is None
    assert len(slack.called("chat.getPermalink")) == 1


def _markers(app: bootstrap.App, channel: str, ts: str) -> frozenset[str]:
    found = app.ctx.store.run(lambda tx: tx.chat_marks.get(channel, ts))
    return found.markers if found else frozenset()
