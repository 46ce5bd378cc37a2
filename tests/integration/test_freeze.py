"""Freeze and unfreeze as pull requests, with real git underneath and the fake GitHub and GitLab over
HTTP: only the service's lines change, the pull request says what merging does to the cluster, a
rerun adopts what is there, and the unfreeze gives back the files as they were, byte for byte."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from bot import bootstrap
from bot.cli import app as cli
from bot.domain.errors import Conflict, TransientError, UpstreamError
from bot.domain.models import Actor, IncidentStatus
from bot.domain.ports import Transaction
from bot.services.freeze import FreezeResult, freeze, unfreeze
from bot.services.freeze_follow import follow_freezes, list_freezes
from bot.services.incidents import get_incident
from bot.services.pull_requests import follow_pull_requests
from tests.fakes.github import FakeGitHub
from tests.fakes.gitlab import FakeGitLab
from tests.gitrepos import Remote, git
from tests.integration.flows import open_incident, roll_back, write_config
from tests.layouts import APPLICATION, CHECKOUT, PAYMENTS, flux_files

pytestmark = pytest.mark.integration
FROZEN = {"apps/checkout/deploy.yaml", "clusters/prod/images.yaml", "argocd/checkout.yaml"}


def gitops(tmp_path: Path) -> Remote:
    """Checkout and payments on Flux image automation (checkout's ImageRepository its own), checkout's
    Argo CD Application; then a bump of checkout (the suspect)."""
    remote = Remote(tmp_path / "gitops")
    remote.commit("init", {**flux_files(shared=False), "argocd/checkout.yaml": APPLICATION})
    remote.commit("checkout: 1.2.4", {"apps/checkout/deploy.yaml": CHECKOUT.replace("1.2.3", "1.2.4")})
    return remote


def configure(tmp_path: Path, remote: Remote, **forge: Any) -> Path:
    config = write_config(tmp_path, remote, reviewers=["alice"], **forge)
    (tmp_path / "playbooks" / "checkout.yaml").write_text(yaml.safe_dump({
        "service": "checkout", "match": {"service": "checkout"},
        "repos": [{"repo": "gitops", "paths": ["apps/checkout/**"]}],
        "actions": {"on_open": "off", "reviewers": ["alice"]}, "freeze": {"expires_after": "12h"},
        "gitops": {"flux": [{"kind": "Kustomization", "name": "checkout"}], "argocd": [{"app": "checkout"}]}}))
    return config


World = tuple[bootstrap.App, Remote, FakeGitHub]


@pytest.fixture
def github(tmp_path: Path) -> Iterator[World]:
    """INC-1 for checkout on the layout, with the fake GitHub over its remote."""
    remote = gitops(tmp_path)
    with FakeGitHub(remote.bare).serving() as fake:
        config = configure(tmp_path, remote, repo={"forge": "github", "github_repo": "acme/gitops"},
                           github={"api_url": fake.base_url, "token": "ghs_fake", "throttle": False,
                                   "max_wait": "2s"}, api={"auth": "none"})
        app = open_incident(config, remote)
        try:
            yield app, remote, fake
        finally:
            app.close()


def run(app: bootstrap.App, what: str = "freeze", **extra: Any) -> FreezeResult:
    ctx = app.ctx
    act = freeze if what == "freeze" else unfreeze
    return act(store=ctx.store, git=ctx.git, notifier=ctx.notifier, forge=ctx.forge, playbooks=ctx.playbooks,
               incident_id=1, actor=Actor.USER, actor_id="U1", now=ctx.clock(), page_url=ctx.page_url(1), **extra)


def merge(remote: Remote, branch: str) -> None:
    """What the forge's merge button does: the branch's commit onto main (a fast-forward here)."""
    git("update-ref", "refs/heads/main", f"refs/heads/{branch}", cwd=remote.bare)


def test_freeze_opens_one_pull_request_that_touches_only_the_service_lines(github: World) -> None:
    """The freeze branch changes checkout's marker, its own ImageRepository and its Application only;
    the pull request says what merging does; running it again adopts the same pull request."""
    app, remote, fake = github
    head = git("rev-parse", "main", cwd=remote.bare)
    result = run(app)
    again = run(app)
    [pull] = fake.pulls.values()
    assert pull["head"]["ref"] == "backout/INC-1/freeze"
    assert len(fake.pulls) == 1
    assert again.actions[0].url == result.actions[0].url == pull["html_url"]
    changed = git("diff", "--name-only", head, "backout/INC-1/freeze", cwd=remote.bare).splitlines()
    assert set(changed) == FROZEN, "payments' lines and checkout's Kustomization are left alone"
    diff = git("diff", "-U0", head, "backout/INC-1/freeze", cwd=remote.bare)
    removed = [line for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")]
    assert len(removed) == 4, removed  # checkout's marked line and syncPolicy.automated's three
    body = pull["body"]
    assert "### What merging it does to the cluster" in body
    assert "Flux stops scanning the registry for ImageRepository flux-system/checkout" in body
    assert "argocd app set checkout --sync-policy none" in body
    assert [label["name"] for label in pull["labels"]] == ["backout", "incident", "freeze"]
    view = get_incident(store=app.ctx.store, incident_id=1)
    assert view.incident.status is IncidentStatus.OPEN, "a freeze mitigates nothing"
    assert [e.kind for e in view.timeline].count("freeze.pushed") == 1
    assert view.actions[0].detail["expires_at"].startswith(str((app.ctx.clock()).year))


def test_unfreeze_gives_back_exactly_what_was_there(github: World) -> None:
    """Freeze merged, a later change elsewhere, then unfreeze: the frozen files are as before the freeze."""
    app, remote, fake = github
    before = git("rev-parse", "main", cwd=remote.bare)
    run(app)
    merge(remote, "backout/INC-1/freeze")
    fake.merge(1)
    assert follow_pull_requests(store=app.ctx.store, forge=app.ctx.forge, notifier=app.ctx.notifier,
                                now=app.ctx.clock()) == 1
    view = get_incident(store=app.ctx.store, incident_id=1)
    assert view.actions[0].state.value == "merged"
    assert view.incident.status is IncidentStatus.OPEN
    assert any(e.text.startswith("Freeze merged by octocat") for e in view.timeline)
    git("pull", "--quiet", "origin", "main", cwd=remote.work)
    remote.commit("payments: 2.0", {"apps/payments/deploy.yaml": PAYMENTS.replace("1.2.3", "2.0.0")})
    result = run(app, "unfreeze")
    assert [a.branch for a in result.actions] == ["backout/INC-1/unfreeze"]
    assert git("diff", before, "backout/INC-1/unfreeze", "--", *FROZEN, cwd=remote.bare) == ""
    assert git("diff", "--name-only", before, "backout/INC-1/unfreeze", cwd=remote.bare) == "apps/payments/deploy.yaml"
    assert fake.pulls[2]["title"] == "INC-1: unfreeze automation for checkout"
    run(app, "unfreeze")
    assert len(fake.pulls) == 2


def test_reconcile_disabled_is_refused_while_a_revert_is_on_its_way(github: World) -> None:
    """With the revert's pull request open, Flux's reconcile: disabled would keep it from the cluster."""
    app, remote, _ = github
    roll_back(app)
    with pytest.raises(Conflict, match="reconcile: disabled would keep revert"):
        run(app, reconcile_disabled=True)
    assert "backout/INC-1/freeze" not in remote.branches()


def test_a_push_refused_by_branch_protection_says_which_rule_and_a_rerun_finishes(github: World) -> None:
    """The hook's words reach the error and the timeline; once allowed, one branch, one pull request."""
    app, remote, fake = github
    hook = remote.bare / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\nwhile read old new ref; do case $ref in refs/heads/backout/*)\n"
                    "echo 'branch protection: backout/* needs approval' >&2; exit 1;; esac; done\n")
    hook.chmod(0o755)
    with pytest.raises(UpstreamError, match="branch protection: backout/\\* needs approval"):
        run(app)
    timeline = get_incident(store=app.ctx.store, incident_id=1).timeline
    assert any("needs approval" in e.text and "again to retry" in e.text for e in timeline)
    hook.unlink()
    run(app)
    assert len(fake.pulls) == 1
    assert "backout/INC-1/freeze" in remote.branches()


def test_on_gitlab_a_crash_after_the_push_is_finished_by_a_rerun(tmp_path: Path) -> None:
    """GitLab down when the merge request is opened: the branch is pushed; the rerun opens one."""
    remote = gitops(tmp_path)
    with FakeGitLab(remote.bare).serving() as fake:
        config = configure(tmp_path, remote, repo={"forge": "gitlab", "gitlab_project": "acme/platform/gitops"},
                           gitlab={"url": fake.base_url, "token": "glpat-fake-token", "max_wait": "2s"})
        app = open_incident(config, remote)
        try:
            fake.fail("POST", r"/merge_requests$", 503, times=10)
            with pytest.raises(TransientError, match="still failing after retries"):
                run(app)
            assert "backout/INC-1/freeze" in remote.branches()
            assert not fake.merge_requests
            fake.faults.clear()  # GitLab answers again
            result = run(app)
            [request] = fake.merge_requests.values()
            assert request["source_branch"] == "backout/INC-1/freeze"
            assert request["description"].startswith("Backout opened this merge request for **INC-1**")
            assert result.actions[0].request_name == "merge request !1"
        finally:
            app.close()


def follow(app: bootstrap.App, now: datetime) -> int:
    ctx = app.ctx
    return follow_freezes(store=ctx.store, git=ctx.git, notifier=ctx.notifier, forge=ctx.forge,
                          playbooks=ctx.playbooks, now=now, page_url=ctx.page_url)


def test_once_verified_the_unfreeze_opens_by_itself_reminds_and_an_expiry_is_reported(github: World) -> None:
    """Merged freeze, incident verified: one unfreeze pull request; a reminder per reminders.every
    while it is open; past the playbook's 12h expiry, one report on the timeline and in the list."""
    app, remote, fake = github
    now = app.ctx.clock()
    run(app)
    merge(remote, "backout/INC-1/freeze")
    fake.merge(1)
    follow_pull_requests(store=app.ctx.store, forge=app.ctx.forge, notifier=app.ctx.notifier, now=now)
    assert follow(app, now) == 0, "not verified yet: the freeze stays"

    def verified(tx: Transaction) -> None:
        incident = tx.incidents.get(1)
        assert incident is not None
        tx.incidents.save(incident.model_copy(update={"status": IncidentStatus.VERIFIED, "verified_at": now}))

    app.ctx.store.run(verified)
    follow(app, now)
    follow(app, now)
    assert [p["head"]["ref"] for p in fake.pulls.values()] == ["backout/INC-1/freeze", "backout/INC-1/unfreeze"]
    notices = app.ctx.notifier.notices  # type: ignore[attr-defined]
    assert follow(app, now + timedelta(minutes=11)) == 1
    assert [n.kind for n in notices].count("freeze.reminder") == 1
    later = now + timedelta(hours=13)
    assert [row.expired for row in list_freezes(store=app.ctx.store, now=later)] == [True]
    follow(app, later)
    follow(app, later)
    expired = [e for e in get_incident(store=app.ctx.store, incident_id=1).timeline if e.kind == "freeze.expired"]
    assert len(expired) == 1
    assert "still paused: merge the unfreeze" in expired[0].text


def test_the_api_freezes_by_service_lists_and_refuses_what_would_block_a_revert(github: World) -> None:
    """POST .../checkout/freeze freezes INC-1 (the service's active incident), twice is one pull request;
    GET /api/freezes lists it; an unknown service is a 404 saying what to name."""
    app, _, fake = github
    with TestClient(app.http) as client:
        first = client.post("/api/incidents/checkout/freeze", json={"by": "alice"})
        again = client.post("/api/incidents/INC-1/freeze")
        listed = client.get("/api/freezes").json()["freezes"]
        unknown = client.post("/api/incidents/payments/freeze")
    assert first.status_code == again.status_code == 200, first.text
    [action] = first.json()["actions"]
    assert (action["kind"], action["branch"], action["state"]) == ("freeze", "backout/INC-1/freeze", "pr_open")
    assert len(fake.pulls) == 1
    assert [(r["incident_ref"], r["repo"], r["expired"]) for r in listed] == [("INC-1", "gitops", False)]
    assert unknown.status_code == 404
    assert "no active incident of service 'payments'" in unknown.json()["detail"]


def test_the_cli_freezes_lists_and_unfreezes(github: World, tmp_path: Path) -> None:
    """`backout freeze checkout`, `backout freeze --list`, `backout unfreeze INC-1` on the config's database."""
    _, remote, fake = github
    config = str(tmp_path / "config.yaml")
    runner = CliRunner()
    frozen = runner.invoke(cli, ["freeze", "checkout", "--config", config])
    assert frozen.exit_code == 0, frozen.output
    assert "\nfreeze of gitops: pr_open, https://github.example/acme/gitops/pull/1\n" in frozen.output
    listed = runner.invoke(cli, ["freeze", "--list", "--json", "--config", config])
    assert [row["state"] for row in json.loads(listed.output)["freezes"]] == ["pr_open"]
    early = runner.invoke(cli, ["unfreeze", "INC-1", "--config", config])
    assert early.exit_code != 0
    assert "is not merged" in early.output
    assert "close its pull request instead" in early.output
    merge(remote, "backout/INC-1/freeze")
    fake.merge(1)
    assert runner.invoke(cli, ["unfreeze", "INC-1", "--config", config]).exit_code != 0, "not yet seen merged"
    assert len(fake.pulls) == 1
