"""Slack in Socket Mode, the flows HTTP mode has: the app built as `serve` builds it connects
through `apps.connections.open` (the app-level token, on the fake Slack Web API) to the fake
Socket Mode server over a real WebSocket, acknowledges each envelope by its envelope_id, and
moves to a new connection when Slack sends `disconnect`."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from websockets.protocol import State

from bot import bootstrap
from bot.config import Settings
from bot.domain.ports import ChatThread
from tests.adapters import test_slack_delivery
from tests.adapters.slack_room import OTHER, PERSON, Timeline, open_incident, slack_settings
from tests.adapters.test_slack_http import OWNER, button, seed_suspect, wait_for
from tests.conftest import Clock
from tests.fakes.git import FakeGit
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_socket import FakeSocketMode

APP_TOKEN = "xapp-1-A1-1234-abcdef"
slack = test_slack_delivery.slack  # the fake Slack Web API, its messages stamped by the test's clock


@dataclass
class SocketRoom:
    app: bootstrap.App
    client: TestClient  # the HTTP side: webhooks and the API, to see what the envelopes did
    thread: ChatThread
    socket: FakeSocketMode
    slack: FakeSlack

    def command(self, text: str, user: str = OWNER) -> dict[str, Any]:
        """`/incident <text>` as a slash_commands envelope; returns the app's acknowledgement."""
        payload = {"token": "legacy", "team_id": "T1", "channel_id": self.thread.channel, "user_id": user,
                   "command": "/incident", "text": text, "trigger_id": "1.2.3",
                   "response_url": f"{self.slack.base_url}/respond/{text.split()[0]}"}
        return self.socket.ack(self.socket.send("slash_commands", payload, accepts_response_payload=True))


@pytest.fixture
def socket(slack: FakeSlack) -> Iterator[FakeSocketMode]:
    with FakeSocketMode().serving() as fake:
        slack.socket_url = fake.url
        yield fake


@pytest.fixture
def room(slack: FakeSlack, socket: FakeSocketMode, build: Callable[..., bootstrap.App],
         make_settings: Callable[..., Settings], fake_git: FakeGit, clock: Clock) -> Iterator[SocketRoom]:
    seed_suspect(fake_git, clock)
    app = build(slack_settings(make_settings, slack, mode="socket", app_token=APP_TOKEN, signing_secret=None))
    assert app.ctx.slack is not None
    handler = bootstrap.socket_mode(app.ctx.slack, APP_TOKEN)
    handler.connect()  # type: ignore[no-untyped-call]  # slack_bolt leaves it untyped
    try:
        socket.wait_connections(1)
        with TestClient(app.http) as client:
            yield SocketRoom(app=app, client=client, thread=open_incident(app, client), socket=socket, slack=slack)
    finally:
        handler.close()  # type: ignore[no-untyped-call]


def test_a_slash_command_is_acknowledged_and_answered(room: SocketRoom, slack: FakeSlack) -> None:
    """The connection was opened with the app-level token through slack.api_url (the fake refuses
    any other token); `/incident list` over it: the envelope is acknowledged by its id, the
    answer goes to the response_url with the open incident."""
    assert len(slack.called("apps.connections.open")) == 1
    with pytest.raises(SlackApiError, match="not_allowed_token_type"):
        WebClient(base_url=f"{slack.base_url}/api/").apps_connections_open(app_token="xoxb-test")
    acked = room.command("list")
    assert set(acked) <= {"envelope_id", "payload"}
    [answer] = wait_for(lambda: slack.responses)
    assert answer["key"] == "list"
    assert "INC-1" in answer["text"]


def test_a_button_click_runs_the_rollback_confirmation(room: SocketRoom, slack: FakeSlack, fake_git: FakeGit) -> None:
    """Roll back clicked (an `interactive` envelope): acknowledged, the confirmation modal opens;
    its submission (another envelope) pushes the revert."""
    click = button(slack, "backout_rollback") | {"channel": {"id": room.thread.channel}}
    room.socket.ack(room.socket.send("interactive", click, accepts_response_payload=True))
    [opened] = wait_for(lambda: slack.called("views.open"))
    assert "aaaaaaaaaaaa" in json.dumps(opened["view"]["blocks"])
    assert fake_git.branches == {}, "nothing runs before the confirmation"
    submission = {"type": "view_submission", "user": {"id": OWNER}, "team": {"id": "T1"},
                  "view": {**opened["view"], "id": "V1", "state": {"values": {}}}}
    acked = room.socket.ack(room.socket.send("interactive", submission, accepts_response_payload=True))
    assert acked.get("payload") in (None, {}), "a plain ack closes the modal"
    wait_for(lambda: fake_git.branches)
    assert list(fake_git.branches) == [("gitops", "backout/INC-1/revert-aaaaaaa")]


def test_a_pin_event_adds_the_message_to_the_timeline(room: SocketRoom, slack: FakeSlack) -> None:
    """pin_added in an `events_api` envelope: acknowledged, and the message is on the timeline."""
    ts = slack.say(room.thread.channel, "paged the DB on-call", user=PERSON, thread_ts=room.thread.ts)
    event = FakeSlack.event_callback(slack.pin(room.thread.channel, ts, user=OTHER))
    room.socket.ack(room.socket.send("events_api", event))
    [entry] = Timeline(room.client).wait(1)
    assert (entry["actor_id"], entry["text"]) == (PERSON, "paged the DB on-call")


def test_after_a_disconnect_it_reconnects_and_keeps_working(room: SocketRoom, slack: FakeSlack) -> None:
    """Slack's `disconnect` (refresh_requested): the app asks apps.connections.open for a new URL,
    connects, and the next command, sent on the new connection, is acknowledged and answered."""
    room.socket.disconnect()
    room.socket.wait_connections(2)
    assert len(slack.called("apps.connections.open")) == 2
    wait_for(lambda: room.socket.connections[0].state is State.CLOSED, timeout=10)  # the app closed it
    room.command("list")
    [answer] = wait_for(lambda: slack.responses)
    assert "INC-1" in answer["text"]


def test_socket_mode_starts_without_a_signing_secret(slack: FakeSlack, build: Callable[..., bootstrap.App],
                                                      make_settings: Callable[..., Settings]) -> None:
    """Socket Mode needs no signing secret (the settings ask for one only in HTTP mode): the app
    builds without one, and /slack/events, which could verify nothing, is not served."""
    app = build(slack_settings(make_settings, slack, mode="socket", app_token=APP_TOKEN, signing_secret=None))
    with TestClient(app.http) as client:
        assert client.post("/slack/events", content=b"{}").status_code == 404
