"""An alert storm on two replicas: 10,000 distinct alerts across 100 services in 60 s.

Two `backout serve` replicas on one PostgreSQL (started here from the machine's binaries, as the
tests do) and a fake Slack Web API. Each of 100 groups fires 100 alerts, a few new ones at a time,
and every delivery carries the group's whole list as Alertmanager sends it (group_interval 5 s);
deliveries alternate between the replicas. Prints alerts stored (must be all), incidents opened
(one per group), chat calls made and the busiest second in the channel (Slack allows about one
message a second per channel, with short bursts), webhook latency (p50, p99), peak memory per
replica, and how late the load generator ran against its schedule (it must keep up).
Usage: python bench/storm.py [--seconds 60] [--groups 100] [--alerts 100]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.adapters.storage import migrate  # noqa: E402
from bot.adapters.storage.engine import create_engine  # noqa: E402
from tests.fakes.slack import FakeSlack  # noqa: E402
from tests.integration.processes import BackoutServer, Postgres, wait_until  # noqa: E402

TOKEN = "storm-token"
GROUP_INTERVAL = 5.0


def body(group: int, count: int, started: datetime) -> bytes:
    service = f"svc{group:03d}"
    alerts = [{
        "status": "firing",
        "labels": {"alertname": "PodCrashLooping", "service": service, "severity": "critical", "pod": f"{service}-{i}"},
        "annotations": {"summary": f"{service}-{i} restarts"},
        "startsAt": (started + timedelta(seconds=i)).isoformat(), "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph", "fingerprint": f"{group:06x}{i:010x}",
    } for i in range(count)]
    return json.dumps({
        "version": "4", "groupKey": f'{{}}:{{service="{service}"}}', "truncatedAlerts": 0, "status": "firing",
        "receiver": "backout", "groupLabels": {"service": service}, "commonLabels": {"service": service},
        "commonAnnotations": {}, "externalURL": "http://alertmanager:9093", "alerts": alerts,
    }).encode()


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--alerts", type=int, default=100, help="alerts per group")
    args = parser.parse_args()
    rounds = max(1, int(args.seconds / GROUP_INTERVAL))
    postgres = Postgres().start()
    tmp = Path(tempfile.mkdtemp(prefix="backout-storm-"))
    engine = create_engine(postgres.url)
    migrate.upgrade(engine)
    started = datetime.now(UTC)
    latencies: list[float] = []
    lags: list[float] = []
    statuses: Counter[int] = Counter()
    per_second: list[int] = []
    lock = threading.Lock()
    try:
        with FakeSlack().serving() as slack:
            config = {
                "storage": {"url": postgres.url}, "alertmanager": {"auth": "bearer", "bearer_token": TOKEN},
                "playbooks_dir": str(tmp), "repos": [], "chat": {"kind": "slack"},
                "slack": {"mode": "http", "bot_token": "xoxb-storm", "signing_secret": "s" * 32,
                          "api_url": f"{slack.base_url}/api/", "channel": "#incidents"},
                "scheduler": {"leader_interval": "5s"}, "logging": {"level": "warning"},
            }
            replicas = [BackoutServer(tmp / name, {**config, "git": {"mirror_dir": str(tmp / name / "m")}}).start()
                        for name in ("one", "two")]
            stop = threading.Event()

            def watch_slack() -> None:
                seen = 0
                while not stop.is_set():
                    time.sleep(1)
                    now = len(slack.calls)
                    per_second.append(now - seen)
                    seen = now
            watcher = threading.Thread(target=watch_slack, daemon=True)
            watcher.start()

            clients = [httpx.Client(timeout=30, headers={"Authorization": f"Bearer {TOKEN}",
                                                         "Content-Type": "application/json"}) for _ in range(16)]
            began = time.monotonic()

            def send(job: tuple[int, int, float]) -> None:
                group, count, due = job
                wait = due - (time.monotonic() - began)
                if wait > 0:
                    time.sleep(wait)
                late = (time.monotonic() - began) - due
                client = clients[threading.get_ident() % len(clients)]
                replica = replicas[(group + count) % 2]
                t0 = time.perf_counter()
                payload = body(group, count, started)
                status = client.post(f"{replica.url}/webhooks/alertmanager", content=payload).status_code
                took = (time.perf_counter() - t0) * 1000
                with lock:
                    latencies.append(took)
                    lags.append(late * 1000)
                    statuses[status] += 1

            # Each group grows to `alerts` over the rounds; its deliveries spread across the interval.
            jobs = []
            for r in range(rounds):
                for group in range(args.groups):
                    count = min(args.alerts, round(args.alerts * (r + 1) / rounds))
                    jobs.append((group, count, r * GROUP_INTERVAL + GROUP_INTERVAL * group / args.groups))
            with ThreadPoolExecutor(32) as pool:
                list(pool.map(send, sorted(jobs, key=lambda j: j[2])))
            load_seconds = time.monotonic() - began

            def all_announced() -> bool:
                return len([c for c in slack.called("chat.postMessage") if not c.get("thread_ts")]) >= args.groups
            try:
                wait_until(all_announced, timeout=300, every=1, what="every incident announced")
            except AssertionError as exc:
                print(f"warning: {exc}")
            announced_after = time.monotonic() - began
            stop.set()
            watcher.join()
            with engine.connect() as conn:
                stored = conn.execute(sa.text("SELECT count(*) FROM alerts")).scalar()
                incidents = conn.execute(sa.text("SELECT count(*) FROM incidents")).scalar()
            memory = [peak_rss_mb(r.proc.pid) for r in replicas if r.proc is not None]
            methods = Counter(name for name, _ in slack.calls)
            tops = Counter(json.loads(c["metadata"])["event_payload"]["incident"] if isinstance(c.get("metadata"), str)
                           else c["metadata"]["event_payload"]["incident"]
                           for c in slack.called("chat.postMessage") if not c.get("thread_ts"))
            for replica in replicas:
                replica.stop()
            for client in clients:
                client.close()
    finally:
        engine.dispose()
        postgres.stop()
    ms = sorted(latencies)
    expected = args.groups * args.alerts
    print(f"storm: {expected:,} distinct alerts in {args.groups} groups, {len(ms):,} deliveries over "
          f"{load_seconds:.1f}s to 2 replicas on PostgreSQL")
    print(f"  answers                 {dict(statuses)}")
    print(f"  alerts stored           {stored:,} of {expected:,} ({'all' if stored == expected else 'LOST SOME'})")
    print(f"  incidents opened        {incidents} for {args.groups} groups")
    print(f"  messages                {len(tops)} incidents posted, most posts for one incident: {max(tops.values())}")
    print(f"  chat calls              {dict(methods)}; busiest second {max(per_second or [0])} calls "
          f"(Slack: ~1/s per channel after a burst); all announced {announced_after:.0f}s after the start")
    p99 = ms[round(0.99 * (len(ms) - 1))]
    print(f"  webhook latency         p50 {statistics.median(ms):.1f} ms, p99 {p99:.1f} ms, "
          f"max {ms[-1]:.1f} ms (target p99 < 100 ms)")
    print(f"  peak memory             {', '.join(f'{m:.0f} MB' for m in memory)} (target < 200 MB a replica)")
    print(f"  load generator          p99 lag behind schedule {sorted(lags)[round(0.99 * (len(lags) - 1))]:.0f} ms "
          f"(it kept up when this is small against the {GROUP_INTERVAL:.0f}s interval)")
    return 0 if stored == expected and incidents == args.groups else 1


if __name__ == "__main__":
    os.environ.pop("BACKOUT_CONFIG", None)
    raise SystemExit(main())
