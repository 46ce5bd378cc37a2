"""The incident branch as a workflow, with real git under the fake GitHub and the fake GitLab: the
branch in both repositories of the playbook (the suspect's revert applied where it applies cleanly,
from head with the conflict said otherwise), its drafts, "ready", pushes arriving by signed
webhook or by polling, the merge as the mitigation, the reminder at resolve, and a rerun after a
crash or a refusal ending with one branch and one pull request per repository."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import yaml

from bot import bootstrap
from bot.adapters.console import RecordingNotifier
from bot.config import load_settings
from bot.domain.actions import Action, ActionKind, ActionState
from bot.domain.chat import parse_command
from bot.domain.errors import BackoutError
from bot.domain.incidents import IncidentPolicy
from bot.domain.models import Actor, AlertStatus, Delivery, IncidentStatus, ReceivedAlert
from bot.entrypoints.serving import serve_in_thread
from bot.services import lifecycle
from bot.services.action_records import record_started
from bot.services.branch_pushes import poll_branches
from bot.services.chat import ChatCommands
from bot.services.incident_branch import mark_ready, open_branches
from bot.services.incidents import change_status, get_incident
from bot.services.ingest import ingest_delivery
from bot.services.investigate import investigate
from bot.services.watching import verify_rollbacks
from tests.fakes.forge_hooks import deliver_github, deliver_gitlab, github_merged, github_push, gitlab_push
from tests.fakes.github import FakeGitHub
from tests.fakes.gitlab import FakeGitLab
from tests.fakes.metrics import FakeMetrics
from tests.gitrepos import Remote, git

pytestmark = pytest.mark.integration
DEPLOY = "image: registry.example.com/checkout:{tag}\n"
BRANCH = "backout/INC-1/incident"
SECRET, TOKEN = "gh-webhook-secret", "gl-webhook-token"


@dataclass
class World:
    config: Path
    gitops: Remote  # on the fake GitHub: the bad change
    platform: Remote  # on the fake GitLab: nothing to roll back
    github: FakeGitHub
    gitlab: FakeGitLab
    bad: str
    good: str  # gitops before the bad change

    def open(self) -> bootstrap.App:
        """INC-1 for checkout five minutes after the bad change, investigated."""
        app = bootstrap.build(load_settings(self.config), notifier=RecordingNotifier())
        started = self.gitops.clock + timedelta(minutes=5)
        alert = ReceivedAlert(fingerprint="f1", starts_at=started, ends_at=None, status=AlertStatus.FIRING,
                              labels={"alertname": "HighErrorRate", "service": "checkout"}, annotations={})
        ingest_delivery(store=app.ctx.store, delivery=Delivery(group_key="g", status=AlertStatus.FIRING,
                                                               alerts=(alert,)),
                        playbooks=app.ctx.playbooks, policy=IncidentPolicy(), now=started)
        investigate(store=app.ctx.store, git=app.ctx.git, notifier=app.ctx.notifier, playbooks=app.ctx.playbooks,
                    incident_id=1, now=started, import_window=timedelta(days=90), forge=app.ctx.forge,
                    applied=app.ctx.applied)
        return app


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    gitops = Remote(tmp_path / "gitops")
    good = gitops.commit("init", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.0"),
                                  "apps/shared/mesh.yaml": "retries: 2\n"})
    platform = Remote(tmp_path / "platform")
    platform.commit("init", {"checkout/values.yaml": "replicas: 3\n"})
    bad = gitops.commit("checkout: bump to 1.1", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.1"),
                                                  "apps/checkout/migrations/002_add_index.sql": "CREATE INDEX x;\n"})
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "checkout.yaml").write_text(yaml.safe_dump({
        "service": "checkout", "match": {"service": "checkout"},
        "repos": [{"repo": "gitops", "paths": ["apps/checkout/**"], "shared_paths": ["apps/shared/**"]},
                  {"repo": "platform", "paths": ["checkout/**"]}],
        "actions": {"on_open": "off", "reviewers": ["alice"]},
        "suspects": {"sync_delay": "2m"},
        "key_query": "sum(rate(http_errors_total[5m]))", "verify": {"below": 1},
    }))
    with FakeGitHub(gitops.bare).serving() as github, \
            FakeGitLab(platform.bare, project="acme/platform/platform").serving() as gitlab:
        config = tmp_path / "config.yaml"
        config.write_text(yaml.safe_dump({
            "server": {"public_url": "https://backout.example.com"},
            "storage": {"url": f"sqlite:///{tmp_path / 'backout.db'}"},
            "alertmanager": {"auth": "none"},
            "playbooks_dir": str(tmp_path / "playbooks"),
            "repos": [{"name": "gitops", "url": str(gitops.bare), "forge": "github", "github_repo": "acme/gitops"},
                      {"name": "platform", "url": str(platform.bare), "forge": "gitlab",
                       "gitlab_project": "acme/platform/platform"}],
            "git": {"mirror_dir": str(tmp_path / "mirrors"), "import_window": "90d"},
            "github": {"api_url": github.base_url, "token": "ghs_fake", "throttle": False, "max_wait": "2s",
                       "webhook_secret": SECRET},
            "gitlab": {"url": gitlab.base_url, "token": "glpat-fake", "max_wait": "2s", "webhook_token": TOKEN},
        }))
        yield World(config, gitops, platform, github, gitlab, bad, good)


def branches(app: bootstrap.App) -> list:  # type: ignore[type-arg]
    ctx = app.ctx
    return open_branches(store=ctx.store, git=ctx.git, forge=ctx.forge, notifier=ctx.notifier,
                         playbooks=ctx.playbooks, incident_id=1, actor=Actor.USER, actor_id="U1", now=ctx.clock(),
                         page_url=ctx.page_url(1))


def events(app: bootstrap.App, kind: str) -> list:  # type: ignore[type-arg]
    return [e for e in get_incident(store=app.ctx.store, incident_id=1).timeline if e.kind == kind]


def test_the_branch_is_cut_in_every_repository_with_the_revert_where_it_applies(world: World) -> None:
    """gitops gets the suspect's revert (its tree is the one before it), platform its head; a draft each."""
    app = world.open()
    assert get_incident(store=app.ctx.store, incident_id=1).ranking.confident
    made = branches(app)
    assert [(a.repo, a.state) for a in made] == [("gitops", ActionState.PR_OPEN), ("platform", ActionState.PR_OPEN)]
    assert git("show", f"{BRANCH}:apps/checkout/deploy.yaml", cwd=world.gitops.bare) == DEPLOY.format(tag="1.0").strip()
    assert world.gitops.tree(BRANCH) == world.gitops.tree(f"{world.bad}~1")
    assert git("rev-parse", BRANCH, cwd=world.platform.bare) == git("rev-parse", "main", cwd=world.platform.bare)
    [pull] = world.github.pulls.values()
    assert (pull["draft"], pull["head"]["ref"], pull["base"]["ref"]) == (True, BRANCH, "main")
    assert f"revert of {world.bad[:7]}" in pull["body"]
    assert "applied cleanly" in pull["body"]
    assert "never points a controller at it" in pull["body"]
    [merge_request] = world.gitlab.merge_requests.values()
    assert merge_request["draft"]
    assert merge_request["title"].startswith("Draft: INC-1")
    assert "unchanged: no restore, revert or confident suspect" in merge_request["description"]
    again = branches(app)  # run again: adopted, nothing new
    assert [a.url for a in again] == [a.url for a in made]
    assert (len(world.github.pulls), len(world.gitlab.merge_requests)) == (1, 1)
    app.close()


def test_a_restore_already_made_is_what_the_branch_starts_with(world: World) -> None:
    """A restore to last known good made for gitops: the branch has the service's paths as at the good
    revision, byte for byte, the shared path as at head, and nothing else changed."""
    world.gitops.commit("mesh: 3 retries", {"apps/shared/mesh.yaml": "retries: 3\n"}, minutes=1)
    app = world.open()
    ctx = app.ctx
    now = ctx.clock()
    ctx.store.run(lambda tx: tx.actions.add(Action(
        incident_id=1, kind=ActionKind.RESTORE, repo="gitops", commit_sha=world.good, state=ActionState.PR_OPEN,
        branch=f"backout/INC-1/restore-{world.good[:7]}", actor_id="U1", created_at=now, updated_at=now,
        detail={"paths": ["apps/checkout/**"], "included": []})))
    branches(app)
    assert git("rev-parse", f"{BRANCH}:apps/checkout", cwd=world.gitops.bare) == \
        git("rev-parse", f"{world.good}:apps/checkout", cwd=world.gitops.bare)
    assert git("show", f"{BRANCH}:apps/shared/mesh.yaml", cwd=world.gitops.bare) == "retries: 3"
    assert git("diff", "--name-only", "main", BRANCH, cwd=world.gitops.bare).splitlines() == [
        "apps/checkout/deploy.yaml", "apps/checkout/migrations/002_add_index.sql"]
    [pull] = world.github.pulls.values()
    assert f"restore to last known good {world.good[:7]}, applied cleanly" in pull["body"]
    app.close()


def test_a_conflicting_revert_cuts_the_branch_from_head_and_says_why(world: World) -> None:
    """A later comment on the same line (no effect: the suspect stays confident): the branch is the
    head, the draft names the conflicting file."""
    head = world.gitops.commit("checkout: note the owner", {
        "apps/checkout/deploy.yaml": DEPLOY.format(tag="1.1").strip() + "  # owner: team-checkout\n"}, minutes=1)
    app = world.open()
    branches(app)
    assert git("rev-parse", BRANCH, cwd=world.gitops.bare) == head
    [pull] = world.github.pulls.values()
    assert "conflicts with later changes" in pull["body"]
    assert "apps/checkout/deploy.yaml" in pull["body"]
    [pushed] = [e for e in events(app, "branch.pushed") if "gitops" in e.text]
    assert "conflicts in apps/checkout/deploy.yaml" in pushed.text
    app.close()


def test_the_slack_branch_and_ready_commands_act_on_every_repository(world: World) -> None:
    """`/incident branch INC-1` cuts it in both repositories (it used to be the first only); `ready` follows."""
    app = world.open()
    ctx = app.ctx
    commands = ChatCommands(store=ctx.store, git=ctx.git, forge=ctx.forge, notifier=ctx.notifier,
                            playbooks=ctx.playbooks, clock=ctx.clock, responders=("U1",), page_url=ctx.page_url)
    made = commands.run(parse_command("branch INC-1"), user="U1", groups=lambda _: set())
    assert not made.private
    assert "gitops: backout/INC-1/incident" in made.text
    assert "platform: backout/INC-1/incident" in made.text
    assert BRANCH in world.platform.branches()
    ready = commands.run(parse_command("ready INC-1"), user="U1", groups=lambda _: set())
    assert "ready for review" in ready.text
    refused = commands.run(parse_command("ready INC-1"), user="U2", groups=lambda _: set())
    assert refused.private
    assert "may not ready" in refused.text
    app.close()


def test_ready_marks_both_drafts_ready_and_asks_the_reviewers(world: World) -> None:
    """GitHub through GraphQL's markPullRequestReadyForReview, GitLab by dropping "Draft:"; alice asked on both."""
    app = world.open()
    branches(app)
    ctx = app.ctx
    done = mark_ready(store=ctx.store, forge=ctx.forge, notifier=ctx.notifier, playbooks=ctx.playbooks,
                      incident_id=1, actor=Actor.USER, actor_id="U1", now=ctx.clock())
    [pull] = world.github.pulls.values()
    assert pull["draft"] is False
    assert pull["requested_reviewers"] == [{"login": "alice"}]
    [merge_request] = world.gitlab.merge_requests.values()
    assert not merge_request["draft"]
    assert merge_request["title"].startswith("INC-1")
    assert [r["username"] for r in merge_request["reviewers"]] == ["alice"]
    assert all(a.detail["ready"] for a in done)
    assert len(events(app, "branch.ready")) == 2
    app.close()


def test_signed_pushes_land_on_the_timeline_with_files_and_flags(world: World) -> None:
    """A push to the branch, delivered signed over HTTP by each forge: author, message, files, the
    migration flagged; delivered again, nothing doubles."""
    app = world.open()
    branches(app)
    for remote in (world.gitops, world.platform):
        git("fetch", "--quiet", "origin", f"{BRANCH}:{BRANCH}", cwd=remote.work)
        git("checkout", "--quiet", BRANCH, cwd=remote.work)
    before = git("rev-parse", BRANCH, cwd=world.gitops.bare)
    world.gitops.branch = world.platform.branch = BRANCH
    world.gitops.commit("checkout: drop the index", {"apps/checkout/migrations/003_drop_index.sql": "DROP INDEX x;\n"})
    old_platform = git("rev-parse", BRANCH, cwd=world.platform.bare)
    world.platform.commit("checkout: 4 replicas", {"checkout/values.yaml": "replicas: 4\n"})
    github = github_push(world.gitops.bare, project="acme/gitops", branch=BRANCH, old=before,
                         new=git("rev-parse", BRANCH, cwd=world.gitops.bare))
    gitlab = gitlab_push(world.platform.bare, project="acme/platform/platform", branch=BRANCH, old=old_platform,
                         new=git("rev-parse", BRANCH, cwd=world.platform.bare))
    with serve_in_thread(app.http) as url:
        assert deliver_github(url, "push", github, secret=SECRET).status_code == 202
        assert deliver_gitlab(url, "Push Hook", gitlab, token=TOKEN).status_code == 202
        assert deliver_github(url, "push", github, secret=SECRET).status_code == 202  # a redelivery
    [gh, gl] = events(app, "branch.commit")
    assert gh.actor_id == "alice"
    assert "checkout: drop the index" in gh.text
    assert gh.data["files"] == ["apps/checkout/migrations/003_drop_index.sql"]
    assert "database-migration" in " ".join(gh.data["flags"])
    assert gl.data["repo"] == "platform"
    assert gl.data["files"] == ["checkout/values.yaml"]
    actions = get_incident(store=app.ctx.store, incident_id=1).actions
    assert [len(a.detail.get("commits", [])) for a in actions if a.kind is ActionKind.INCIDENT_BRANCH] == [1, 1]
    app.close()


def test_a_bad_signature_or_token_is_refused_before_the_body_is_read(world: World) -> None:
    """401 for a wrong signature, a missing one, or a wrong GitLab token, even on a body that is no JSON."""
    app = world.open()
    with serve_in_thread(app.http) as url:
        wrong = deliver_github(url, "push", {"ref": "x"}, secret="not-the-secret")
        unsigned = httpx.post(f"{url}/webhooks/github", content=b"{not json", headers={"x-github-event": "push"})
        token = deliver_gitlab(url, "Push Hook", {"ref": "x"}, token="not-the-token")
    assert (wrong.status_code, unsigned.status_code, token.status_code) == (401, 401, 401)
    assert "X-Hub-Signature-256" in wrong.json()["detail"]
    app.close()


def test_without_webhooks_the_branch_is_polled_with_git(world: World) -> None:
    """No webhook delivered: the poll reads the branch's new commits once, with their files."""
    app = world.open()
    branches(app)
    git("fetch", "--quiet", "origin", f"{BRANCH}:{BRANCH}", cwd=world.gitops.work)
    git("checkout", "--quiet", BRANCH, cwd=world.gitops.work)
    world.gitops.branch = BRANCH
    world.gitops.commit("checkout: pin 1.0", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.0") + "# pinned\n"})
    ctx = app.ctx
    assert poll_branches(store=ctx.store, git=ctx.git, notifier=ctx.notifier, now=ctx.clock()) == 1
    assert poll_branches(store=ctx.store, git=ctx.git, notifier=ctx.notifier, now=ctx.clock()) == 0
    [commit] = events(app, "branch.commit")
    assert commit.data["files"] == ["apps/checkout/deploy.yaml"]
    assert "pin 1.0" in commit.text
    app.close()


def test_the_merge_is_the_mitigation_and_verification_follows(world: World) -> None:
    """The merge webhook: mitigating; past sync_delay without controllers: mitigated; then watched."""
    app = world.open()
    [gitops, _] = branches(app)
    ctx = app.ctx
    with serve_in_thread(app.http) as url:
        merged = github_merged(project="acme/gitops", number=gitops.detail["pr_number"], head=BRANCH,
                               merge_sha="8f2c1b7e0a4d4c0e9b1f3a6d5e7c9b2a4f6d8e01")
        assert deliver_github(url, "pull_request", merged, secret=SECRET).status_code == 202
    view = get_incident(store=ctx.store, incident_id=1)
    assert view.incident.status is IncidentStatus.MITIGATING
    assert [e.text for e in view.timeline if e.kind == "pr.merged"] == [
        f"Incident branch merged by bob ({gitops.request_name})"]
    later = ctx.clock() + timedelta(minutes=3)
    lifecycle.advance(store=ctx.store, notifier=ctx.notifier, playbooks=ctx.playbooks, now=later)
    assert get_incident(store=ctx.store, incident_id=1).incident.status is IncidentStatus.MITIGATED
    verify_rollbacks(store=ctx.store, metrics=FakeMetrics(), notifier=ctx.notifier, playbooks=ctx.playbooks,
                     now=later)
    assert events(app, "verify.started")
    app.close()


def test_resolving_with_the_branch_open_leaves_a_reminder(world: World) -> None:
    """Resolved while both branches are open: one reminder each, naming its pull request."""
    app = world.open()
    made = branches(app)
    change_status(store=app.ctx.store, incident_id=1, target=IncidentStatus.RESOLVED, actor=Actor.USER,
                  actor_id="U1", now=app.ctx.clock())
    reminders = events(app, "branch.reminder")
    assert [r.data["url"] for r in reminders] == [a.url for a in made]
    app.close()


def test_a_crash_or_a_refusal_then_a_rerun_ends_with_one_branch_and_one_request_each(world: World) -> None:
    """Crash after the push (the action left `started`), GitLab refusing the merge request once, branch
    protection refusing the push (its rule said), GitHub's answer to the create lost: each rerun
    adopts, one branch and one pull request per repository in the end."""
    app = world.open()
    ctx = app.ctx
    record_started(ctx.store, incident_id=1, kind=ActionKind.INCIDENT_BRANCH, repo="platform", sha="",
                   branch=BRANCH, actor=Actor.USER, actor_id="U1", now=ctx.clock(), auto=False)
    git("push", "--quiet", "origin", f"main:refs/heads/{BRANCH}", cwd=world.platform.work)  # pushed, then died
    hook = world.gitops.bare / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'GH006: Protected branch update failed for refs/heads/backout/INC-1/incident: "
                    "rule backout/** requires signed commits' >&2\nexit 1\n")
    hook.chmod(0o755)
    world.gitlab.fail("POST", "/merge_requests$", 403, message="403 Forbidden")
    with pytest.raises(BackoutError, match="requires signed commits"):
        branches(app)
    failed = [e.text for e in events(app, "action.failed")]
    assert any("requires signed commits" in text and "Run branch again" in text for text in failed)
    hook.unlink()
    world.github.fail("POST", "/pulls$", 502, after_write=True)  # GitHub made it; its answer was lost
    made = branches(app)
    assert [a.state for a in made] == [ActionState.PR_OPEN, ActionState.PR_OPEN]
    assert (len(world.github.pulls), len(world.gitlab.merge_requests)) == (1, 1)
    assert world.platform.branches().count(BRANCH) == 1
    assert world.gitops.branches().count(BRANCH) == 1
    assert "found already pushed" in next(e.text for e in events(app, "branch.pushed") if "platform" in e.text)
    app.close()
