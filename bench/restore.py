"""Restore to last known good on a large GitOps repository, with real git: the seconds a restore
takes (fetch, stage the service's paths from the good revision, commit, push) and the seconds to
judge the last known good over many applied revisions.

The repository holds SERVICES services of FILES files each; COMMITS commits after the good
revision touch random services (every fourth the restored one, adding a file every tenth). The
judgement walks revisions 10 minutes apart, each under good_after: none counts, the worst case.
Usage: python bench/restore.py [services] [files] [commits]
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.domain.good import Deployed, IncidentSpan, last_good
from tests.gitrepos import Remote, git, mirrors


def build(root: Path, services: int, files: int, commits: int) -> tuple[Remote, str]:
    remote = Remote(root / "gitops")
    layout = {f"apps/svc{s}/f{f}.yaml": f"replicas: {f}\n" for s in range(services) for f in range(files)}
    good = remote.commit("layout", layout, push=False)
    chance = random.Random(7)
    for number in range(commits):
        service = 0 if number % 4 == 0 else chance.randrange(services)  # svc0, the one restored, is busy
        name = f"apps/svc{service}/f{chance.randrange(files)}.yaml"
        extra = {f"apps/svc{service}/new{number}.yaml": "added: true\n"} if number % 10 == 0 else {}
        remote.commit(f"change {number}", {name: f"replicas: {number}  # change\n", **extra}, minutes=1, push=False)
    remote.push()
    return remote, good


def judge(revisions: int) -> float:
    now = datetime.now(UTC)
    deployed = [Deployed(repo="gitops", sha=f"{n:040x}", applied_at=now - timedelta(minutes=10 * (revisions - n)),
                         healthy_at=now - timedelta(minutes=10 * (revisions - n) - 1), how="bench")
                for n in range(revisions)]
    # A service's incidents in the window: 50, the newest on the newest revisions (none counts until far back).
    incidents = [IncidentSpan(ref=f"INC-{n}", started_at=now - timedelta(minutes=10 * n + 3),
                              resolved_at=now - timedelta(minutes=10 * n)) for n in range(50)]
    started = time.perf_counter()
    last_good(deployed, incidents, service="svc0", repo="gitops", good_after=timedelta(minutes=30), now=now)
    return time.perf_counter() - started


def main() -> None:
    services, files, commits = (int(a) for a in (sys.argv[1:] + ["20", "200", "100"][len(sys.argv) - 1:])[:3])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        remote, good = build(root, services, files, commits)
        repos = mirrors(root, {"gitops": remote})
        repos.refresh("gitops", since_sha=None, not_before=datetime.now(UTC) - timedelta(days=30))
        started = time.perf_counter()
        result = repos.push_restore("gitops", good_sha=good, paths=("apps/svc0/**",), exclude=(),
                                    branch="backout/INC-1/restore-bench", message="bench")
        took = time.perf_counter() - started
        changed = git("diff", "--name-only", "main", "backout/INC-1/restore-bench", cwd=remote.bare).splitlines()
    print(f"repository: {services} services x {files} files, {commits} commits after the good revision")
    print(f"restore of one service's paths: {took:.2f} s ({len(changed)} files changed, pushed "
          f"{(result.pushed_sha or '')[:7]})")
    for revisions in (100, 1000, 5000):
        print(f"last known good over {revisions} revisions, 50 incidents, none good (the whole walk): "
              f"{judge(revisions) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
