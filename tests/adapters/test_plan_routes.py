"""The rollback plan through the HTTP API, the CLI (local and --server: the same answer) and the card."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from bot import bootstrap
from bot.cli import app as cli
from bot.cli.remote import BackoutClient
from bot.domain.actions import Action, ActionKind, ActionState
from bot.domain.changes import AppliedSource
from bot.domain.suspects import Ranking, RankingStatus, Suspect
from bot.services.incidents import get_incident
from bot.services.ingest import ingest_delivery
from bot.services.notify import incident_lines
from bot.services.plan import advance_plans
from tests.conftest import PLAYBOOKS, Clock, delivery


def suspect(sha: str, minutes_before: float, score: float, clock: Clock) -> Suspect:
    return Suspect(repo="gitops", sha=sha * 40, subject=f"change {sha}", author="Dev", score=score,
                   applied_at=clock() - timedelta(minutes=minutes_before), applied_source=AppliedSource.DEPLOYMENT,
                   reasons=(f"score {score}",))


@pytest.fixture
def tied(app: bootstrap.App, clock: Clock) -> bootstrap.App:
    """INC-1 (checkout) ranked as a tie: b applied 8 min before the alert, a 40 min before."""
    ctx = app.ctx
    ingest_delivery(store=ctx.store, delivery=delivery("01"), playbooks=ctx.playbooks, policy=ctx.settings.incidents,
                    now=clock())
    ranking = Ranking(status=RankingStatus.RANKED, confident=False, reason="Both likely: check both.",
                      suspects=(suspect("a", 40, 0.6, clock), suspect("b", 8, 0.45, clock)), ranked_at=clock(),
                      floor=0.35)
    ctx.store.run(lambda tx: tx.rankings.save(1, ranking))
    return app


def test_the_api_answers_the_plan_in_order_with_its_verification(tied: bootstrap.App, client: TestClient) -> None:
    """`GET /api/incidents/INC-1/plan`: the most recent first, the playbook's key query, step 1 now."""
    plan = client.get("/api/incidents/INC-1/plan").json()
    assert [(s["short"], s["state"]) for s in plan["steps"]] == [("bbbbbbb", "proposed"), ("aaaaaaa", "pending")]
    assert (plan["current"], plan["confident"], plan["proposed_at"]) == (1, False, None)
    assert plan["line"] == "plan: roll back bbbbbbb first, then aaaaaaa"
    assert plan["verify"]["healthy"] == "no longer above 0.05"
    assert plan["verify"]["within_seconds"] == 1800
    assert client.get("/api/incidents/INC-9/plan").status_code == 404


def test_the_cli_prints_the_same_plan_locally_and_from_the_server(
    tied: bootstrap.App, client: TestClient, tmp_path: Path,
) -> None:
    """`backout plan INC-1 --json` on the database equals the server's answer; the text names the order."""
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"storage": {"url": tied.ctx.settings.storage.url},
                                      "alertmanager": {"auth": "none"}, "playbooks_dir": str(PLAYBOOKS)}))
    runner = CliRunner()
    local = runner.invoke(cli, ["plan", "INC-1", "--json", "--config", str(config)])
    assert local.exit_code == 0, local.output
    def through_app(request: httpx.Request) -> httpx.Response:
        answer = client.request(request.method, str(request.url), headers=request.headers)
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    remote = BackoutClient("http://testserver", token=None, transport=httpx.MockTransport(through_app))
    assert json.loads(local.output) == remote.plan("INC-1")
    text = runner.invoke(cli, ["plan", "1", "--config", str(config)]).output
    assert "plan: roll back bbbbbbb first, then aaaaaaa" in text
    assert "1. proposed      bbbbbbb change b on gitops  <- now" in text
    assert "verified by: `sum(rate(" in text


def test_the_card_shows_the_plan_once_proposed_and_its_progress(tied: bootstrap.App, clock: Clock) -> None:
    """No line before "plan proposed"; then the order; a merged revert shows as rolling back."""
    ctx = tied.ctx
    assert not any(line.startswith("  plan:") for line in incident_lines(get_incident(store=ctx.store, incident_id=1)))
    advance_plans(store=ctx.store, notifier=ctx.notifier, playbooks=ctx.playbooks, now=clock())
    view = get_incident(store=ctx.store, incident_id=1)
    assert "  plan: roll back bbbbbbb first, then aaaaaaa" in incident_lines(view)
    ctx.store.run(lambda tx: tx.actions.add(Action(
        incident_id=1, kind=ActionKind.REVERT, repo="gitops", commit_sha="b" * 40, state=ActionState.MERGED,
        branch="backout/INC-1/revert-bbbbbbb", created_at=clock(), updated_at=clock())))
    assert "  plan: rolling back bbbbbbb, then aaaaaaa" in incident_lines(get_incident(store=ctx.store, incident_id=1))
