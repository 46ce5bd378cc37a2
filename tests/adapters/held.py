"""Replicas of one Backout on one database, behind one Git host that can stop answering: for the
held controller events (a Flux event answered 202 while its revision is fetched, then a crash)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from fastapi.testclient import TestClient

from bot import bootstrap
from bot.adapters.console import RecordingNotifier
from bot.config import load_settings
from bot.domain.changes import AppliedSource
from tests.adapters.test_controllers import DEPLOY, KEY, PLAYBOOK, SERVICE, post_flux
from tests.conftest import Clock, need_binary
from tests.fakes.git_host import GitHost
from tests.gitrepos import Remote


class Dies(ThreadPoolExecutor):
    """A git-wait pool whose work never runs: the process died before its fetch landed."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        return Future()


@dataclass
class Replica:
    app: bootstrap.App
    client: TestClient
    clock: Clock

    def post_flux(self, body: bytes) -> Any:
        return post_flux(self, body)  # type: ignore[arg-type]

    def held(self) -> int:
        return self.app.ctx.store.run(lambda tx: tx.held_events.count())

    def metric(self, name: str) -> str:
        """The /metrics lines of this metric family."""
        text = self.client.get("/metrics").text
        return "\n".join(line for line in text.splitlines() if line.startswith(name))


@dataclass
class Site:
    """One Git host and its GitOps remote; replicas built on `storage_url`, each with its mirrors."""

    tmp: Path
    storage_url: str
    host: GitHost
    remote: Remote
    replicas: list[Replica] = field(default_factory=list)

    def replica(self, name: str, *, now: datetime, dies: bool = False, **git: str) -> Replica:
        """A Backout process; `dies`: its git-wait work never runs (it is killed after answering)."""
        config = self.tmp / f"{name}.yaml"
        config.write_text(yaml.safe_dump({
            "storage": {"url": self.storage_url},
            "alertmanager": {"auth": "none"}, "api": {"auth": "none", "metrics_public": True},
            "flux": {"hmac_key": KEY}, "playbooks_dir": str(self.tmp / "playbooks"),
            "repos": [{"name": "gitops", "url": self.host.url("gitops/remote.git"), "branch": "main"}],
            "git": {"mirror_dir": str(self.tmp / name / "mirrors"), "import_window": "30d", **git},
        }))
        clock = Clock(now)
        app = bootstrap.build(load_settings(config), notifier=RecordingNotifier(), clock=clock,
                              git_waits=Dies() if dies else None)
        replica = Replica(app, TestClient(app.http).__enter__(), clock)
        self.replicas.append(replica)
        return replica

    def drop(self, replica: Replica) -> None:
        """The process is gone: its app is closed (a fetch it started may still land in its mirrors)."""
        self.replicas.remove(replica)
        replica.client.__exit__(None, None, None)
        replica.app.close()

    def applied_by_flux(self, replica: Replica, sha: str) -> bool:
        found = replica.app.ctx.store.run(lambda tx: tx.changes.get_many("gitops", [sha]))
        return bool(found) and found[0].applied_source is AppliedSource.FLUX

    def close(self) -> None:
        self.host.answer()
        for replica in self.replicas:
            replica.client.__exit__(None, None, None)
            replica.app.close()
        self.host.close()


def served_gitops(tmp: Path) -> tuple[GitHost, Remote]:
    """A Git host serving the checkout GitOps remote, and the checkout playbook under tmp/playbooks."""
    need_binary("git")
    host = GitHost(tmp / "served")
    remote = Remote(tmp / "served" / "gitops")
    remote.commit("init", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.0", replicas=2),
                           "apps/checkout/service.yaml": SERVICE.format(kind="ClusterIP")})
    (tmp / "playbooks").mkdir()
    (tmp / "playbooks" / "checkout.yaml").write_text(yaml.safe_dump(PLAYBOOK))
    return host, remote


def make_site(tmp: Path, storage_url: str) -> Iterator[Site]:
    """The site for a test (a generator fixture body: the caller yields from it)."""
    site = Site(tmp, storage_url, *served_gitops(tmp))
    try:
        yield site
    finally:
        site.close()


def later(at: datetime, minutes: float) -> datetime:
    return at + timedelta(minutes=minutes)
