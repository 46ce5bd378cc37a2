"""From alert to revert pull request on the fake GitHub, with real git underneath: the PR's
content, the draft PR on a conflict, a crash between push and PR, and following the PR."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from bot.domain.models import Actor, IncidentStatus
from bot.services import lifecycle
from bot.services.act import choose_commit, rollback
from bot.services.incidents import get_incident
from bot.services.pull_requests import follow_pull_requests
from tests.fakes.github import FakeGitHub
from tests.gitrepos import Remote
from tests.integration.flows import open_incident, roll_back, write_config
from tests.integration.processes import rollback_killed_after_push

pytestmark = pytest.mark.integration
DEPLOY = "image: registry.example.com/checkout:{tag}\n"
EVIL = "*5xx* <https://evil.example|x>"  # what Markdown would read as markup: shown as text


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Path, Remote, FakeGitHub, str]]:
    """A remote with a bad migration + image bump, the fake GitHub over it, and a config."""
    remote = Remote(tmp_path / "gitops")
    remote.commit("init", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.0")})
    bad = remote.commit("checkout: bump to 1.1 <!channel>", {
        "apps/checkout/deploy.yaml": DEPLOY.format(tag="1.1"),
        "apps/checkout/migrations/002_add_index.sql": "CREATE INDEX x ON y(z);\n"})
    with FakeGitHub(remote.bare).serving() as fake:
        config = write_config(tmp_path, remote, repo={"forge": "github", "github_repo": "acme/gitops"},
                              reviewers=["alice", "acme/checkout-oncall"],
                              github={"api_url": fake.base_url, "token": "ghs_fake_token", "throttle": False,
                                      "max_wait": "2s"})
        yield config, remote, fake, bad


def test_the_revert_becomes_one_pull_request_that_explains_itself(
    world: tuple[Path, Remote, FakeGitHub, str],
) -> None:
    """Title names incident and change; the body has score, reasons, safety, alerts and a link."""
    config, remote, fake, bad = world
    app = open_incident(config, remote, summary=EVIL)
    result = roll_back(app)
    [pull] = fake.pulls.values()
    assert pull["head"]["ref"] == f"backout/INC-1/revert-{bad[:7]}"
    assert pull["title"].startswith('Revert "checkout: bump to 1.1')
    assert pull["title"].endswith("(INC-1)")
    body = pull["body"]
    assert "https://backout.example.com/incidents/INC-1" in body
    assert "Suspect score" in body
    assert "database-migration" in body
    # What Markdown would read as a tag or an autolink is backslashed: GitHub shows it as text.
    assert not re.search(r"(?<!\\)<!channel>", body)
    assert not re.search(r"(?<!\\)<https://evil", body)
    assert "\\<!channel>" in body
    assert [label["name"] for label in pull["labels"]] == ["backout", "incident", "revert"]
    assert pull["requested_teams"] == [{"slug": "checkout-oncall"}]
    assert result.action.state.value == "pr_open"
    assert result.action.url == pull["html_url"]
    again = roll_back(app)
    assert again.message.startswith("already done")
    assert len(fake.pulls) == 1
    app.close()


def test_a_rollback_through_the_api_links_the_page_without_a_token(
    world: tuple[Path, Remote, FakeGitHub, str],
) -> None:
    """The pull request outlives any signed token: its body links the plain page (a signed-in
    browser opens it), while the API hands the caller a fresh signed link."""
    config, remote, fake, bad = world
    config.write_text(yaml.safe_dump(yaml.safe_load(config.read_text()) | {"api": {"auth": "none"}}))
    app = open_incident(config, remote, summary=EVIL)
    with TestClient(app.http) as client:
        assert client.post("/api/incidents/INC-1/rollback", json={"commit": bad}).status_code == 200
        shown = client.get("/api/incidents/INC-1").json()
    [pull] = fake.pulls.values()
    assert "Incident page: https://backout.example.com/incidents/INC-1\n" in pull["body"]
    assert "?t=" not in pull["body"]
    assert shown["page_url"].startswith("https://backout.example.com/incidents/INC-1?t=")
    app.close()


def test_a_conflict_opens_a_draft_pull_request_for_the_incident_branch(
    world: tuple[Path, Remote, FakeGitHub, str],
) -> None:
    """A later change to the same lines: no revert PR, a draft PR naming the files instead."""
    config, remote, fake, bad = world
    remote.commit("checkout: bump to 1.2", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.2")}, minutes=1)
    app = open_incident(config, remote, summary=EVIL)
    change = choose_commit(store=app.ctx.store, playbook=app.ctx.playbooks[0], incident_id=1,
                           sha=bad[:10])
    result = rollback(store=app.ctx.store, git=app.ctx.git, notifier=app.ctx.notifier, incident_id=1,
                      change=change, actor=Actor.USER, actor_id="U1", now=app.ctx.clock(),
                      forge=app.ctx.forge)
    [pull] = fake.pulls.values()
    assert pull["draft"] is True
    assert pull["head"]["ref"] == "backout/INC-1/incident"
    assert "apps/checkout/deploy.yaml" in pull["body"]
    assert result.branch_action is not None
    assert result.branch_action.url == pull["html_url"]
    app.close()


def test_a_crash_between_push_and_pull_request_ends_with_one_pull_request(
    world: tuple[Path, Remote, FakeGitHub, str], tmp_path: Path,
) -> None:
    """The rollback process dies right after the push; run again: the branch is adopted, one PR."""
    config, remote, fake, bad = world
    open_incident(config, remote, summary=EVIL).close()
    run_again = rollback_killed_after_push(config, remote.bare, tmp_path)
    assert fake.pulls == {}
    done = run_again()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "found already pushed (adopted)" in done.stdout
    assert "; pull request https://github.example/acme/gitops/pull/1" in done.stdout
    assert len(fake.pulls) == 1
    assert fake.pulls[1]["head"]["ref"] == f"backout/INC-1/revert-{bad[:7]}"


def test_following_the_pull_request_to_the_merge(world: tuple[Path, Remote, FakeGitHub, str]) -> None:
    """Failing checks are recorded once; the open pull request makes the incident mitigating, and
    the merge plus the playbook's sync delay (no controller events) mitigated."""
    config, remote, fake, _bad = world
    app = open_incident(config, remote, summary=EVIL)
    roll_back(app)
    ctx = app.ctx
    assert follow_pull_requests(store=ctx.store, forge=ctx.forge, notifier=ctx.notifier, now=ctx.clock()) == 0
    fake.set_status(fake.pulls[1]["head"]["sha"], "failure")
    assert follow_pull_requests(store=ctx.store, forge=ctx.forge, notifier=ctx.notifier, now=ctx.clock()) == 1
    assert follow_pull_requests(store=ctx.store, forge=ctx.forge, notifier=ctx.notifier, now=ctx.clock()) == 0
    assert get_incident(store=ctx.store, incident_id=1).incident.status is IncidentStatus.MITIGATING
    fake.merge(1, by="octocat")
    follow_pull_requests(store=ctx.store, forge=ctx.forge, notifier=ctx.notifier, now=ctx.clock())
    view = get_incident(store=ctx.store, incident_id=1)
    assert view.incident.status is IncidentStatus.MITIGATING
    delay = ctx.playbooks[0].suspects.sync_delay
    lifecycle.advance(store=ctx.store, notifier=ctx.notifier, playbooks=ctx.playbooks, now=ctx.clock() + delay / 2)
    assert get_incident(store=ctx.store, incident_id=1).incident.status is IncidentStatus.MITIGATING
    lifecycle.advance(store=ctx.store, notifier=ctx.notifier, playbooks=ctx.playbooks, now=ctx.clock() + delay)
    view = get_incident(store=ctx.store, incident_id=1)
    merged_at = view.actions[0].updated_at
    assert (view.incident.status, view.incident.mitigated_at) == (IncidentStatus.MITIGATED, merged_at + delay)
    texts = [e.text for e in view.timeline]
    assert "Checks on pull request #1 are failing" in texts
    assert "Revert merged by octocat (pull request #1)" in texts
    assert view.actions[0].state.value == "merged"
    app.close()


def test_github_down_leaves_the_branch_and_a_way_to_retry(
    world: tuple[Path, Remote, FakeGitHub, str],
) -> None:
    """GitHub answering 503 throughout: the branch is pushed, the failure is on the timeline with
    the retry, and the next rollback opens the PR."""
    from bot.domain.errors import TransientError

    config, remote, fake, _bad = world
    app = open_incident(config, remote, summary=EVIL)
    fake.fail("POST", r"/pulls$", 503, times=100)
    with pytest.raises(TransientError):
        roll_back(app)
    view = get_incident(store=app.ctx.store, incident_id=1)
    assert view.actions[0].state.value == "pushed"
    assert "Run the rollback again to retry" in view.timeline[-1].text
    fake.faults.clear()
    assert roll_back(app).action.state.value == "pr_open"
    assert len(fake.pulls) == 1
    app.close()


def test_deployments_give_the_applied_time_and_calls_are_counted(
    world: tuple[Path, Remote, FakeGitHub, str],
) -> None:
    """With `applied.source: deployments` the suspect's time is the deployment's, not commit time;
    /metrics counts the GitHub calls."""
    config, remote, fake, bad = world
    data = yaml.safe_load(config.read_text())
    data["repos"][0]["applied"] = {"source": "deployments", "environment": "production"}
    data["github"]["applied_window"] = "90d"
    config.write_text(yaml.safe_dump(data))
    deployed = remote.clock + timedelta(minutes=3)
    fake.add_deployment(bad, "production", "success", deployed)
    app = open_incident(config, remote, summary=EVIL)
    top = get_incident(store=app.ctx.store, incident_id=1).ranking.suspects[0]
    assert (top.sha, top.applied_at, top.applied_source.value) == (bad, deployed, "deployment")
    assert top.reasons[0] == "applied 2m before the incident started"
    metrics = app.ctx.metrics.render().decode()
    assert 'backout_github_calls_total{endpoint="deployments.list",outcome="ok"} 1.0' in metrics
    assert "backout_github_rate_limit_remaining" in metrics
    app.close()


def test_a_missing_workflows_permission_is_named(world: tuple[Path, Remote, FakeGitHub, str]) -> None:
    """GitHub refusing a change to .github/workflows: the error names the missing permission,
    and a 403 that is not a rate limit is not retried."""
    from bot.domain.errors import UpstreamError

    config, remote, fake, _bad = world
    app = open_incident(config, remote, summary=EVIL)
    fake.fail("POST", r"/pulls$", 403, message="refusing to allow a GitHub App to create or update "
              "workflow `.github/workflows/ci.yml` without `workflows` permission")
    with pytest.raises(UpstreamError, match="the token needs the Workflows write permission"):
        roll_back(app)
    assert fake.calls[("POST", "/repos/acme/gitops/pulls")] == 1
    app.close()
