"""The incident's states where people act: reopening and each state's allowed and refused actions
through the HTTP API, the CLI (local and the --server client) and the Slack card's buttons."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from bot import bootstrap
from bot.adapters.slack.blocks import ActionId
from bot.adapters.slack.card import card_message
from bot.cli import app as cli
from bot.cli.remote import BackoutClient, RemoteError
from bot.config import ApiSettings, Settings
from bot.domain.models import IncidentStatus
from bot.services.card import incident_message
from bot.services.incidents import get_incident
from bot.services.ingest import ingest_delivery
from tests.conftest import PLAYBOOKS, Clock, delivery

TOKEN = "api-token-for-tests-0123"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
S = IncidentStatus


@pytest.fixture
def served(build: Callable[..., bootstrap.App], make_settings: Callable[..., Settings],
           clock: Clock) -> tuple[bootstrap.App, TestClient]:
    """INC-1 (checkout) open, behind an API token."""
    app = build(make_settings(api=ApiSettings(tokens=[TOKEN])))
    ingest_delivery(store=app.ctx.store, delivery=delivery("01"), playbooks=app.ctx.playbooks,
                    policy=app.ctx.settings.incidents, now=clock())
    return app, TestClient(app.http)


def put(app: bootstrap.App, status: IncidentStatus) -> None:
    """Set INC-1's state as Backout's own steps would have (the revert applied, the metric recovered)."""
    incident = get_incident(store=app.ctx.store, incident_id=1).incident
    app.ctx.store.run(lambda tx: tx.incidents.save(incident.model_copy(update={"status": status})))


def test_a_person_reopens_a_resolved_incident_through_the_api(served: tuple[bootstrap.App, TestClient]) -> None:
    """Resolve, then `POST .../reopen` with who and why: open again, on the timeline; a second reopen
    changes nothing; reopening an open incident is 409 naming its state."""
    _, client = served
    assert client.post("/api/incidents/INC-1/resolve", json={"by": "bob"}, headers=BEARER).status_code == 200
    answer = client.post("/api/incidents/INC-1/reopen", json={"by": "alice", "note": "errors again"},
                         headers=BEARER)
    assert answer.status_code == 200
    assert (answer.json()["status"], answer.json()["changed"]) == ("open", True)
    timeline = client.get("/api/incidents/INC-1/timeline", headers=BEARER).json()["timeline"]
    assert (timeline[-1]["kind"], timeline[-1]["text"]) == ("incident.reopened",
                                                            "Reopened by token-1 on behalf of alice: errors again")
    again = client.post("/api/incidents/INC-1/reopen", json={}, headers=BEARER)
    assert (again.status_code, again.json()["changed"]) == (200, False)
    put(served[0], S.MITIGATED)
    refused = client.post("/api/incidents/INC-1/reopen", json={}, headers=BEARER)
    assert refused.status_code == 409
    assert refused.json()["detail"] == "INC-1 is mitigated; it cannot become open"
    assert client.post("/api/incidents/INC-1/reopen", json={}).status_code == 401


@pytest.mark.parametrize(("state", "ack", "resolve"), [
    (S.MITIGATING, 409, 200), (S.MITIGATED, 409, 200), (S.VERIFIED, 409, 200), (S.CLOSED, 409, 409),
])
def test_each_state_allows_and_refuses_over_http(served: tuple[bootstrap.App, TestClient], state: IncidentStatus,
                                                  ack: int, resolve: int) -> None:
    """Acknowledging once the revert is under way is refused naming the state; resolving is allowed
    from every active state; a closed incident takes neither."""
    app, client = served
    put(app, state)
    acked = client.post("/api/incidents/INC-1/ack", json={}, headers=BEARER)
    assert acked.status_code == ack
    assert acked.json()["detail"] == f"INC-1 is {state.value}; it cannot become acknowledged"
    assert client.post("/api/incidents/INC-1/resolve", json={}, headers=BEARER).status_code == resolve


def test_a_resolved_incident_is_not_rolled_back_without_a_reopen(served: tuple[bootstrap.App, TestClient]) -> None:
    """The rollback plan of a resolved incident is 409, saying how to reopen it."""
    _, client = served
    client.post("/api/incidents/INC-1/resolve", json={}, headers=BEARER)
    refused = client.get("/api/incidents/INC-1/rollback", headers=BEARER)
    assert refused.status_code == 409
    assert refused.json()["detail"] == ("INC-1 is resolved; it cannot be rolled back; reopen it first "
                                        "(`backout reopen INC-1`)")


def test_the_cli_reopens_locally_and_through_the_server(served: tuple[bootstrap.App, TestClient],
                                                        tmp_path: Path) -> None:
    """`backout reopen INC-1 --note`: open again with the operator; the --server client's reopen is
    the API's; `backout ack` on a verified incident fails (exit 1) naming the state."""
    app, client = served
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"storage": {"url": app.ctx.settings.storage.url},
                                      "alertmanager": {"auth": "none"}, "playbooks_dir": str(PLAYBOOKS),
                                      "repos": [{"name": "gitops", "url": str(tmp_path / "gitops.git")}]}))
    runner = CliRunner()
    assert runner.invoke(cli, ["resolve", "INC-1", "--config", str(config)]).exit_code == 0
    done = runner.invoke(cli, ["reopen", "INC-1", "--note", "still failing", "--config", str(config)])
    assert (done.exit_code, "INC-1 is now open" in done.output) == (0, True), done.output
    last = get_incident(store=app.ctx.store, incident_id=1).timeline[-1]
    assert (last.kind, last.text.endswith(": still failing")) == ("incident.reopened", True)

    def through_app(request: httpx.Request) -> httpx.Response:
        answer = client.request(request.method, str(request.url), headers=request.headers, content=request.content)
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    remote = BackoutClient("http://testserver", token=TOKEN, transport=httpx.MockTransport(through_app))
    remote.resolve("INC-1", by="bob", note="")
    assert remote.reopen("INC-1", by="bob", note="")["status"] == "open"
    put(app, S.VERIFIED)
    with pytest.raises(RemoteError, match="INC-1 is verified; it cannot become open"):
        remote.reopen("INC-1", by="bob", note="")
    refused = runner.invoke(cli, ["ack", "INC-1", "--config", str(config)])
    assert refused.exit_code == 1
    assert "INC-1 is verified; it cannot become acknowledged" in refused.output


def _buttons(app: bootstrap.App) -> list[str]:
    message = incident_message(store=app.ctx.store, incident_id=1, playbooks=app.ctx.playbooks)
    _, blocks = card_message(message.payload, incident_id=1)
    row = next((b for b in blocks if b.get("block_id") == "incident_1"), {"elements": []})
    return [e["action_id"] for e in row["elements"]]


def test_the_card_offers_what_the_state_allows(served: tuple[bootstrap.App, TestClient]) -> None:
    """Open: acknowledge and act; mitigated: act, no acknowledge; resolved: Reopen only; closed: nothing
    (tests/adapters/test_slack_card.py checks every state against the real Slack delivery)."""
    app, _ = served
    assert _buttons(app)[0] == ActionId.ACK
    put(app, S.MITIGATED)
    assert (ActionId.ACK in _buttons(app), ActionId.RESOLVE in _buttons(app)) == (False, True)
    put(app, S.RESOLVED)
    assert _buttons(app) == [ActionId.REOPEN]
    put(app, S.CLOSED)
    assert _buttons(app) == []
