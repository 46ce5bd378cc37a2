"""Restore to last known good, from an investigated incident to one pull (merge) request on the fake
GitHub and GitLab with real git underneath: the last known good without controller events (commit
time plus sync_delay), the restore's tree, its body, idempotent re-runs, a forge that is down, a
push refused by branch protection, and following the pull request to the mitigation."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from bot import bootstrap
from bot.domain.errors import TransientError, UpstreamError
from bot.domain.models import Actor, IncidentStatus
from bot.services import lifecycle
from bot.services.good import last_known_good
from bot.services.incidents import get_incident
from bot.services.pull_requests import follow_pull_requests
from bot.services.restore import ActionResult, plan_restore, restore
from tests.fakes.github import FakeGitHub
from tests.fakes.gitlab import FakeGitLab
from tests.gitrepos import Remote, git
from tests.integration.flows import open_incident, write_config

pytestmark = pytest.mark.integration
DEPLOY = "image: registry.example.com/checkout:{tag}\nreplicas: {replicas}\n"
PAYMENTS = "image: registry.example.com/payments:2.0\nreplicas: {replicas}\n"


class World:
    """A GitOps remote whose checkout ran well for hours at `good`, then three commits (one to
    another service) in the half hour before the incident."""

    def __init__(self, root: Path) -> None:
        self.remote = Remote(root / "gitops")
        self.remote.commit("Initial layout", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.0", replicas=3),
                                              "apps/checkout/old-config.yaml": "feature: on\n",
                                              "apps/payments/deploy.yaml": PAYMENTS.format(replicas=2)})
        self.good = self.remote.commit("checkout: 4 replicas",
                                       {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.0", replicas=4)})
        self.bump = self.remote.commit("checkout: bump to 1.1", {
            "apps/checkout/deploy.yaml": DEPLOY.format(tag="1.1", replicas=4),
            "apps/checkout/migrations/002_add_index.sql": "CREATE INDEX x ON y(z);\n"}, minutes=600)
        self.payments = self.remote.commit("payments: scale up", {"apps/payments/deploy.yaml": PAYMENTS.format(
            replicas=6)})
        self.sidecar = self.remote.commit("checkout: sidecar, drop old config", {
            "apps/checkout/sidecar.yaml": "sidecar: envoy\n", "apps/checkout/old-config.yaml": None})

    def ls_tree(self, rev: str, prefix: str) -> list[str]:
        out = git("ls-tree", "-r", "--full-tree", rev, cwd=self.remote.bare).splitlines()
        return [line for line in out if line.split("\t", 1)[1].startswith(prefix)]


def make(app: bootstrap.App, *, include: tuple[str, ...] = ()) -> ActionResult:
    ctx = app.ctx
    plan = plan_restore(store=ctx.store, git=ctx.git, playbooks=ctx.playbooks, incident_id=1, now=ctx.clock(),
                        include=include)
    return restore(store=ctx.store, git=ctx.git, notifier=ctx.notifier, plan=plan, actor=Actor.USER, actor_id="U1",
                   now=ctx.clock(), forge=ctx.forge, reviewers=ctx.reviewers("checkout"), page_url=ctx.page_url(1))


@pytest.fixture(params=["github", "gitlab"])
def forge(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[World, Any, Path]]:
    """The world on the fake GitHub or GitLab, with a config whose playbook has these reviewers."""
    world = World(tmp_path)
    if request.param == "github":
        with FakeGitHub(world.remote.bare).serving() as fake:
            yield world, fake, write_config(
                tmp_path, world.remote, repo={"forge": "github", "github_repo": "acme/gitops"}, reviewers=["alice"],
                github={"api_url": fake.base_url, "token": "ghs_fake", "throttle": False, "max_wait": "2s"})
    else:
        with FakeGitLab(world.remote.bare).serving() as fake:
            yield world, fake, write_config(
                tmp_path, world.remote, repo={"forge": "gitlab", "gitlab_project": "acme/platform/gitops"},
                reviewers=["alice"], gitlab={"url": fake.base_url, "token": "glpat-fake", "max_wait": "2s"})


def requests_of(fake: Any) -> list[dict[str, Any]]:
    return list(fake.pulls.values()) if isinstance(fake, FakeGitHub) else list(fake.merge_requests.values())


def head_of(request: dict[str, Any]) -> str:
    return str(request["head"]["ref"] if "head" in request else request["source_branch"])


def test_the_last_known_good_without_controller_events(forge: tuple[World, Any, Path]) -> None:
    """Commit time plus sync_delay: the revision in place ten hours before the incident is good;
    the ones in place ten minutes (under good_after) and the one the incident started under are not."""
    world, _fake, config = forge
    app = open_incident(config, world.remote)
    [answer] = last_known_good(store=app.ctx.store, playbook=app.ctx.playbooks[0], now=app.ctx.clock())
    assert answer.good is not None
    assert answer.good.sha == world.good
    assert answer.current == world.sidecar
    assert "plus the sync delay (2m)" in answer.good.reasons[0]
    assert answer.good.until is not None
    assert answer.good.until == git_time(world, world.bump) + app.ctx.playbooks[0].suspects.sync_delay
    app.close()


def git_time(world: World, sha: str) -> datetime:
    return datetime.fromisoformat(git("show", "-s", "--format=%cI", sha, cwd=world.remote.bare))


def test_the_restore_is_one_request_with_the_good_tree_on_the_service_paths(forge: tuple[World, Any, Path]) -> None:
    """One branch, one pull (merge) request: the service's paths byte for byte as at the good
    revision, nothing else changed; the body lists each undone commit with its author and flags,
    says what it does to the cluster and warns of a combination that never ran. Run again: the same."""
    world, fake, config = forge
    app = open_incident(config, world.remote)
    result = make(app)
    branch = f"backout/INC-1/restore-{world.good[:7]}"
    assert result.action.state.value == "pr_open"
    [request] = requests_of(fake)
    assert head_of(request) == branch
    assert request["title"] == f"Restore checkout to last known good {world.good[:7]} (INC-1)"
    assert git("rev-parse", f"{branch}^", cwd=world.remote.bare) == world.sidecar
    assert world.ls_tree(branch, "apps/checkout/") == world.ls_tree(world.good, "apps/checkout/")
    assert world.ls_tree(branch, "apps/payments/") == world.ls_tree("main", "apps/payments/")
    body = request["body"] if "body" in request else request["description"]
    assert f"{world.sidecar[:7]} checkout: sidecar, drop old config by Dev One" in body
    assert f"{world.bump[:7]} checkout: bump to 1.1 by Dev One" in body
    assert "database-migration" in body  # the bump's revert-safety flag
    assert world.payments[:7] not in body
    assert "What it does to the cluster once merged" in body
    assert "may never have run together" in body
    message = git("log", "-1", "--format=%B", branch, cwd=world.remote.bare)
    assert f"- {world.bump[:7]} checkout: bump to 1.1 (Dev One <dev@example.com>)" in message
    again = make(app)
    assert again.message.startswith("already done")
    assert len(requests_of(fake)) == 1
    assert world.remote.branches() == [branch, "main"]
    app.close()


def test_the_restore_pull_request_followed_to_the_mitigation(forge: tuple[World, Any, Path]) -> None:
    """Open: mitigating; merged, plus the sync delay without controller events: mitigated. The
    PagerDuty outbox sees it as a restore (the timeline event's action)."""
    world, fake, config = forge
    app = open_incident(config, world.remote)
    make(app)
    ctx = app.ctx
    assert get_incident(store=ctx.store, incident_id=1).incident.status is IncidentStatus.MITIGATING
    fake.merge(1)
    follow_pull_requests(store=ctx.store, forge=ctx.forge, notifier=ctx.notifier, now=ctx.clock())
    delay = ctx.playbooks[0].suspects.sync_delay
    lifecycle.advance(store=ctx.store, notifier=ctx.notifier, playbooks=ctx.playbooks, now=ctx.clock() + delay)
    view = get_incident(store=ctx.store, incident_id=1)
    assert view.incident.status is IncidentStatus.MITIGATED
    merged = [e for e in view.timeline if e.kind == "pr.merged"]
    assert merged[0].data["action"] == "restore"
    assert merged[0].text.startswith("Restore merged by")
    app.close()


def test_a_forge_that_is_down_leaves_the_branch_and_the_next_run_opens_one_request(
    forge: tuple[World, Any, Path],
) -> None:
    """The forge answers 503 throughout: the branch is pushed, the failure says how to retry; the
    next run adopts the branch and opens the request."""
    world, fake, config = forge
    app = open_incident(config, world.remote)
    path = r"/pulls$" if isinstance(fake, FakeGitHub) else r"/merge_requests$"
    fake.fail("POST", path, 503, times=100)
    with pytest.raises(TransientError):
        make(app)
    view = get_incident(store=app.ctx.store, incident_id=1)
    assert view.actions[0].state.value == "pushed"
    fake.faults.clear()
    assert make(app).action.state.value == "pr_open"
    assert len(requests_of(fake)) == 1
    app.close()


def test_a_branch_left_by_a_crash_is_adopted(forge: tuple[World, Any, Path]) -> None:
    """The branch already on the remote (pushed before a crash, nothing recorded): adopted, one request."""
    world, fake, config = forge
    app = open_incident(config, world.remote)
    branch = f"backout/INC-1/restore-{world.good[:7]}"
    git("push", "--quiet", "origin", f"main:refs/heads/{branch}", cwd=world.remote.work)
    result = make(app)
    assert "found already pushed (adopted)" in result.message
    assert len(requests_of(fake)) == 1
    app.close()


def test_a_push_refused_by_branch_protection_names_the_rule(forge: tuple[World, Any, Path]) -> None:
    """A pre-receive refusal: the restore fails with the remote's words, on the timeline, no request."""
    world, fake, config = forge
    hook = world.remote.bare / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\nwhile read old new ref; do case $ref in refs/heads/backout/*)\n"
                    "echo 'protected branch hook declined: rule backout/* needs signed commits' >&2; exit 1;; "
                    "esac; done\n")
    hook.chmod(0o755)
    app = open_incident(config, world.remote)
    with pytest.raises(UpstreamError, match="rule backout/\\* needs signed commits"):
        make(app)
    view = get_incident(store=app.ctx.store, incident_id=1)
    assert view.actions[0].state.value == "failed"
    assert "rule backout/* needs signed commits" in view.timeline[-1].text
    assert requests_of(fake) == []
    app.close()
