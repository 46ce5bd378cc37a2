"""GitHub API calls for one incident, from alert to revert pull request, counted by the fake.

A GitOps history of 30 commits, each deployed to production (GitHub deployments give the
applied times), serves as the repository. For a first incident (cold caches) and a second
one in the same process (warm caches), it prints the reads made to rank (applied times),
the writes made to open the revert PR, the reads made by one poll of the PR, and how many of
those calls cost rate limit (a 304 costs nothing). Targets, warm: at most 3 reads to rank,
at most 6 writes to open the PR.
Usage: python bench/github_calls.py
"""

from __future__ import annotations

import sys
import tempfile
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot import bootstrap
from bot.adapters.console import RecordingNotifier
from bot.config import LoggingSettings, Settings
from bot.domain.incidents import IncidentPolicy
from bot.domain.models import Actor, AlertStatus, Delivery, ReceivedAlert
from bot.domain.playbooks import Playbook
from bot.services.act import choose_commit, rollback
from bot.services.ingest import ingest_delivery
from bot.services.investigate import investigate
from bot.services.pull_requests import follow_pull_requests
from tests.fakes.github import FakeGitHub
from tests.gitrepos import Remote

SERVICES = ("checkout", "payments", "search")


def main() -> None:
    bootstrap.configure_logging(LoggingSettings(level="warning"))
    with tempfile.TemporaryDirectory(prefix="backout-bench-") as tmp:
        root = Path(tmp)
        remote = gitops_history(root)
        with FakeGitHub(remote.bare).serving() as fake:
            for line in remote_log(remote):
                sha, minutes = line
                fake.add_deployment(sha, "production", "success", remote.clock - timedelta(minutes=minutes))
            settings = Settings.model_validate({
                "storage": {"url": f"sqlite:///{root / 'bench.db'}"},
                "alertmanager": {"auth": "none"},
                "repos": [{"name": "gitops", "url": str(remote.bare), "forge": "github",
                           "github_repo": "acme/gitops",
                           "applied": {"source": "deployments", "environment": "production"}}],
                "git": {"mirror_dir": str(root / "mirrors"), "import_window": "30d"},
                "github": {"api_url": fake.base_url, "token": "ghs_bench", "throttle": False,
                           "applied_window": "30d"},
            })
            playbooks = [Playbook.model_validate({
                "name": "checkout", "service": "checkout", "match": {"service": "checkout"},
                "group_by": ["alertname", "instance"],
                "repos": [{"repo": "gitops", "paths": ["apps/checkout/**"]}],
                "actions": {"on_open": "off", "reviewers": ["alice"]}})]
            app = bootstrap.build(settings, playbooks=playbooks, notifier=RecordingNotifier())
            rows = []
            for run, instance in (("cold", "a"), ("warm", "b")):
                rows.append((run, *one_incident(app, fake, remote, instance)))
            app.close()
    print("one incident, alert to revert PR (calls counted by the fake GitHub)")
    print(f"{'cache':<6}{'reads to rank':>15}{'writes to open PR':>20}{'reads per PR poll':>20}"
          f"{'rate-limit cost':>17}")
    for run, reads, writes, polls, cost in rows:
        print(f"{run:<6}{reads:>15}{writes:>20}{polls:>20}{cost:>17}")
    print("targets (warm): reads to rank <= 3, writes to open the PR <= 6")


def gitops_history(root: Path) -> Remote:
    """30 image bumps, 12 minutes apart, across three services."""
    remote = Remote(root / "gitops")
    for n in range(30):
        service = SERVICES[n % 3]
        manifest = {f"apps/{service}/deploy.yaml": f"image: {service}:1.{n}\n"}
        remote.commit(f"{service}: bump to 1.{n}", manifest, minutes=12, push=False)
    remote.push()
    return remote


def remote_log(remote: Remote) -> list[tuple[str, int]]:
    from tests.gitrepos import git

    shas = git("log", "--format=%H", "main", cwd=remote.bare).split()
    return [(sha, 12 * index + 1) for index, sha in enumerate(shas)]


def one_incident(app: bootstrap.App, fake: FakeGitHub, remote: Remote, instance: str) -> tuple[int, ...]:
    ctx = app.ctx
    started = remote.clock + timedelta(minutes=2)
    alert = ReceivedAlert(fingerprint=f"f{instance}", starts_at=started, ends_at=None,
                          status=AlertStatus.FIRING, annotations={},
                          labels={"alertname": "HighErrorRate", "service": "checkout", "instance": instance})
    opened = ingest_delivery(store=ctx.store, delivery=Delivery(group_key=instance, status=AlertStatus.FIRING,
                                                                 alerts=(alert,)),
                             playbooks=ctx.playbooks, policy=IncidentPolicy(), now=started)
    number = opened.opened[0].id or 0
    reads, budget = fake.reads(), fake.rate_remaining
    investigate(store=ctx.store, git=ctx.git, notifier=ctx.notifier, playbooks=ctx.playbooks,
                incident_id=number, now=started, import_window=timedelta(days=30), forge=ctx.forge,
                applied=ctx.applied, applied_window=timedelta(days=30))
    rank_reads = fake.reads() - reads
    writes = fake.writes()
    change = choose_commit(store=ctx.store, playbook=ctx.playbooks[0], incident_id=number, sha=None)
    rollback(store=ctx.store, git=ctx.git, notifier=ctx.notifier, incident_id=number, change=change,
             actor=Actor.USER, actor_id="bench", now=started, forge=ctx.forge, reviewers=("alice",))
    pr_writes = fake.writes() - writes
    reads = fake.reads()
    follow_pull_requests(store=ctx.store, forge=ctx.forge, notifier=ctx.notifier, now=started)
    follow_pull_requests(store=ctx.store, forge=ctx.forge, notifier=ctx.notifier, now=started)
    poll_reads = (fake.reads() - reads) // 2
    # Close this PR so the next incident's PR polls are its own.
    for pull in fake.pulls.values():
        fake.close(pull["number"])
    follow_pull_requests(store=ctx.store, forge=ctx.forge, notifier=ctx.notifier, now=started)
    return rank_reads, pr_writes, poll_reads, budget - fake.rate_remaining


if __name__ == "__main__":
    main()
