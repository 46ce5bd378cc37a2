"""The one command's room verbs in HTTP mode (requests signed as Slack signs them, the fake Slack
Web API over HTTP): `open` declares a channel, commands typed there need no id, `update`, `role`,
`severity` and `plan`, each answered privately on bad use and refused by state or permission."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient

from bot import bootstrap
from bot.config import Settings, SlackSettings
from tests.adapters.test_slack_http import SECRET, signed, wait_for
from tests.conftest import AUTH, payload_bytes
from tests.fakes.slack import FakeSlack

OWNER, STRANGER, BOB = "U0123ABCD", "U0STRANGER", "U0BOB"


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack().serving() as fake:
        yield fake


@pytest.fixture
def app(slack: FakeSlack, build: Callable[..., bootstrap.App], make_settings: Callable[..., Settings]) -> bootstrap.App:
    settings = make_settings(
        chat={"kind": "slack"},
        slack=SlackSettings(mode="http", bot_token="xoxb-test", signing_secret=SECRET,
                            api_url=f"{slack.base_url}/api/", channel="#incidents", workers=4))
    return build(settings)


@pytest.fixture
def client(app: bootstrap.App) -> Iterator[TestClient]:
    with TestClient(app.http) as test_client:
        test_client.post("/webhooks/alertmanager", content=payload_bytes("01"), headers=AUTH)
        yield test_client


def say(client: TestClient, slack: FakeSlack, text: str, *, user: str = OWNER,
        channel: str = "C0ALERTS") -> dict[str, Any]:
    """Type `/incident <text>` in a channel; Slack's answer to it (from the response URL)."""
    key = f"{len(slack.responses)}-{len(slack.calls)}"
    body = urlencode({"token": "legacy", "team_id": "T1", "channel_id": channel, "user_id": user,
                      "command": "/incident", "text": text, "trigger_id": "1.2.3",
                      "response_url": f"{slack.base_url}/respond/{key}"})
    assert client.post("/slack/events", content=body, headers=signed(body)).status_code == 200
    answer: dict[str, Any] = wait_for(lambda: next((r for r in slack.responses if r["key"] == key), None))
    return answer


def timeline(client: TestClient, number: int = 1) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = client.get(f"/api/incidents/{number}/timeline").json()["timeline"]
    return events


def test_open_declares_a_channel_where_commands_need_no_id(client: TestClient, slack: FakeSlack,
                                                           app: bootstrap.App) -> None:
    """`open` makes inc-2-checkout and posts the incident there; `update` typed in it is INC-2's,
    said in the channel (a broadcast reply) and on the timeline."""
    answer = say(client, slack, 'open "Payments failing" checkout')
    assert answer["response_type"] == "in_channel"
    assert app.ctx.slack is not None
    wait_for(lambda: app.ctx.slack.delivery.drain() and "inc-2-checkout" in slack.channels)  # type: ignore[union-attr]
    room = slack.channels["inc-2-checkout"]
    wait_for(lambda: any(c["channel"] == room and "thread_ts" not in c for c in slack.called("chat.postMessage")))
    assert OWNER in slack.members[room]
    update = say(client, slack, "update Rolling back the canary", channel=room)
    assert update["response_type"] == "in_channel"
    assert any(e["kind"] == "incident.update" and e["text"] == "Rolling back the canary" for e in timeline(client, 2))
    app.ctx.slack.delivery.drain()  # type: ignore[union-attr]
    posted = wait_for(lambda: [c for c in slack.called("chat.postMessage")
                               if c["channel"] == room and "Rolling back the canary" in c["text"]])
    assert str(posted[0]["reply_broadcast"]).lower() in ("1", "true")


def test_roles_are_handed_over_by_the_lead_or_the_owners(client: TestClient, slack: FakeSlack) -> None:
    """A stranger may not; an owner may; the new lead may then change the severity."""
    refused = say(client, slack, f"role INC-1 lead <@{BOB}|bob>", user=STRANGER)
    assert refused["response_type"] == "ephemeral"
    assert "You may not hand over roles of INC-1" in refused["text"]
    assert say(client, slack, f"role INC-1 lead <@{BOB}|bob>")["response_type"] == "in_channel"
    assert client.get("/api/incidents/1").json()["roles"] == {"lead": BOB}
    raised = say(client, slack, "severity INC-1 warning", user=BOB)
    assert "INC-1 severity is now warning" in raised["text"]
    assert any(e["kind"] == "incident.severity_lowered" and e["actor_id"] == BOB for e in timeline(client))
    assert "may not change the severity" in say(client, slack, "severity INC-1 error", user=STRANGER)["text"]
    assert any(e["kind"] == "chat.refused" and e["actor_id"] == STRANGER for e in timeline(client))


def test_the_first_to_acknowledge_leads(client: TestClient, slack: FakeSlack) -> None:
    """`ack` by anyone makes them the lead when there is none."""
    say(client, slack, "ack INC-1", user=STRANGER)
    assert client.get("/api/incidents/1").json()["roles"] == {"lead": STRANGER}


def test_bad_use_is_answered_privately_with_the_usage(client: TestClient, slack: FakeSlack) -> None:
    """A missing person, an unknown level, no id outside an incident's channel: private, saying what to type."""
    for text, says in (("role INC-1 lead", "role ID ROLE @user"), ("severity INC-1 sev1", "one of info"),
                       ("update all good", "which incident?"), ("role INC-1 chef <@U0BOB>", "the roles are lead"),
                       ("role INC-1 lead bob", "mention them")):
        answer = say(client, slack, text)
        assert answer["response_type"] == "ephemeral", text
        assert says in answer["text"], text


def test_a_resolved_incident_refuses_updates_naming_its_state(client: TestClient, slack: FakeSlack) -> None:
    """After the resolution: `update` says the state and that a reopen comes first."""
    say(client, slack, "resolve INC-1")
    answer = say(client, slack, "update INC-1 all good now")
    assert answer["response_type"] == "ephemeral"
    assert "INC-1 is resolved" in answer["text"]
    assert "reopen it first" in answer["text"]


def test_plan_answers_with_the_rollback_plan(client: TestClient, slack: FakeSlack) -> None:
    """`plan INC-1`: the plan's reason and its line, privately."""
    answer = say(client, slack, "plan INC-1")
    assert answer["response_type"] == "ephemeral"
    assert answer["text"].startswith("INC-1 rollback plan:")


def test_the_export_carries_the_roles(client: TestClient, slack: FakeSlack) -> None:
    """Roles reach the export (and so the page and the post-mortem draft)."""
    say(client, slack, "ack INC-1", user=BOB)
    document = json.loads(client.get("/api/incidents/1/export?format=json").text)
    assert document["incident"]["roles"] == {"lead": BOB}
    assert f"| Lead | {BOB} |" in client.get("/api/incidents/1/export?format=markdown").text
