"""Who wrote: the API records the name of the token a write carries as its actor; a `by` in the
body is only whom the caller says it acts for, and is shown as "on behalf of" wherever the actor is."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from bot import bootstrap
from bot.cli.render import incident_text
from bot.config import Settings
from tests.adapters.test_verdicts import opened
from tests.conftest import Clock
from tests.fakes.git import FakeGit

CI = "ci-bot-token-0123456789"
OTHER = "alice-token-0123456789"
AS_CI = {"Authorization": f"Bearer {CI}"}
A = "a" * 40


def timeline(client: TestClient) -> list[dict[str, Any]]:
    answer: list[dict[str, Any]] = client.get("/api/incidents/INC-1/timeline", headers=AS_CI).json()["timeline"]
    return answer


def test_a_write_records_the_token_name_as_actor_and_by_only_as_on_behalf_of(
    build: Callable[..., bootstrap.App], make_settings: Callable[..., Settings], fake_git: FakeGit, clock: Clock,
) -> None:
    """`by: the-cto` with the ci-bot token: every write (ack, note, verdict, rollback) is ci-bot's,
    on behalf of the-cto; without `by` it is ci-bot's alone; another token writes as its own name."""
    client = opened(build, make_settings, fake_git, clock,
                    tokens=[{"name": "ci-bot", "token": CI}, {"name": "alice", "token": OTHER}])
    cto = {"by": "the-cto"}
    assert client.post("/api/incidents/INC-1/ack", json=cto, headers=AS_CI).status_code == 200
    [acked] = [e for e in timeline(client) if e["kind"] == "incident.acknowledged"]
    assert (acked["actor_id"], acked["data"]["on_behalf_of"]) == ("ci-bot", "the-cto")
    [lead] = [e for e in timeline(client) if e["kind"] == "incident.role"]  # the person, not the token
    assert (lead["text"], lead["actor_id"]) == ("lead: the-cto, the first to acknowledge", "ci-bot")
    assert acked["text"] == "Acknowledged by ci-bot on behalf of the-cto"
    assert acked["who"] == "ci-bot on behalf of the-cto"
    client.post("/api/incidents/INC-1/notes", json={"text": "looking", **cto}, headers=AS_CI)
    client.post("/api/incidents/INC-1/notes", json={"text": "mine"}, headers={"Authorization": f"Bearer {OTHER}"})
    *_, noted, own = timeline(client)
    assert (noted["actor_id"], noted["who"]) == ("ci-bot", "ci-bot on behalf of the-cto")
    assert (own["actor_id"], own["who"], own["data"]) == ("alice", "alice", {})
    verdict = client.post("/api/incidents/INC-1/verdict", json={"verdict": "culprit", "sha": "aaaaaaa", **cto},
                          headers=AS_CI).json()
    assert (verdict["actor_id"], verdict["on_behalf_of"]) == ("ci-bot", "the-cto")
    assert timeline(client)[-1]["text"] == "ci-bot on behalf of the-cto marked aaaaaaa as the change that caused it"
    rolled = client.post("/api/incidents/INC-1/rollback", json={"commit": A, **cto}, headers=AS_CI)
    assert rolled.status_code == 200, rolled.text
    [started] = [e for e in timeline(client) if e["kind"] == "action.started"]
    assert (started["actor_id"], started["who"]) == ("ci-bot", "ci-bot on behalf of the-cto")
    client.post("/api/incidents/INC-1/resolve", headers=AS_CI)
    assert (timeline(client)[-1]["text"], timeline(client)[-1]["who"]) == ("Resolved by ci-bot", "ci-bot")


def test_on_behalf_of_is_shown_in_the_page_the_exports_and_the_cli(
    build: Callable[..., bootstrap.App], make_settings: Callable[..., Settings], fake_git: FakeGit, clock: Clock,
) -> None:
    """The review page, the Markdown draft, the JSON export (events, verdicts, actions) and the
    CLI's `incidents show` name the token's holder and whom it acted for."""
    client = opened(build, make_settings, fake_git, clock, tokens=[{"name": "ci-bot", "token": CI}])
    cto = {"by": "the-cto"}
    client.post("/api/incidents/INC-1/notes", json={"text": "looking", **cto}, headers=AS_CI)
    client.post("/api/incidents/INC-1/verdict", json={"verdict": "culprit", "sha": "aaaaaaa", **cto}, headers=AS_CI)
    client.post("/api/incidents/INC-1/rollback", json={"commit": A, **cto}, headers=AS_CI)
    said = "ci-bot on behalf of the-cto"
    page = client.get("/incidents/INC-1", headers=AS_CI).text
    assert f"<td>{said}</td><td>looking</td>" in page
    assert f"({said})" in page, "the action says who made it"
    markdown = client.get("/api/incidents/INC-1/export", params={"format": "markdown"}, headers=AS_CI).text
    assert f"| {said} | looking |" in markdown
    assert f"({said})" in markdown
    document = client.get("/api/incidents/INC-1/export", headers=AS_CI).json()
    note = next(e for e in document["timeline"] if e["text"] == "looking")
    assert (note["actor_id"], note["on_behalf_of"], note["who"]) == ("ci-bot", "the-cto", said)
    assert [(v["actor_id"], v["on_behalf_of"]) for v in document["verdicts"]] == [("ci-bot", "the-cto")]
    assert [a["actor"] for a in document["actions"]] == [said]
    view = client.get("/api/incidents/INC-1", headers=AS_CI).json()
    assert f"{said} looking" in incident_text(view, colour=False)


def test_the_anonymous_caller_is_api_when_reads_are_open(
    build: Callable[..., bootstrap.App], make_settings: Callable[..., Settings], fake_git: FakeGit, clock: Clock,
) -> None:
    """api.auth none and no token: the actor is `api`, and `by` is still only "on behalf of"."""
    client = opened(build, make_settings, fake_git, clock, auth="none")
    client.post("/api/incidents/INC-1/ack", json={"by": "the-cto"})
    acked = timeline(client)[-1]
    assert (acked["actor_id"], acked["who"]) == ("api", "api on behalf of the-cto")


