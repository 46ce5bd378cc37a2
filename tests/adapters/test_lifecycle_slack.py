"""The incident's states in Slack: a resolved incident's Reopen button, and what a state refuses
answered privately, naming the state (requests signed as Slack signs them, the fake Slack over HTTP)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.adapters import test_slack_http
from tests.adapters.test_slack_http import OWNER, button, interaction, post_command, wait_for
from tests.fakes.slack import FakeSlack

slack, client = test_slack_http.slack, test_slack_http.client  # the running app with the fake Slack


def _resolved(client: TestClient, slack: FakeSlack) -> None:
    post_command(client, slack, "resolve INC-1 fixed")
    wait_for(lambda: slack.responses)
    slack.responses.clear()


def test_the_reopen_button_reopens_a_resolved_incident_with_the_slack_user(client: TestClient,
                                                                            slack: FakeSlack) -> None:
    """Reopen on the resolved incident's message: open again, on the timeline with the user."""
    _resolved(client, slack)
    assert interaction(client, button(slack, "backout_reopen")).status_code == 200
    wait_for(lambda: slack.responses)
    assert client.get("/api/incidents/1").json()["status"] == "open"
    timeline = client.get("/api/incidents/1/timeline").json()["timeline"]
    reopened = [e for e in timeline if e["kind"] == "incident.reopened"]
    assert (reopened[0]["actor_id"], reopened[0]["text"]) == (OWNER, f"Reopened by {OWNER}")


def test_what_a_resolved_incident_refuses_is_said_privately_naming_its_state(client: TestClient,
                                                                             slack: FakeSlack) -> None:
    """Acknowledge (a stale button) and a rollback on a resolved incident: private answers that say
    it is resolved; nothing changes."""
    _resolved(client, slack)
    interaction(client, button(slack, "backout_ack"))
    post_command(client, slack, "rollback INC-1")
    answers = wait_for(lambda: len(slack.responses) >= 2 and slack.responses)
    assert {a["response_type"] for a in answers} == {"ephemeral"}
    texts = sorted(a["text"] for a in answers)
    assert texts[0] == "INC-1 is resolved; it cannot be rolled back; reopen it first (`backout reopen INC-1`)"
    assert texts[1] == "INC-1 is resolved; it cannot become acknowledged"
    assert slack.called("views.open") == []
    assert client.get("/api/incidents/1").json()["status"] == "resolved"
