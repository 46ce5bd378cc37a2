"""Crash recovery: 3,000 pending incidents, `backout serve` killed (-9), started again.

One `backout serve` on SQLite, then on PostgreSQL (started here from the machine's binaries, as
the tests do), takes 3,000 distinct alert groups while its Git host does not answer, so every
investigation is still pending (two of them claimed by the process) when it is killed. It is
started again with the host back, and the bench prints how long after the restart (from the
process's spawn, and from its first ready answer) every incident was claimed, ranked and queued in
the chat outbox, then how fast the messages go out against `slack.channel_rate`. With
`--prometheus`, a fake Prometheus over HTTP (answering after `--latency` seconds) is configured
and the playbook names a key metric whose series shifts before the incidents: each is ranked
from its onset (the bench says how many were).
Usage: python bench/crash_recovery.py [--incidents 3000] [--storage sqlite postgresql] [--rate 1] [--workers N]
       [--prometheus [--latency 0.005]]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.adapters.storage import migrate  # noqa: E402
from bot.adapters.storage.engine import create_engine  # noqa: E402
from tests.fakes.prometheus import PrometheusServer  # noqa: E402
from tests.fakes.slack import FakeSlack  # noqa: E402
from tests.gitrepos import Remote  # noqa: E402
from tests.integration.processes import BackoutServer, Postgres, silent_git_host  # noqa: E402

TOKEN = "crash-token"
DONE = """SELECT (SELECT count(*) FROM follow_ups WHERE done_at IS NULL),
                 (SELECT count(*) FROM rankings),
                 (SELECT count(DISTINCT incident_id) FROM chat_outbox)"""
KEY = 'sum(rate(http_requests_total{service="checkout",code=~"5.."}[1m]))'
STEP = timedelta(seconds=15)


def body(n: int, at: datetime) -> bytes:
    return json.dumps({
        "version": "4", "groupKey": f'{{}}:{{alertname="Crash{n}"}}', "status": "firing", "receiver": "backout",
        "alerts": [{"status": "firing", "labels": {"alertname": f"Crash{n}", "service": "checkout",
                                                   "severity": "critical"},
                    "annotations": {}, "startsAt": at.isoformat(), "endsAt": "0001-01-01T00:00:00Z",
                    "fingerprint": f"{n:016x}"}]}).encode()


def world(tmp: Path, *, key_query: bool) -> tuple[Remote, Path]:
    """A GitOps remote whose last commit bumps checkout, and checkout's playbook (propose; with
    `key_query`, naming the key metric the fake Prometheus answers)."""
    remote = Remote(tmp / "gitops", start=datetime.now(UTC) - timedelta(minutes=60))
    remote.commit("init", {"apps/checkout/deploy.yaml": "image: checkout:1\n"})
    remote.commit("checkout: bump to 2", {"apps/checkout/deploy.yaml": "image: checkout:2\n"}, minutes=40)
    playbooks = tmp / "playbooks"
    playbooks.mkdir()
    (playbooks / "checkout.yaml").write_text(yaml.safe_dump({
        "service": "checkout", "match": {"service": "checkout"}, "group_by": ["alertname", "service"],
        "repos": [{"repo": "gitops", "paths": ["apps/checkout/**"]}], "actions": {"on_open": "propose"},
        **({"key_query": KEY} if key_query else {})}))
    return remote, playbooks


def prometheus(enabled: bool, latency: float) -> AbstractContextManager[PrometheusServer | None]:
    """The fake Prometheus over HTTP: checkout's error rate shifts up 10 minutes before now (before
    every incident) in a series from 3 hours before to an hour after."""
    if not enabled:
        return nullcontext()
    server = PrometheusServer(latency=latency)
    shift = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    points = int(timedelta(hours=4) / STEP)
    server.data.history[KEY] = [(shift + STEP * (k - points * 3 // 4), (1.0 if k < points * 3 // 4 else 9.0)
                                 + 0.05 * ((k * 7) % 5)) for k in range(points)]
    return server.serving()


def counts(engine: sa.Engine) -> tuple[int, int, int]:
    """(work still pending, incidents ranked, incidents queued or sent in the chat outbox)"""
    with engine.connect() as conn:
        pending, ranked, queued = conn.execute(sa.text(DONE)).one()
    return int(pending), int(ranked), int(queued)


def fill(server: BackoutServer, incidents: int) -> None:
    at = datetime.now(UTC)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client, ThreadPoolExecutor(8) as pool:
        statuses = set(pool.map(lambda n: client.post("/webhooks/alertmanager", content=body(n, at)).status_code,
                                range(incidents)))
    assert statuses == {200}, statuses


def run(storage: str, incidents: int, rate: float, workers: int | None, *, metrics: bool,
        latency: float) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix=f"backout-crash-{storage}-"))
    remote, playbooks = world(tmp, key_query=metrics)
    postgres = Postgres().start() if storage == "postgresql" else None
    url = postgres.url if postgres else f"sqlite:///{tmp / 'backout.db'}"
    engine = create_engine(url)
    if postgres:
        migrate.upgrade(engine)
    try:
        with FakeSlack().serving() as slack, silent_git_host() as silent, prometheus(metrics, latency) as fake:
            config: dict[str, Any] = {
                "storage": {"url": url}, "alertmanager": {"auth": "bearer", "bearer_token": TOKEN},
                "playbooks_dir": str(playbooks), "repos": [{"name": "gitops", "url": silent}],
                # Investigations wait on the fetch (git.fetch_wait), so the kill finds them all pending
                # however long the fill takes (a stalled fetch given up would let the sweep rank them).
                "git": {"mirror_dir": str(tmp / "data" / "mirrors-silent"), "timeout": "10m", "fetch_wait": "10m",
                        "stall_timeout": "10m"},
                "chat": {"kind": "slack"},
                "slack": {"mode": "http", "bot_token": "xoxb-crash", "signing_secret": "s" * 32,
                          "api_url": f"{slack.base_url}/api/", "channel": "#incidents", "channel_rate": rate},
                "logging": {"level": "info", "format": "json"},
            }
            if workers:
                config["scheduler"] = {"sweep_workers": workers}
            if fake is not None:
                config["prometheus"] = {"url": fake.base_url}
            server = BackoutServer(tmp / "backout", config).start()
            filled = time.monotonic()
            fill(server, incidents)
            filled = time.monotonic() - filled
            server.kill()
            before = counts(engine)
            with engine.connect() as conn:
                held = int(conn.execute(sa.text("SELECT count(*) FROM follow_ups WHERE done_at IS NULL "
                                                "AND claimed_until IS NOT NULL")).scalar_one())
            # The host is back: the real remote (in a fresh mirror: the old one points at the silent host).
            kept = yaml.safe_load(server.config_path.read_text())
            kept["repos"] = [{"name": "gitops", "url": str(remote.bare)}]
            kept["git"] = {"mirror_dir": str(tmp / "data" / "mirrors")}
            server.config_path.write_text(yaml.safe_dump(kept))
            posted_before = len(slack.called("chat.postMessage"))
            spawned = time.monotonic()
            server.start()
            ready = time.monotonic()
            while counts(engine) != (0, incidents, incidents) and time.monotonic() - spawned < 600:
                time.sleep(0.1)
            recovered = time.monotonic()
            after = counts(engine)
            with engine.connect() as conn:
                onsets = int(conn.execute(sa.text("SELECT count(*) FROM rankings WHERE onset_at IS NOT NULL"))
                             .scalar_one())
            asked = len(fake.calls) if fake is not None else 0
            posted_at_recovery = len(slack.called("chat.postMessage"))
            time.sleep(20)
            posted = len(slack.called("chat.postMessage")) - posted_at_recovery
            server.stop()
            return {"filled": filled, "before": before, "held": held, "ready": ready - spawned,
                    "recovered": recovered - spawned, "after": after, "rate": posted / 20,
                    "posted_early": posted_at_recovery - posted_before, "onsets": onsets, "asked": asked}
    finally:
        engine.dispose()
        if postgres:
            postgres.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=3000)
    parser.add_argument("--storage", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"])
    parser.add_argument("--rate", type=float, default=1.0, help="slack.channel_rate (messages a second)")
    parser.add_argument("--workers", type=int, help="scheduler.sweep_workers (default: the setting's default)")
    parser.add_argument("--prometheus", action="store_true",
                        help="configure a fake Prometheus over HTTP; the playbook names a key metric with an onset")
    parser.add_argument("--latency", type=float, default=0.005, help="the fake Prometheus's answer time, seconds")
    args = parser.parse_args()
    ok = True
    print(f"crash recovery: {args.incidents:,} incidents pending, kill -9, restart (target: all claimed, "
          f"ranked and queued within 15 s; then posting at slack.channel_rate {args.rate:g}/s)")
    for storage in args.storage:
        r = run(storage, args.incidents, args.rate, args.workers, metrics=args.prometheus, latency=args.latency)
        done = r["after"] == (0, args.incidents, args.incidents)
        ok &= done
        print(f"  {storage:<11} filled in {r['filled']:.0f}s; at the kill: {r['before'][0]:,} pending, "
              f"{r['held']} claimed by the killed process")
        missing = "" if done else " -- NOT DONE: (pending, ranked, queued) = {}".format(r["after"])
        print(f"  {'':<11} restart: ready after {r['ready']:.1f}s; all claimed, ranked and queued "
              f"{r['recovered']:.1f}s after the spawn ({r['recovered'] - r['ready']:.1f}s after ready){missing}")
        if args.prometheus:
            print(f"  {'':<11} prometheus ({args.latency * 1000:g} ms an answer): {r['asked']:,} calls, "
                  f"{r['onsets']:,} rankings with an onset")
        print(f"  {'':<11} posting: {r['posted_early']} messages during recovery (the burst), then "
              f"{r['rate']:.2f}/s over the next 20 s")
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.pop("BACKOUT_CONFIG", None)
    raise SystemExit(main())
