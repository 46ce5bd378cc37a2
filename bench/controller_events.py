"""How fast Backout answers Flux events: Flux waits 15 s and sends each event at most once.

Starts `backout serve` (SQLite, a real GitOps repository of --commits commits on loopback) and
posts signed Flux events one at a time, as notification-controller does: successes for revisions
the mirror has, successes for revisions pushed a moment before (the event makes Backout fetch
first), failures that open an incident, and redeliveries. Prints p50, p99 and the worst answer of
each kind against Flux's 15 s timeout, and the same client's time for `GET /healthz` (what the load
generator itself costs). Usage: python bench/controller_events.py [--commits N] [--rounds N]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import ROOT, free_port, start

KEY = "bench-flux-key"
FLUX_TIMEOUT_MS = 15_000


def git(*args: str, cwd: Path, when: datetime | None = None) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
           "GIT_COMMITTER_NAME": "Bench", "GIT_COMMITTER_EMAIL": "bench@example.com", "GIT_CONFIG_NOSYSTEM": "1"}
    if when is not None:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = when.isoformat()
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True).stdout.strip()


def commit(work: Path, n: int, when: datetime) -> str:
    path = work / "apps" / f"svc{n % 20}" / "deploy.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: svc{n % 20}}}\nspec:\n"
                    f"  template:\n    spec:\n      containers:\n      - name: app\n"
                    f"        image: registry.example.com/svc{n % 20}:1.{n}.0\n")
    git("add", "-A", cwd=work)
    git("commit", "--quiet", "-m", f"svc{n % 20}: 1.{n}.0", cwd=work, when=when)
    return git("rev-parse", "HEAD", cwd=work)


def event(sha: str, at: datetime, *, failed: bool = False, name: str = "apps") -> bytes:
    return json.dumps({
        "involvedObject": {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                           "name": name, "namespace": "flux-system"},
        "metadata": {"kustomize.toolkit.fluxcd.io/revision": f"main@sha1:{sha}"},
        "severity": "error" if failed else "info",
        "reason": "ValidationFailed" if failed else "ReconciliationSucceeded",
        "message": "dry-run failed" if failed else "Reconciliation finished in 1.2s, next run in 10m0s",
        "reportingController": "kustomize-controller", "timestamp": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }).encode()


def signed(body: bytes) -> dict[str, str]:
    """The headers of a Flux generic-hmac Provider's POST."""
    return {"Content-Type": "application/json",
            "X-Signature": "sha256=" + hmac.new(KEY.encode(), body, hashlib.sha256).hexdigest()}


def post(client: httpx.Client, url: str, body: bytes) -> tuple[float, dict[str, object]]:
    began = time.perf_counter()
    answer = client.post(url, content=body, headers=signed(body))
    took = (time.perf_counter() - began) * 1000
    if answer.status_code not in (200, 202):
        raise SystemExit(f"{answer.status_code}: {answer.text}")
    return took, answer.json()


def describe(name: str, ms: list[float]) -> str:
    ms = sorted(ms)
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
    return (f"{name:<50} {len(ms):>5} {statistics.median(ms):>9.1f} {p99:>9.1f} {ms[-1]:>9.1f} "
            f"{FLUX_TIMEOUT_MS / ms[-1]:>9.0f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=2000, help="history before the run")
    parser.add_argument("--rounds", type=int, default=60, help="events of each kind")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="backout-flux-") as name:
        tmp = Path(name)
        bare, work = tmp / "gitops.git", tmp / "work"
        git("init", "--quiet", "--bare", "--initial-branch=main", str(bare), cwd=tmp)
        git("init", "--quiet", "--initial-branch=main", str(work), cwd=tmp)
        t0 = (datetime.now(UTC) - timedelta(days=2)).replace(microsecond=0)
        shas = [commit(work, n, t0 + timedelta(seconds=30 * n)) for n in range(args.commits)]
        git("push", "--quiet", str(bare), "HEAD:refs/heads/main", cwd=work)
        (tmp / "playbooks").mkdir()
        (tmp / "playbooks" / "apps.yaml").write_text(yaml.safe_dump({
            "service": "svc1", "match": {"service": "svc1"}, "actions": {"on_open": "off"},
            "repos": [{"repo": "gitops", "paths": ["apps/svc1/**"]}],
            "gitops": {"flux": [{"kind": "Kustomization", "namespace": "flux-system", "name": "apps"}],
                       "open_on": ["reconcile_failed"]}}))
        port = free_port()
        config = tmp / "config.yaml"
        config.write_text(yaml.safe_dump({
            "server": {"port": port}, "storage": {"url": f"sqlite:///{tmp / 'backout.db'}"},
            "alertmanager": {"auth": "none"}, "api": {"auth": "none"}, "flux": {"hmac_key": KEY},
            "playbooks_dir": str(tmp / "playbooks"), "logging": {"level": "warning"},
            "repos": [{"name": "gitops", "url": str(bare), "branch": "main"}],
            "git": {"mirror_dir": str(tmp / "mirrors"), "import_window": "30d", "refresh_every": "1h"},
        }))
        server = start([sys.executable, "-m", "bot", "serve", "--config", str(config)], port, ROOT)
        url = f"http://127.0.0.1:{port}/webhooks/flux"
        rows: dict[str, list[float]] = {}
        try:
            with httpx.Client(timeout=60) as client:
                base = [0.0] * args.rounds
                for i in range(args.rounds):
                    began = time.perf_counter()
                    client.get(f"http://127.0.0.1:{port}/healthz")
                    base[i] = (time.perf_counter() - began) * 1000
                rows["client alone (GET /healthz)"] = base
                now = t0 + timedelta(seconds=30 * args.commits)
                post(client, url, event(shas[0], t0))  # the object's first revision (warms the mirror)
                step = max(1, (args.commits - 1) // args.rounds)
                known = []
                for i in range(args.rounds):
                    sha = shas[min(len(shas) - 1, 1 + i * step)]
                    took, body = post(client, url, event(sha, now + timedelta(seconds=i)))
                    known.append(took)
                rows[f"applied, revision known ({step} changes each)"] = known
                fresh, failing, again = [], [], []
                for i in range(args.rounds):
                    sha = commit(work, args.commits + i, now + timedelta(minutes=1 + i))
                    git("push", "--quiet", str(bare), "HEAD:refs/heads/main", cwd=work)
                    took, body = post(client, url, event(sha, now + timedelta(minutes=1 + i, seconds=30)))
                    assert body["sha"] == sha, body
                    fresh.append(took)
                rows["applied, revision just pushed (fetch first)"] = fresh
                for i in range(args.rounds):
                    sha = commit(work, args.commits + args.rounds + i, now + timedelta(hours=1, minutes=i))
                    git("push", "--quiet", str(bare), "HEAD:refs/heads/main", cwd=work)
                    body_bytes = event(sha, now + timedelta(hours=1, minutes=i, seconds=20), failed=True)
                    took, _ = post(client, url, body_bytes)
                    failing.append(took)
                    took, body = post(client, url, body_bytes)
                    assert body["status"] == "duplicate", body
                    again.append(took)
                rows["failed, new revision (incident opened or joined)"] = failing
                rows["redelivered (duplicate)"] = again
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"Flux events to `backout serve` on loopback, one at a time; history {args.commits:,} commits")
    print(f"{'event':<50} {'n':>5} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9} {'15s/max':>10}")
    for name, ms in rows.items():
        print(describe(name, ms))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
