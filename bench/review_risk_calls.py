"""Review risk's cost per pushed head, with real git under the fake GitHub over HTTP and a store
holding many past causes: forge calls (reads, writes) and SQL statements per head, CPU time per
head (this process: git's own processes not counted), and the same for a head that touches
nothing (what every clean request costs). Figures that load does not distort: counts and CPU time.
Usage: python bench/review_risk_calls.py [past causes] [heads]
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot import bootstrap
from bot.adapters.console import RecordingNotifier
from bot.adapters.storage.store import SqlStore, SqlTransaction
from bot.config import load_settings
from bot.domain.changes import AppliedSource, Change, Effect, FileChange
from bot.domain.models import Actor, Incident, IncidentStatus
from bot.domain.review_checks import ReviewItem
from bot.domain.verdicts import Verdict, VerdictKind
from bot.services import reviews
from tests.fakes.git import InlineExecutor
from tests.fakes.github import FakeGitHub
from tests.gitrepos import Remote, git


def seed(store: SqlStore, causes: int, now: datetime) -> None:
    """`causes` incidents over 60 days, each with a responder's culprit touching one of 50 services."""
    def work(tx: SqlTransaction) -> None:
        for n in range(causes):
            sha = f"{n:040x}"
            at = now - timedelta(days=60) + timedelta(minutes=n * 60 * 24 * 60 // max(causes, 1))
            tx.changes.add_many([Change(repo="gitops", sha=sha, parents=(), author="dev <d@example.com>",
                                        committed_at=at, subject=f"svc{n % 50}: bump",
                                        files=(FileChange(path=f"apps/svc{n % 50}/deploy.yaml", status="M",
                                                          effects=(Effect.IMAGE,)),),
                                        additions=1, deletions=1, image_bump=True, applied_at=at,
                                        applied_source=AppliedSource.COMMIT_TIME)])
            incident = tx.incidents.add(Incident(group_key=f"g{n}", title="t", service=f"svc{n % 50}",
                                                 severity="critical", status=IncidentStatus.RESOLVED, started_at=at,
                                                 opened_at=at, playbook=None))
            assert incident.id is not None
            tx.verdicts.add(Verdict(incident_id=incident.id, kind=VerdictKind.CULPRIT, repo="gitops", sha=sha,
                                    actor=Actor.USER, at=at))

    store.run(work)


@contextmanager
def counted(engine: sa.Engine) -> Iterator[list[int]]:
    found = [0]

    def count(*_: Any) -> None:
        found[0] += 1

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        yield found
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)


def run(root: Path, causes: int, heads: int) -> dict[str, list[float]]:
    remote = Remote(root / "gitops")
    remote.commit("init", {f"apps/svc{n}/deploy.yaml": "image: x:1\n" for n in range(50)} | {"docs/a.md": "a\n"})
    (root / "playbooks").mkdir()
    with FakeGitHub(remote.bare).serving() as github:
        (root / "config.yaml").write_text(yaml.safe_dump({
            "server": {"public_url": "https://backout.example.com"},
            "storage": {"url": f"sqlite:///{root / 'backout.db'}"}, "alertmanager": {"auth": "none"},
            "playbooks_dir": str(root / "playbooks"),
            "repos": [{"name": "gitops", "url": str(remote.bare), "forge": "github", "github_repo": "acme/gitops",
                       "review": {"risk": True}}],
            "git": {"mirror_dir": str(root / "mirrors")},
            "github": {"api_url": github.base_url, "token": "ghs_fake", "throttle": False},
        }))
        app = bootstrap.build(load_settings(root / "config.yaml"), notifier=RecordingNotifier(),
                              work_executor=InlineExecutor())
        assert isinstance(app.ctx.store, SqlStore)
        assert app.ctx.reviews is not None
        now = datetime.now(UTC)
        seed(app.ctx.store, causes, now)
        figures: dict[str, list[float]] = {k: [] for k in ("reads", "writes", "sql", "cpu_ms", "clean_cpu_ms",
                                                          "clean_sql", "clean_calls")}
        git("checkout", "--quiet", "-b", "feature", cwd=remote.work)
        for n in range(heads):
            for path, number, flagged in ((f"apps/svc{n % 50}/deploy.yaml", 1, True), ("docs/a.md", 2, False)):
                git("checkout", "--quiet", "-B", f"feature{number}", "origin/main" if n == 0 else f"feature{number}",
                    cwd=remote.work)
                sha = remote.commit(f"head {n}", {path: f"changed: {n}\n"}, push=False)
                git("push", "--quiet", "--force", "origin", f"HEAD:refs/pull/{number}/head", cwd=remote.work)
                item = ReviewItem(repo="gitops", number=number, head_sha=sha, base="main", forge="github")
                app.ctx.reviews.queue.add(item, at=now)
                before = (github.reads(), github.writes())
                cpu = time.process_time()
                with counted(app.engine) as sql:  # type: ignore[arg-type]
                    assert reviews.run_one(app.ctx.reviews, item, now=now)
                spent = (time.process_time() - cpu) * 1000
                if flagged:
                    figures["reads"].append(github.reads() - before[0])
                    figures["writes"].append(github.writes() - before[1])
                    figures["sql"].append(sql[0])
                    figures["cpu_ms"].append(spent)
                else:
                    figures["clean_cpu_ms"].append(spent)
                    figures["clean_sql"].append(sql[0])
                    figures["clean_calls"].append(github.reads() + github.writes() - sum(before))
        app.close()
        assert len(github.comments) == 1, github.comments
    return figures


def main() -> None:
    causes = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    heads = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    with tempfile.TemporaryDirectory() as tmp:
        figures = run(Path(tmp), causes, heads)
    load = os.getloadavg()[0]
    print(f"review risk, {causes} past causes in the store, {heads} heads of one flagged and one clean request "
          f"(load average {load:.2f})")
    print(f"  flagged head: GitHub reads {statistics.median(figures['reads']):g}, writes "
          f"{statistics.median(figures['writes']):g} (median per head; one comment in all)")
    print(f"  flagged head: SQL statements {statistics.median(figures['sql']):g}, CPU "
          f"{statistics.median(figures['cpu_ms']):.1f} ms median, {max(figures['cpu_ms']):.1f} ms max")
    print(f"  clean head:   GitHub calls {statistics.median(figures['clean_calls']):g}, SQL statements "
          f"{statistics.median(figures['clean_sql']):g}, "
          f"CPU {statistics.median(figures['clean_cpu_ms']):.1f} ms median")


if __name__ == "__main__":
    main()
