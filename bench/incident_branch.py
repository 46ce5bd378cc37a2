"""The incident branch's followers, with real git: the seconds one poll of an open incident branch
costs (ls-remote, fetch of that branch, log against the watched branch: what the scheduler does once
a minute per open branch when the forge sends no webhook), and the time to verify and parse one
signed GitHub push delivery of 20 commits (what /webhooks/github does before the store).
Usage: python bench/incident_branch.py [history commits] [branch commits]
"""

from __future__ import annotations

import hashlib
import hmac
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.adapters.forge_hooks import GitHubSignature, github_delivery
from tests.fakes.forge_hooks import github_push
from tests.gitrepos import Remote, git, mirrors

BRANCH = "backout/INC-1/incident"


def poll_seconds(root: Path, history: int, on_branch: int, rounds: int = 10) -> list[float]:
    remote = Remote(root / "gitops")
    for number in range(history):
        remote.commit(f"change {number}", {f"apps/svc{number % 20}/deploy.yaml": f"tag: {number}\n"}, minutes=1,
                      push=False)
    remote.push()
    git("checkout", "--quiet", "-b", BRANCH, cwd=remote.work)
    remote.branch = BRANCH
    for number in range(on_branch):
        remote.commit(f"fix {number}", {f"apps/svc0/fix{number}.yaml": "fixed: true\n"}, minutes=1, push=False)
    remote.push()
    remote.branch = "main"
    repos = mirrors(root, {"gitops": remote})
    repos.refresh("gitops", since_sha=None, not_before=remote.clock.replace(year=2000))
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        found = repos.branch_log("gitops", BRANCH)
        times.append(time.perf_counter() - started)
        assert found is not None
        assert len(found) == on_branch
    return times


def delivery_seconds(root: Path, rounds: int = 200) -> list[float]:
    remote = Remote(root / "hooks")
    base = remote.commit("init", {"a.yaml": "a: 1\n"})
    for number in range(20):
        remote.commit(f"fix {number}", {f"apps/f{number}.yaml": "x: 1\n"}, minutes=1)
    head = git("rev-parse", "HEAD", cwd=remote.work)
    body = json.dumps(github_push(remote.bare, project="acme/gitops", branch=BRANCH, old=base, new=head)).encode()
    header = "sha256=" + hmac.new(b"secret", body, hashlib.sha256).hexdigest()
    check = GitHubSignature("secret")
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        assert check.refusal(body, header) is None
        delivery = github_delivery("push", body)
        times.append(time.perf_counter() - started)
        assert delivery.push is not None
        assert len(delivery.push.commits) == 20
    return times


def main() -> None:
    history = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    on_branch = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    with tempfile.TemporaryDirectory() as tmp:
        polls = poll_seconds(Path(tmp), history, on_branch)
        deliveries = delivery_seconds(Path(tmp))
    print(f"poll of one incident branch ({on_branch} commits, {history} commits of history): "
          f"median {statistics.median(polls) * 1000:.1f} ms, max {max(polls) * 1000:.1f} ms over {len(polls)} polls")
    print(f"verify + parse of a signed 20-commit GitHub push: median {statistics.median(deliveries) * 1e6:.0f} µs, "
          f"max {max(deliveries) * 1e6:.0f} µs over {len(deliveries)} deliveries")


if __name__ == "__main__":
    main()
