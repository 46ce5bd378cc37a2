"""GitLab API calls for one incident, from alert to revert merge request, counted by the fake.

The same history as bench/github_calls.py (30 commits, each deployed to the production
environment: GitLab deployments give the applied times). For a first incident (cold caches) and
a second in the same process (warm), it prints the requests made to rank (applied times), to open
the revert merge request (the reviewers' ids, GitLab's dry-run revert, the create), per poll of the
merge request, and how many polls were answered 304 (no body). GitLab's rate limits count
requests, so every request is counted. Targets, warm: at most 2 requests to rank, at most 3 to
open the merge request, 1 per poll.
Usage: python bench/gitlab_calls.py
"""

from __future__ import annotations

import sys
import tempfile
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from github_calls import gitops_history, remote_log

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
from tests.fakes.gitlab import FakeGitLab
from tests.gitrepos import Remote


def main() -> None:
    bootstrap.configure_logging(LoggingSettings(level="warning"))
    with tempfile.TemporaryDirectory(prefix="backout-bench-") as tmp:
        root = Path(tmp)
        remote = gitops_history(root)
        with FakeGitLab(remote.bare).serving() as fake:
            for sha, minutes in remote_log(remote):
                fake.add_deployment(sha, "production", "success", remote.clock - timedelta(minutes=minutes))
            settings = Settings.model_validate({
                "storage": {"url": f"sqlite:///{root / 'bench.db'}"},
                "alertmanager": {"auth": "none"},
                "repos": [{"name": "gitops", "url": str(remote.bare), "forge": "gitlab",
                           "gitlab_project": "acme/platform/gitops",
                           "applied": {"source": "environments", "environment": "production"}}],
                "git": {"mirror_dir": str(root / "mirrors"), "import_window": "30d"},
                "github": {"applied_window": "30d"},
                "gitlab": {"url": fake.base_url, "token": "glpat-bench"},
            })
            playbooks = [Playbook.model_validate({
                "name": "checkout", "service": "checkout", "match": {"service": "checkout"},
                "group_by": ["alertname", "instance"],
                "repos": [{"repo": "gitops", "paths": ["apps/checkout/**"]}],
                "actions": {"on_open": "off", "reviewers": ["alice"]}})]
            app = bootstrap.build(settings, playbooks=playbooks, notifier=RecordingNotifier())
            rows = [(run, *one_incident(app, fake, remote, instance))
                    for run, instance in (("cold", "a"), ("warm", "b"))]
            app.close()
    print("one incident, alert to revert merge request (requests counted by the fake GitLab)")
    print(f"{'cache':<6}{'to rank':>9}{'to open MR':>12}{'per MR poll':>13}{'polls answered 304':>20}")
    for run, rank, open_mr, poll, not_modified in rows:
        print(f"{run:<6}{rank:>9}{open_mr:>12}{poll:>13}{not_modified:>20}")
    print("targets (warm): to rank <= 2, to open the merge request <= 3, 1 per poll")


def requests(fake: FakeGitLab) -> int:
    return fake.reads() + fake.writes()


def one_incident(app: bootstrap.App, fake: FakeGitLab, remote: Remote, instance: str) -> tuple[int, ...]:
    ctx = app.ctx
    started = remote.clock + timedelta(minutes=2)
    alert = ReceivedAlert(fingerprint=f"f{instance}", starts_at=started, ends_at=None, status=AlertStatus.FIRING,
                          annotations={}, labels={"alertname": "HighErrorRate", "service": "checkout",
                                                  "instance": instance})
    opened = ingest_delivery(store=ctx.store, delivery=Delivery(group_key=instance, status=AlertStatus.FIRING,
                                                                 alerts=(alert,)),
                             playbooks=ctx.playbooks, policy=IncidentPolicy(), now=started)
    number = opened.opened[0].id or 0
    before = requests(fake)
    investigate(store=ctx.store, git=ctx.git, notifier=ctx.notifier, playbooks=ctx.playbooks, incident_id=number,
                now=started, import_window=timedelta(days=30), forge=ctx.forge, applied=ctx.applied,
                applied_window=timedelta(days=30))
    rank = requests(fake) - before
    before = requests(fake)
    change = choose_commit(store=ctx.store, playbook=ctx.playbooks[0], incident_id=number, sha=None)
    rollback(store=ctx.store, git=ctx.git, notifier=ctx.notifier, incident_id=number, change=change,
             actor=Actor.USER, actor_id="bench", now=started, forge=ctx.forge, reviewers=("alice",))
    open_mr = requests(fake) - before
    before, not_modified = requests(fake), fake.not_modified
    for _ in range(4):
        follow_pull_requests(store=ctx.store, forge=ctx.forge, notifier=ctx.notifier, now=started)
    poll = (requests(fake) - before) // 4
    answered_304 = fake.not_modified - not_modified
    for merge_request in fake.merge_requests.values():  # closed, so the next incident's polls are its own
        fake.close(merge_request["iid"])
    follow_pull_requests(store=ctx.store, forge=ctx.forge, notifier=ctx.notifier, now=started)
    return rank, open_mr, poll, answered_304


if __name__ == "__main__":
    main()
