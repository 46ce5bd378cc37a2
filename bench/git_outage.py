"""A Git host that does not answer: how long incidents and a Flux event wait, with real git.

The host (git http-backend on loopback) holds every request unanswered after the mirror was warm.
Five incidents open one after the other (as the work pool runs them) and a Flux event names a
revision the mirror lacks; the script prints the seconds each waited for its answer. Before
issue 23 each waited out the fetch: up to `git.timeout` (2 min) per incident, one behind the other.
Then the connect deadline: a listener whose backlog is full, asked once with the default
`git.connect_timeout`. Usage: python bench/git_outage.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import yaml
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot import bootstrap
from bot.adapters.console import RecordingNotifier
from bot.adapters.git.host import Deadlines
from bot.adapters.git.mirror import GitMirrors, RepoSpec
from bot.adapters.git.runner import GitRunner
from bot.config import load_settings
from bot.domain.errors import TransientError
from bot.domain.models import AlertStatus, Delivery, ReceivedAlert
from bot.entrypoints.http_common import follow_up_work
from bot.entrypoints.scheduler import refresh_job
from bot.services.follow_ups import follow_up
from bot.services.ingest import ingest_delivery
from tests.adapters.test_controllers import DEPLOY, KEY, PLAYBOOK, flux_body, post_flux
from tests.conftest import Clock
from tests.fakes.git import InlineExecutor
from tests.fakes.git_host import DeafListener, GitHost
from tests.gitrepos import Remote

INCIDENTS = 5


def build(root: Path, host: GitHost, remote: Remote) -> tuple[bootstrap.App, Clock]:
    (root / "playbooks").mkdir()
    (root / "playbooks" / "checkout.yaml").write_text(yaml.safe_dump({**PLAYBOOK, "group_by": ["alertname"]}))
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump({
        "storage": {"url": f"sqlite:///{root / 'backout.db'}"}, "alertmanager": {"auth": "none"},
        "api": {"auth": "none"}, "flux": {"hmac_key": KEY}, "playbooks_dir": str(root / "playbooks"),
        "repos": [{"name": "gitops", "url": host.url("gitops/remote.git")}],
        "git": {"mirror_dir": str(root / "mirrors"), "import_window": "30d"}, "logging": {"level": "warning"},
    }))
    clock = Clock(remote.clock + timedelta(minutes=5))
    return bootstrap.build(load_settings(config), notifier=RecordingNotifier(), clock=clock,
                           work_executor=InlineExecutor()), clock


def open_incident(app: bootstrap.App, clock: Clock, n: int) -> float:
    """Seconds from the incident's opening to its first ranking (the follow-up, as the pool runs it)."""
    alert = ReceivedAlert(fingerprint=f"f{n}", starts_at=clock.now, ends_at=None, status=AlertStatus.FIRING,
                          labels={"alertname": f"Burst{n}", "service": "checkout"}, annotations={})
    outcome = ingest_delivery(store=app.ctx.store, playbooks=app.ctx.playbooks, now=clock.now,
                              policy=app.ctx.settings.incidents,
                              delivery=Delivery(group_key=f"g{n}", status=AlertStatus.FIRING, alerts=(alert,)))
    started = time.monotonic()
    follow_up(follow_up_work(app.ctx), opened=[i.id for i in outcome.opened if i.id], resolved=[], now=clock.now)
    return time.monotonic() - started


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        host = GitHost(root / "served")
        remote = Remote(root / "served" / "gitops")
        remote.commit("init", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.0", replicas=2)})
        app, clock = build(root, host, remote)
        refresh_job(app.ctx)
        host.stall()
        bump = remote.commit("checkout 2.0", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="2.0", replicas=2)})
        waits = [open_incident(app, clock, n) for n in range(INCIDENTS)]
        print(f"{INCIDENTS} incidents, host silent: seconds to first ranking "
              + " ".join(f"{w:.2f}" for w in waits))
        with TestClient(app.http) as client:
            started = time.monotonic()
            answer = post_flux(SimpleNamespace(client=client),  # type: ignore[arg-type]
                               flux_body("kustomization-succeeded", sha=bump, at=clock.now))
            print(f"Flux event for an unknown revision: {answer.status_code} {answer.json()['status']} "
                  f"in {time.monotonic() - started:.2f}s")
        host.answer()
        app.close()
        host.close()
        deaf = DeafListener()
        spec = RepoSpec(name="gitops", url=deaf.url("gitops.git"), branch="main", runner=GitRunner())
        git = GitMirrors({"gitops": spec}, mirror_dir=root / "deaf", deadlines=Deadlines())
        started = time.monotonic()
        try:
            git.remote_branch("gitops", "main")
        except TransientError as exc:
            print(f"host with a full backlog: failed after {time.monotonic() - started:.1f}s: {exc}")
        deaf.close()


if __name__ == "__main__":
    main()
