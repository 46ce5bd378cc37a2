"""From alert to revert merge request on the fake GitLab, with real git underneath: the merge
request's content, the draft on a conflict, GitLab's dry-run cross-check, a crash between push and
merge request, following it to the merge, applied times from an environment's deployments."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from bot.domain.errors import TransientError
from bot.domain.models import IncidentStatus
from bot.services.export import build_export
from bot.services.incidents import get_incident
from bot.services.notify import incident_lines
from bot.services.pull_requests import follow_pull_requests
from tests.fakes.gitlab import FakeGitLab
from tests.gitrepos import Remote, git
from tests.integration.flows import open_incident, roll_back, write_config
from tests.integration.processes import rollback_killed_after_push

pytestmark = pytest.mark.integration
DEPLOY = "image: registry.example.com/checkout:{tag}\n"
World = tuple[Path, Remote, FakeGitLab, str]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """A remote whose bad change came through a merge request, the fake GitLab over it, a config."""
    remote = Remote(tmp_path / "gitops")
    remote.commit("init", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.0")})
    git("checkout", "--quiet", "-b", "bump", cwd=remote.work)
    remote.commit("checkout: bump to 1.1", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.1"),
                                            "apps/checkout/migrations/002_add_index.sql": "CREATE INDEX x;\n"},
                  push=False)
    git("checkout", "--quiet", "main", cwd=remote.work)
    git("merge", "--quiet", "--no-ff", "bump", "-m", "Merge branch 'bump' into 'main'", "-m", "checkout: bump to 1.1",
        "-m", "See merge request acme/platform/gitops!7", cwd=remote.work, when=remote.clock + timedelta(minutes=2))
    remote.clock += timedelta(minutes=2)
    remote.push()
    bad = git("rev-parse", "HEAD", cwd=remote.work)
    with FakeGitLab(remote.bare).serving() as fake:
        config = write_config(tmp_path, remote, repo={"forge": "gitlab", "gitlab_project": "acme/platform/gitops"},
                              reviewers=["alice", "bob"], github={"applied_window": "90d"},
                              gitlab={"url": fake.base_url, "token": "glpat-fake-token", "max_wait": "2s"})
        yield config, remote, fake, bad


def test_the_revert_becomes_one_merge_request_that_explains_itself(world: World) -> None:
    """The same title and body as on GitHub, labels and GitLab reviewers; the dry run agrees."""
    config, remote, fake, bad = world
    app = open_incident(config, remote)
    top = get_incident(store=app.ctx.store, incident_id=1).ranking.suspects[0]
    assert (top.sha, top.pr_number) == (bad, 7)
    result = roll_back(app)
    [merge_request] = fake.merge_requests.values()
    assert merge_request["source_branch"] == f"backout/INC-1/revert-{bad[:7]}"
    assert merge_request["title"].startswith('Revert "Merge branch \'bump\' into \'main\'"')
    assert merge_request["title"].endswith("(INC-1)")
    assert not merge_request["draft"]
    body = merge_request["description"]
    assert body.startswith("Backout opened this merge request for **INC-1**")
    assert result.message.endswith(f"; merge request {merge_request['web_url']}")
    assert "https://backout.example.com/incidents/INC-1" in body
    assert "Suspect score" in body
    assert "database-migration" in body
    assert merge_request["labels"] == ["backout", "incident", "revert"]
    assert [r["username"] for r in merge_request["reviewers"]] == ["alice", "bob"]
    assert fake.dry_runs == [(bad, "main")]
    assert result.action.state.value == "pr_open"
    assert result.action.url == merge_request["web_url"]
    view = get_incident(store=app.ctx.store, incident_id=1)
    texts = [e.text for e in view.timeline]
    assert any(t.startswith("Merge request !1 opened for backout/INC-1/revert-") for t in texts)
    assert not any("dry-run" in t for t in texts), "GitLab agreed: nothing to say"
    assert view.actions[0].detail["forge_check"] == "clean"
    again = roll_back(app)
    assert again.message.startswith("already done")
    assert len(fake.merge_requests) == 1
    assert len(fake.dry_runs) == 1, "asked once"
    # The suspect came from merge request !7: the export names and links it the GitLab way.
    document = build_export(view, generated_at=app.ctx.clock(), links=app.ctx.export_links())
    item = document["suspects"]["items"][0]
    assert (item["pr_ref"], item["pr_url"]) == ("!7", f"{fake.base_url}/acme/platform/gitops/-/merge_requests/7")
    assert f"{bad[:7]} Merge branch 'bump' into 'main' (!7) by" in "\n".join(incident_lines(view))
    assert item["url"] == f"{fake.base_url}/acme/platform/gitops/-/commit/{bad}"
    app.close()


def test_a_conflict_opens_a_draft_merge_request_for_the_incident_branch(world: World) -> None:
    config, remote, fake, bad = world
    remote.commit("checkout: bump to 1.2", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.2")}, minutes=1)
    app = open_incident(config, remote)
    result = roll_back(app, sha=bad[:10])
    [merge_request] = fake.merge_requests.values()
    assert merge_request["draft"] is True
    assert merge_request["title"].startswith("Draft: INC-1: incident branch")
    assert merge_request["source_branch"] == "backout/INC-1/incident"
    assert "apps/checkout/deploy.yaml" in merge_request["description"]
    assert "This draft merge request is the incident branch" in merge_request["description"]
    assert result.branch_action is not None
    assert result.branch_action.url == merge_request["web_url"]
    view = get_incident(store=app.ctx.store, incident_id=1)
    assert view.actions[0].detail["forge_check"] == "conflict"  # GitLab agrees: nothing on the timeline
    assert not any("dry-run" in e.text for e in view.timeline)
    app.close()


def test_a_disagreeing_dry_run_is_recorded(world: World) -> None:
    """GitLab says it cannot revert what the local revert did cleanly: said on the timeline; the
    merge request is opened all the same (the local revert is what was pushed)."""
    config, remote, fake, _bad = world
    fake.fail("POST", r"/revert$", 400, message="Sorry, we cannot revert this commit automatically.")
    app = open_incident(config, remote)
    assert roll_back(app).action.state.value == "pr_open"
    view = get_incident(store=app.ctx.store, incident_id=1)
    [note] = [e for e in view.timeline if "dry-run" in e.text]
    assert "says it conflicts; the local revert applied cleanly" in note.text
    assert note.data["forge_check"] == "conflict"
    app.close()


def test_a_crash_between_push_and_merge_request_ends_with_one_merge_request(world: World, tmp_path: Path) -> None:
    config, remote, fake, bad = world
    open_incident(config, remote).close()
    run_again = rollback_killed_after_push(config, remote.bare, tmp_path)
    assert fake.merge_requests == {}
    done = run_again()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "found already pushed (adopted)" in done.stdout
    assert "https://gitlab.example/acme/platform/gitops/-/merge_requests/1" in done.stdout
    assert len(fake.merge_requests) == 1
    assert fake.merge_requests[1]["source_branch"] == f"backout/INC-1/revert-{bad[:7]}"


def test_following_the_merge_request_to_the_merge(world: World) -> None:
    """A failed pipeline is recorded once; the open merge request makes the incident mitigating, and
    it stays so once merged, until the revert is applied."""
    config, remote, fake, _bad = world
    app = open_incident(config, remote)
    roll_back(app)
    ctx = app.ctx

    def follow() -> int:
        return follow_pull_requests(store=ctx.store, forge=ctx.forge, notifier=ctx.notifier, now=ctx.clock())

    assert follow() == 0
    fake.set_pipeline(1, "failed")
    assert follow() == 1
    assert follow() == 0
    fake.merge(1, by="alice")
    assert follow() == 1
    view = get_incident(store=ctx.store, incident_id=1)
    assert view.incident.status is IncidentStatus.MITIGATING
    texts = [e.text for e in view.timeline]
    assert "Checks on merge request !1 are failing" in texts
    assert "Revert merged by alice (merge request !1)" in texts
    assert any(t.startswith("Mitigating: the revert of ") and t.endswith(" is proposed in merge request !1")
               for t in texts), "mitigating from the merge request's opening, named as GitLab does"
    assert view.actions[0].state.value == "merged"
    app.close()


def test_closed_unmerged_is_recorded(world: World) -> None:
    config, remote, fake, _bad = world
    app = open_incident(config, remote)
    roll_back(app)
    fake.close(1)
    ctx = app.ctx
    assert follow_pull_requests(store=ctx.store, forge=ctx.forge, notifier=ctx.notifier, now=ctx.clock()) == 1
    texts = [e.text for e in get_incident(store=ctx.store, incident_id=1).timeline]
    assert "Merge request !1 was closed without merging" in texts
    app.close()


def test_gitlab_down_leaves_the_branch_and_a_way_to_retry(world: World) -> None:
    config, remote, fake, _bad = world
    app = open_incident(config, remote)
    fake.fail("POST", r"/merge_requests$", 503, times=100)
    with pytest.raises(TransientError, match=r"gitlab merge_requests\.create: 503"):
        roll_back(app)
    view = get_incident(store=app.ctx.store, incident_id=1)
    assert view.actions[0].state.value == "pushed"
    assert "Run the rollback again to retry" in view.timeline[-1].text
    fake.faults.clear()
    assert roll_back(app).action.state.value == "pr_open"
    assert len(fake.merge_requests) == 1
    app.close()


def test_an_environments_deployments_give_the_applied_time_and_calls_are_counted(world: World) -> None:
    config, remote, fake, bad = world
    data = yaml.safe_load(config.read_text())
    data["repos"][0]["applied"] = {"source": "environments", "environment": "production"}
    config.write_text(yaml.safe_dump(data))
    deployed = remote.clock + timedelta(minutes=3)
    fake.add_deployment(bad, "production", "success", deployed)
    fake.add_deployment(bad, "staging", "success", deployed - timedelta(minutes=20))
    app = open_incident(config, remote)
    top = get_incident(store=app.ctx.store, incident_id=1).ranking.suspects[0]
    assert (top.sha, top.applied_at, top.applied_source.value) == (bad, deployed, "deployment")
    assert top.reasons[0] == "applied 2m before the incident started"
    metrics = app.ctx.metrics.render().decode()
    assert 'backout_gitlab_calls_total{endpoint="deployments.list",outcome="ok"} 1.0' in metrics
    assert "backout_gitlab_rate_limit_remaining" in metrics
    assert "backout_github_calls_total" not in metrics
    app.close()
