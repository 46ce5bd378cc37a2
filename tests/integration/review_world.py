"""The world review risk's integration tests run in: a GitOps repository on the fake GitHub and one
on the fake GitLab (real git under both, served over HTTP), a config with review.risk on both,
a playbook for checkout, and helpers that push request heads and deliver the forges' webhooks."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Executor, Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from bot import bootstrap
from bot.adapters.console import RecordingNotifier
from bot.config import load_settings
from bot.domain.incidents import IncidentPolicy
from bot.domain.models import Actor, AlertStatus, Delivery, ReceivedAlert
from bot.domain.verdicts import VerdictKind
from bot.services.ingest import ingest_delivery
from bot.services.investigate import investigate
from bot.services.verdicts import record_verdict
from tests.fakes.forge_hooks import deliver_github, github_pull
from tests.fakes.git import InlineExecutor
from tests.fakes.github import FakeGitHub
from tests.fakes.gitlab import FakeGitLab
from tests.gitrepos import Remote, git

DEPLOY = "image: registry.example.com/checkout:{tag}\n"
CRD = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {{name: {name}}}\n"
SECRET, TOKEN = "gh-webhook-secret", "gl-webhook-token"
GH_PROJECT, GL_PROJECT = "acme/gitops", "acme/platform/platform"


class Dropped(Executor):
    """A work pool that dies before it runs anything (a crash right after the webhook answered)."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        return Future()


@dataclass
class World:
    tmp: Path
    gitops: Remote  # on the fake GitHub
    platform: Remote  # on the fake GitLab
    github: FakeGitHub
    gitlab: FakeGitLab
    block_on: list[str] = field(default_factory=list)
    apps: list[bootstrap.App] = field(default_factory=list)

    def app(self, executor: Executor | None = None) -> bootstrap.App:
        (self.tmp / "playbooks" / "checkout.yaml").write_text(yaml.safe_dump({
            "service": "checkout", "match": {"service": "checkout"},
            "repos": [{"repo": "gitops", "paths": ["apps/checkout/**"]},
                      {"repo": "platform", "paths": ["checkout/**"]}],
            "actions": {"on_open": "off"}, "review": {"block_on": self.block_on},
        }))
        built = bootstrap.build(load_settings(self.tmp / "config.yaml"), notifier=RecordingNotifier(),
                                work_executor=executor or InlineExecutor())
        self.apps.append(built)
        return built

    def incident(self, app: bootstrap.App, culprit: str) -> None:
        """INC-1 for checkout after the bad changes, investigated; a responder names `culprit`."""
        started = max(self.gitops.clock, self.platform.clock) + timedelta(minutes=5)
        alert = ReceivedAlert(fingerprint="f1", starts_at=started, ends_at=None, status=AlertStatus.FIRING,
                              labels={"alertname": "HighErrorRate", "service": "checkout"}, annotations={})
        ctx = app.ctx
        ingest_delivery(store=ctx.store, delivery=Delivery(group_key="g", status=AlertStatus.FIRING, alerts=(alert,)),
                        playbooks=ctx.playbooks, policy=IncidentPolicy(), now=started)
        investigate(store=ctx.store, git=ctx.git, notifier=ctx.notifier, playbooks=ctx.playbooks, incident_id=1,
                    now=started, import_window=timedelta(days=90), forge=ctx.forge, applied=ctx.applied)
        record_verdict(store=ctx.store, playbooks=ctx.playbooks, incident_id=1, kind=VerdictKind.CULPRIT, sha=culprit,
                       actor=Actor.USER, actor_id="U1", now=started + timedelta(minutes=20))


@contextmanager
def made_world(tmp_path: Path) -> Iterator[World]:
    """Two repositories with review.risk, one on the fake GitHub and one on the fake GitLab, served over HTTP."""
    gitops = Remote(tmp_path / "gitops")
    gitops.commit("init", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.0"), "apps/other/app.yaml": "a: 1\n"})
    platform = Remote(tmp_path / "platform")
    platform.commit("init", {"checkout/values.yaml": "replicas: 3\n", "other/values.yaml": "replicas: 1\n"})
    (tmp_path / "playbooks").mkdir()
    with FakeGitHub(gitops.bare, GH_PROJECT).serving() as github, \
            FakeGitLab(platform.bare, project=GL_PROJECT).serving() as gitlab:
        (tmp_path / "config.yaml").write_text(yaml.safe_dump({
            "server": {"public_url": "https://backout.example.com"},
            "storage": {"url": f"sqlite:///{tmp_path / 'backout.db'}"},
            "alertmanager": {"auth": "none"},
            "playbooks_dir": str(tmp_path / "playbooks"),
            "repos": [{"name": "gitops", "url": str(gitops.bare), "forge": "github", "github_repo": GH_PROJECT,
                       "review": {"risk": True}},
                      {"name": "platform", "url": str(platform.bare), "forge": "gitlab", "gitlab_project": GL_PROJECT,
                       "review": {"risk": True}}],
            "git": {"mirror_dir": str(tmp_path / "mirrors"), "import_window": "90d"},
            "github": {"api_url": github.base_url, "token": "ghs_fake", "throttle": False, "max_wait": "2s",
                       "webhook_secret": SECRET},
            "gitlab": {"url": gitlab.base_url, "token": "glpat-fake", "max_wait": "2s", "webhook_token": TOKEN},
        }))
        made = World(tmp_path, gitops, platform, github, gitlab)
        yield made
        for app in made.apps:
            app.close()


def request_head(remote: Remote, ref: str, files: dict[str, str], *, branch: str = "feature") -> str:
    """Commit on a feature branch of the work clone and push it where the forge keeps the request's head."""
    if git("rev-parse", "--abbrev-ref", "HEAD", cwd=remote.work) != branch:
        git("checkout", "--quiet", "-B", branch, f"origin/{remote.branch}", cwd=remote.work)
    sha = remote.commit(f"{branch}: change", files, push=False)
    git("push", "--quiet", "--force", "origin", f"HEAD:{ref}", cwd=remote.work)
    return sha


def bad_change_on_gitops(world: World) -> str:
    git("fetch", "--quiet", "origin", cwd=world.gitops.work)
    return world.gitops.commit("checkout: bump to 1.1", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.1")})


def pull(world: World, base_url: str, *, action: str, sha: str, number: int = 1) -> int:
    payload = github_pull(project=GH_PROJECT, number=number, action=action, head="feature", head_sha=sha)
    return deliver_github(base_url, "pull_request", payload, secret=SECRET).status_code


def risk_statuses(fake: FakeGitHub, sha: str) -> list[dict[str, Any]]:
    return [s for s in fake.statuses.get(sha, []) if s["context"] == "backout/risk"]


def note_posts(fake: FakeGitLab) -> int:
    return sum(n for (method, route), n in fake.calls.items() if method == "POST" and route.endswith("/notes"))


def risky_merge_request(world: World, app: bootstrap.App, iid: int) -> str:
    """On the GitLab repository: INC-1 caused by a change of checkout/values.yaml, and merge request
    `iid` (opened by someone) whose head changes that file again; its head's sha."""
    git("fetch", "--quiet", "origin", cwd=world.platform.work)
    world.incident(app, world.platform.commit("checkout: 5 replicas", {"checkout/values.yaml": "replicas: 5\n"}))
    sha = request_head(world.platform, f"refs/merge-requests/{iid}/head", {"checkout/values.yaml": "replicas: 6\n"})
    world.gitlab.open_by_someone(iid, "feature")
    return sha
