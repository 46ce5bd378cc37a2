"""The running app with Slack (the fake Slack Web API over HTTP) and one incident whose message is
posted: shared by the tests of the channel feeding the timeline, in HTTP mode and Socket Mode."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient

from bot import bootstrap
from bot.config import Settings, SlackSettings
from bot.domain.ports import ChatThread
from tests.adapters.test_slack_http import SECRET, signed, wait_for
from tests.conftest import AUTH, payload_bytes
from tests.fakes.slack import FakeSlack

PERSON, OTHER = "U0PERSON1", "U0PERSON2"


def slack_settings(make_settings: Callable[..., Settings], slack: FakeSlack, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"mode": "http", "bot_token": "xoxb-test", "signing_secret": SECRET,
                              "api_url": f"{slack.base_url}/api/", "channel": "#incidents", "workers": 4}
    return make_settings(chat={"kind": "slack"}, slack=SlackSettings(**(values | overrides)))


def open_incident(app: bootstrap.App, client: TestClient) -> ChatThread:
    """Alert, then wait for the incident's message to be posted: its channel ID and ts."""
    assert client.post("/webhooks/alertmanager", content=payload_bytes("01"), headers=AUTH).status_code == 200
    found: ChatThread = wait_for(lambda: app.ctx.store.run(lambda tx: tx.chat.thread(1)))
    return found


def post_event(client: TestClient, event: dict[str, Any]) -> None:
    """An event as Slack sends it in HTTP mode: the Events API body, signed."""
    body = json.dumps(FakeSlack.event_callback(event))
    headers = signed(body) | {"Content-Type": "application/json"}
    assert client.post("/slack/events", content=body, headers=headers).status_code == 200


@dataclass
class Timeline:
    """The incident's timeline read as users read it."""

    client: TestClient

    def entries(self, kind: str = "chat.pinned") -> list[dict[str, Any]]:
        timeline = self.client.get("/api/incidents/1/timeline").json()["timeline"]
        return [e for e in timeline if e["kind"] == kind]

    def wait(self, count: int, kind: str = "chat.pinned") -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = wait_for(lambda: len(self.entries(kind)) >= count and self.entries(kind))
        return found
