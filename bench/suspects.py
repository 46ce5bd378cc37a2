"""Ranking speed against history size, and webhook-to-suspects latency with a warm mirror.

Part 1 builds histories of 1,000, 10,000 and 100,000 commits in all, over three repositories
(git fast-import; spaced so that the last 24 hours hold 500 changes, the newest just before
the incident) and prints, side by side: the first import into new mirrors (one-time; it reads
only the import window and classifies each file from its blobs), a warm refresh that finds one
new commit, and ranking one incident whose playbook looks back 24 hours over all three
repositories (500 changes, every signal). Ranking and warm refresh must stay flat (at most
1.5x from the smallest history to the largest); ranking within 50 ms.

Part 2 serves the app on SQLite with a warm mirror of the 10,000-commit history, posts
Alertmanager deliveries that each open a new incident, and times each from the POST to
its suspects being stored (polled through the API). Target: p50 under 200 ms.
Usage: python bench/suspects.py [--incidents N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bot import bootstrap
from bot.adapters.console import RecordingNotifier
from bot.config import AlertmanagerSettings, GitSettings, LoggingSettings, RepoSettings, Settings, StorageSettings
from bot.domain.incidents import IncidentPolicy
from bot.domain.models import AlertStatus, Delivery, ReceivedAlert
from bot.domain.playbooks import Playbook
from bot.entrypoints.serving import serve_in_thread
from bot.services.changelog import refresh_changes
from bot.services.ingest import ingest_delivery
from bot.services.investigate import rank_incident

SERVICES = [f"svc{n:02d}" for n in range(40)]
NOW = datetime.now(UTC).replace(microsecond=0)
TOKEN = "bench-token-0123456789"


REPOS = ["gitops", "platform", "app"]
SPACING = timedelta(hours=24) * len(REPOS) / 500  # per repository: 500 changes in the last 24 hours


def build_history(bare: Path, commits: int, spacing: timedelta = timedelta(minutes=10)) -> None:
    """A bare repository with `commits` first-parent commits, `spacing` apart, ending now."""
    subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch=main", str(bare)], check=True)
    start = NOW - spacing * commits
    chunks = []
    for n in range(commits):
        service = SERVICES[n % len(SERVICES)]
        when = int((start + spacing * n).timestamp())
        body = f"image: registry.example.com/{service}:1.{n}\n".encode()
        message = f"{service}: bump to 1.{n} (#{n})\n".encode()
        chunks.append(b"commit refs/heads/main\n")
        chunks.append(f"committer Dev <dev@example.com> {when} +0000\n".encode())
        chunks.append(b"data %d\n%s" % (len(message), message))
        chunks.append(f"M 100644 inline apps/{service}/deployment.yaml\n".encode())
        chunks.append(b"data %d\n%s\n" % (len(body), body))
    subprocess.run(["git", "fast-import", "--quiet"], input=b"".join(chunks), cwd=bare, check=True)


def add_commit(bare: Path, work: Path) -> None:
    """One more commit on the remote, through a shallow clone."""
    if not work.exists():
        subprocess.run(["git", "clone", "--quiet", "--depth=1", f"file://{bare}", str(work)], check=True)
    (work / "apps" / "svc00" / "deployment.yaml").write_text(f"image: x:{time.monotonic_ns()}\n")
    env = {"GIT_AUTHOR_NAME": "Dev", "GIT_AUTHOR_EMAIL": "d@e", "GIT_COMMITTER_NAME": "Dev",
           "GIT_COMMITTER_EMAIL": "d@e", "PATH": "/usr/bin:/bin"}
    subprocess.run(["git", "commit", "--quiet", "-am", "svc00: bump"], cwd=work, env=env, check=True)
    subprocess.run(["git", "push", "--quiet", "origin", "HEAD:main"], cwd=work, check=True)


def playbooks() -> list[Playbook]:
    found = [Playbook.model_validate({
        "name": service, "service": service, "match": {"service": service},
        "repos": [{"repo": "gitops", "paths": [f"apps/{service}/**"]}],
        "actions": {"on_open": "off"},
    }) for service in SERVICES]
    # The ranked incident's playbook: three repositories, a day of lookback, every file in scope.
    found.append(Playbook.model_validate({
        "name": "wide", "service": "wide", "match": {"service": "wide"},
        "repos": [{"repo": "gitops", "paths": ["apps/**"]}, {"repo": "platform", "paths": [],
                                                             "shared_paths": ["**"]},
                  {"repo": "app", "role": "app"}],
        "suspects": {"lookback": "24h"}, "actions": {"on_open": "off"},
    }))
    return found


def settings_for(tmp: Path, bares: dict[str, Path]) -> Settings:
    return Settings(
        storage=StorageSettings(url=f"sqlite:///{tmp / 'bench.db'}"),
        alertmanager=AlertmanagerSettings(auth="bearer", bearer_token=TOKEN),
        repos=[RepoSettings(name=name, url=str(bare), branch="main") for name, bare in bares.items()],
        git=GitSettings(mirror_dir=tmp / "mirrors", import_window=timedelta(days=7)),
        playbooks_dir=tmp,
    )


def measure_history(commits: int, tmp: Path) -> tuple[float, float, float, int, int]:
    bares = {name: tmp / f"{name}.git" for name in REPOS}
    for bare in bares.values():
        build_history(bare, commits // len(REPOS), SPACING)
    app = bootstrap.build(settings_for(tmp, bares), playbooks=playbooks(), notifier=RecordingNotifier())
    store, git = app.ctx.store, app.ctx.git
    started = time.perf_counter()
    report = refresh_changes(store=store, git=git, repos=REPOS, now=NOW, import_window=timedelta(days=7))
    first_import = time.perf_counter() - started
    add_commit(bares["gitops"], tmp / "work")
    started = time.perf_counter()
    refresh_changes(store=store, git=git, repos=REPOS, now=NOW, import_window=timedelta(days=7))
    warm = time.perf_counter() - started
    alert = ReceivedAlert(fingerprint="f", starts_at=NOW, ends_at=None, status=AlertStatus.FIRING,
                          labels={"alertname": "HighErrorRate", "service": "wide"}, annotations={})
    outcome = ingest_delivery(store=store, delivery=Delivery(group_key="g", status=AlertStatus.FIRING,
                                                              alerts=(alert,)),
                              playbooks=app.ctx.playbooks, policy=IncidentPolicy(), now=NOW)
    incident_id = outcome.opened[0].id or 0
    samples = []
    for _ in range(30):
        started = time.perf_counter()
        ranking = rank_incident(store=store, playbooks=app.ctx.playbooks, incident_id=incident_id, now=NOW)
        samples.append(time.perf_counter() - started)
    considered = store.run(lambda tx: tx.timeline.for_incident(incident_id))[-1].data.get("considered", 0)
    app.close()
    assert ranking.suspects, "the window holds changes"
    return first_import, warm, statistics.median(samples), sum(report.new.values()), int(considered)


def webhook_to_suspects(tmp: Path, incidents: int) -> list[float]:
    bare = tmp / "remote.git"
    build_history(bare, 10_000)
    settings = settings_for(tmp, {"gitops": bare})
    app = bootstrap.build(settings, playbooks=playbooks(), notifier=RecordingNotifier())
    refresh_changes(store=app.ctx.store, git=app.ctx.git, repos=["gitops"], now=NOW,
                    import_window=timedelta(days=7))  # the warm mirror
    samples = []
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    with serve_in_thread(app.http) as base, httpx.Client(base_url=base, timeout=10) as client:
        for n in range(incidents):
            service = SERVICES[n % len(SERVICES)]
            body = {"version": "4", "status": "firing", "receiver": "backout",
                    "groupKey": f'{{}}:{{alertname="HighErrorRate", n="{n}"}}',
                    "alerts": [{"status": "firing", "fingerprint": f"{n:016x}",
                                "labels": {"alertname": "HighErrorRate", "service": service, "n": str(n)},
                                "annotations": {}, "startsAt": NOW.isoformat(),
                                "endsAt": "0001-01-01T00:00:00Z"}]}
            started = time.perf_counter()
            answer = client.post("/webhooks/alertmanager", content=json.dumps(body), headers=headers).json()
            [ref] = answer["incidents"]
            while client.get(f"/api/incidents/{ref}/suspects").json()["status"] != "ranked":
                time.sleep(0.002)
            samples.append(time.perf_counter() - started)
    app.close()
    return samples


def main() -> None:
    bootstrap.configure_logging(LoggingSettings(level="warning"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=40, help="deliveries in part 2")
    args = parser.parse_args()
    sizes = [1_000, 10_000, 100_000]
    results = {}
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="backout-bench-") as tmp:
            results[size] = measure_history(size, Path(tmp))
    print("history (commits)        " + "".join(f"{size:>12,}" for size in sizes) + "    ratio")
    rows = [("first import (one-time)", 0, "s"), ("warm refresh, 1 new", 1, "ms"),
            ("rank one incident", 2, "ms")]
    for label, index, unit in rows:
        scale = 1 if unit == "s" else 1000
        values = [results[size][index] * scale for size in sizes]
        print(f"{label:<25}" + "".join(f"{v:>10.2f}{unit:>2}" for v in values)
              + f"    {values[-1] / values[0]:.2f}x")
    print("changes imported         " + "".join(f"{results[size][3]:>12,}" for size in sizes))
    print("changes ranked (24h)     " + "".join(f"{results[size][4]:>12,}" for size in sizes))
    with tempfile.TemporaryDirectory(prefix="backout-bench-") as tmp:
        samples = sorted(webhook_to_suspects(Path(tmp), min(args.incidents, len(SERVICES))))
    p50 = statistics.median(samples) * 1000
    p90 = samples[int(len(samples) * 0.9) - 1] * 1000
    print(f"webhook -> suspects stored (warm mirror, {len(samples)} incidents): "
          f"p50 {p50:.0f} ms, p90 {p90:.0f} ms, max {samples[-1] * 1000:.0f} ms (target p50 < 200 ms)")


if __name__ == "__main__":
    sys.exit(main())
