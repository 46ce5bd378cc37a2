"""Responders' verdicts through the API and the CLI, and the accuracy report built from them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from bot import bootstrap
from bot.cli import app as cli
from bot.config import ApiSettings, Settings
from bot.domain.changes import Change, Effect, FileChange
from bot.domain.models import Actor
from bot.domain.suspects import Ranking, RankingStatus, Suspect
from bot.domain.verdicts import Answer, Verdict, VerdictKind, accuracy, finding
from tests.conftest import TOKEN, Clock, payload_bytes
from tests.fakes.git import FakeGit

API_TOKEN = "api-token-for-tests-0123"
BEARER = {"Authorization": f"Bearer {API_TOKEN}"}
AT = datetime(2026, 11, 21, 22, 0, tzinfo=UTC)


def bump(sha: str) -> Change:
    return Change(repo="gitops", sha=sha * 40, parents=("0" * 40,), author="Dev <d@example.com>",
                  committed_at=datetime(2026, 11, 21, 22, 10, tzinfo=UTC), subject=f"checkout: bump {sha}",
                  files=(FileChange(path="apps/checkout/deploy.yaml", status="M", effects=(Effect.IMAGE,)),))


def opened(build: Callable[..., bootstrap.App], make_settings: Callable[..., Settings], fake_git: FakeGit,
           clock: Clock, **api: object) -> TestClient:
    fake_git.changes["gitops"] = [bump("a")]
    clock.now += timedelta(minutes=1)
    client = TestClient(build(make_settings(api=ApiSettings(**api))).http)
    client.post("/webhooks/alertmanager", content=payload_bytes("01"),
                headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    return client


def test_a_verdict_needs_an_api_token_and_lands_on_the_timeline_and_export(
    build: Callable[..., bootstrap.App], make_settings: Callable[..., Settings], fake_git: FakeGit, clock: Clock,
) -> None:
    """401 without a token (saying what is missing), 201 with one; the export carries it."""
    client = opened(build, make_settings, fake_git, clock, tokens=[API_TOKEN])
    body = {"verdict": "culprit", "sha": "aaaaaaa", "by": "alice"}
    refused = client.post("/api/incidents/INC-1/verdict", json=body)
    assert refused.status_code == 401
    assert refused.json()["detail"] == "send an API token as 'Authorization: Bearer <token>'"
    wrong = client.post("/api/incidents/INC-1/verdict", json=body, headers={"Authorization": "Bearer nope"})
    assert (wrong.status_code, wrong.json()["detail"]) == (401, "the API token is not valid")
    done = client.post("/api/incidents/INC-1/verdict", json=body, headers=BEARER)
    assert done.status_code == 201
    assert (done.json()["sha"], done.json()["actor_id"], done.json()["on_behalf_of"]) == ("a" * 40, "token-1", "alice")
    timeline = client.get("/api/incidents/INC-1/timeline", headers=BEARER).json()["timeline"]
    assert timeline[-1]["kind"] == "verdict.recorded"
    assert timeline[-1]["text"] == "token-1 on behalf of alice marked aaaaaaa as the change that caused it"
    exported = client.get("/api/incidents/INC-1/export", headers=BEARER).json()
    assert exported["verdict"] == {"culprit": "a" * 40, "no_change": False, "ruled_out": []}
    assert exported["suspects"]["items"][0]["verdict"] == "culprit"


def test_bad_verdicts_are_clear_client_errors(
    build: Callable[..., bootstrap.App], make_settings: Callable[..., Settings], fake_git: FakeGit, clock: Clock,
) -> None:
    """Unknown sha 404, not hex 400, unknown verdict 422, a sha with `no_change` 400; none configured 401."""
    client = opened(build, make_settings, fake_git, clock, tokens=[API_TOKEN])
    post = lambda body: client.post("/api/incidents/INC-1/verdict", json=body, headers=BEARER)  # noqa: E731
    assert post({"verdict": "culprit", "sha": "bbbbbbb"}).status_code == 404
    assert post({"verdict": "culprit", "sha": "zz"}).status_code == 400
    assert post({"verdict": "maybe", "sha": "aaaaaaa"}).status_code == 422
    assert post({"verdict": "no_change", "sha": "aaaaaaa"}).status_code == 400
    unconfigured = opened(build, make_settings, fake_git, clock)
    answer = unconfigured.post("/api/incidents/INC-1/verdict", json={"verdict": "no_change"}, headers=BEARER)
    assert answer.status_code == 401
    assert "none is configured" in answer.json()["detail"]


def test_accuracy_report_over_the_api(
    build: Callable[..., bootstrap.App], make_settings: Callable[..., Settings], fake_git: FakeGit, clock: Clock,
) -> None:
    """A confirmed confident first suspect counts as right; by service and by playbook."""
    client = opened(build, make_settings, fake_git, clock, tokens=[API_TOKEN])
    client.post("/api/incidents/INC-1/verdict", json={"verdict": "culprit", "sha": "a" * 12}, headers=BEARER)
    report = client.get("/api/report/accuracy", params={"since": "30d"}, headers=BEARER).json()
    assert report["overall"]["incidents"] == 1
    assert report["overall"]["precision_at_1"] == 1.0
    assert report["overall"]["recall_at_3"] == 1.0
    assert report["by_service"]["checkout"]["incidents"] == 1
    team = client.get("/api/report", headers=BEARER).json()
    assert team["accuracy"] == report["overall"]  # the team report carries the accuracy too
    assert team["incidents"] == 1
    assert client.get("/api/report").status_code == 401
    assert client.get("/api/report", params={"since": "soon"}, headers=BEARER).status_code == 422


def test_the_cli_records_verdicts_and_prints_the_report(tmp_path: Path) -> None:
    """`backout verdict INC-1 none`, then `backout report accuracy --json` counts it as abstention."""
    config = tmp_path / "config.yaml"
    (tmp_path / "playbooks").mkdir()
    config.write_text(yaml.safe_dump({"storage": {"url": f"sqlite:///{tmp_path / 'b.db'}"},
                                      "playbooks_dir": str(tmp_path / "playbooks")}))
    runner = CliRunner()
    built = bootstrap.build(bootstrap_settings(config), playbooks=[])
    from bot.services.incidents import open_manually

    open_manually(store=built.ctx.store, title="slow", service="checkout", playbook=None, actor_id="u",
                  now=datetime.now(UTC))
    built.close()
    done = runner.invoke(cli, ["verdict", "INC-1", "none", "--config", str(config)])
    assert done.exit_code == 0, done.output
    assert done.output.strip() == "INC-1: no_change"
    bad = runner.invoke(cli, ["verdict", "INC-1", "none", "--not", "--config", str(config)])
    assert bad.exit_code == 2
    report = runner.invoke(cli, ["report", "accuracy", "--since", "7d", "--json", "--config", str(config)])
    assert report.exit_code == 0, report.output
    assert '"abstention_no_cause": 1.0' in report.output
    table = runner.invoke(cli, ["report", "accuracy", "--config", str(config)])
    assert "overall" in table.output


def bootstrap_settings(config: Path) -> Settings:
    from bot.config import load_settings

    return load_settings(config)


def test_later_verdicts_correct_earlier_ones_and_accuracy_counts_them() -> None:
    """Culprit, then "not this one", then another culprit: the last word counts."""
    def v(kind: VerdictKind, sha: str | None, minute: int) -> Verdict:
        return Verdict(incident_id=1, kind=kind, sha=sha, repo="g" if sha else None, actor=Actor.USER,
                       at=AT + timedelta(minutes=minute))
    found = finding([v(VerdictKind.CULPRIT, "a", 0), v(VerdictKind.NOT_CULPRIT, "a", 1),
                     v(VerdictKind.CULPRIT, "b", 2)])
    assert found is not None
    assert (found.culprit, found.no_change, found.ruled_out) == ("b", False, frozenset({"a"}))
    assert finding([]) is None

    def ranking(confident: bool, *shas: str) -> Answer:
        return Answer.of(Ranking(status=RankingStatus.RANKED, confident=confident, reason="r", suspects=tuple(
            Suspect(repo="g", sha=sha, subject="s", author="a", applied_at=AT, applied_source="commit_time",
                    score=0.5, reasons=()) for sha in shas)))
    report = accuracy([
        ("checkout", "p", ranking(True, "b", "c"), found),  # confident, right
        ("checkout", "p", ranking(True, "c", "b"), found),  # confident, wrong, top 3
        ("cart", None, ranking(False, "c"), finding([v(VerdictKind.NO_CHANGE, None, 0)])),  # abstained, right
        ("cart", None, ranking(False, "c"), finding([v(VerdictKind.NOT_CULPRIT, "c", 0)])),  # no ground truth
    ])
    assert report["overall"] == {"incidents": 3, "precision_at_1": 0.5, "precision_of_confidence": 0.5,
                                 "recall_at_3": 1.0, "abstention_no_cause": 1.0, "confident": 2, "caused": 2,
                                 "no_change": 1,
                                 "calibration": [{"confidence": "0.0-0.3", "answers": 3, "right": 0.333}]}
    assert set(report["by_playbook"]) == {"p", "(none)"}
