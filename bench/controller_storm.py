"""A controller storm and page loads against one `backout serve`, with a liveness probe throughout.

Starts `backout serve` (SQLite, a real GitOps repository on loopback, API tokens and signed page
links as in production) and opens --incidents incidents. Then, each phase --seconds long, with
`GET /healthz` probed every 20 ms as a kubelet would (its own process, its own connection):

- idle: the probe alone;
- events: signed Flux events offered open-loop at --rate a second over --connections
  connections (its own process): --objects Kustomizations reconciling, their revisions moving on
  every few rounds, one object in a hundred failing now and then (an incident opens and resolves);
- pages: --pages browsers loading the incidents' pages (signed links) back to back;
- both: the events and the pages at once.

Prints the probe's p50/p99/max (target p99 <= 50 ms), the events recorded a second and the time
from each POST's scheduled send to its answer, which comes after the event is committed (target
>= 1,000/s, p99 <= 1 s), every event stored (counted in the database), the pages' latency, the
server's CPU an event (its writer and chart processes included, and the serving process's share), and
what the generators cost: their CPU share and how late they sent against their schedule (small
against the target, or the generator was the bottleneck). The machine is shared: re-measure quietly.
Usage: python bench/controller_storm.py [--rate 1000] [--seconds 10] [--connections 200] [--pages 50]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from controller_events import KEY, commit, event, git, signed
from ingest import ROOT, cpu_seconds, cpu_wait_seconds, free_port, start
from openloop import closed_loop, http_request, in_process, open_loop, percentile, probe

sys.path.insert(0, str(ROOT))
from bot.entrypoints.links import PageLinks

API_TOKEN = "bench-api-token-0123456789"
LINK_SECRET = "bench-link-secret-0123456789"
HOST = "127.0.0.1"
PROBE_EVERY = 0.02


def history(tmp: Path, commits: int) -> tuple[Path, list[str]]:
    bare, work = tmp / "gitops.git", tmp / "work"
    git("init", "--quiet", "--bare", "--initial-branch=main", str(bare), cwd=tmp)
    git("init", "--quiet", "--initial-branch=main", str(work), cwd=tmp)
    t0 = (datetime.now(UTC) - timedelta(days=2)).replace(microsecond=0)
    shas = [commit(work, n, t0 + timedelta(seconds=30 * n)) for n in range(commits)]
    git("push", "--quiet", str(bare), "HEAD:refs/heads/main", cwd=work)
    return bare, shas


def flux_events(shas: list[str], *, count: int, objects: int, at: datetime) -> list[bytes]:
    """Round r: every object reports; revisions move on every 10 rounds; apps-0 fails every 25th."""
    raws = []
    for n in range(count):
        round_, obj = divmod(n, objects)
        sha = shas[min(len(shas) - 1, round_ // 10)]
        failed = obj == 0 and round_ % 25 == 24
        body = event(sha, at + timedelta(seconds=round_, milliseconds=obj), failed=failed, name=f"apps-{obj}")
        raws.append(http_request("POST", "/webhooks/flux", host=HOST, body=body, headers=signed(body)))
    return raws


def alert(n: int) -> bytes:
    service = f"svc{n}"
    return json.dumps({
        "version": "4", "groupKey": f'{{}}:{{service="{service}"}}', "truncatedAlerts": 0, "status": "firing",
        "receiver": "backout", "groupLabels": {"service": service}, "commonLabels": {"service": service},
        "commonAnnotations": {}, "externalURL": "http://alertmanager:9093",
        "alerts": [{"status": "firing", "labels": {"alertname": "HighErrorRate", "service": service},
                    "annotations": {"summary": f"5xx on {service}"}, "fingerprint": f"{n:016x}",
                    "startsAt": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
                    "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prometheus:9090/graph"}],
    }).encode()


def config(tmp: Path, bare: Path, port: int) -> Path:
    (tmp / "playbooks").mkdir()
    (tmp / "playbooks" / "apps.yaml").write_text(yaml.safe_dump({
        "service": "svc0", "match": {"service": "svc0"}, "actions": {"on_open": "off"},
        "repos": [{"repo": "gitops", "paths": ["apps/svc0/**"]}],
        "gitops": {"flux": [{"kind": "Kustomization", "namespace": "flux-system", "name": "apps-0"}],
                   "open_on": ["reconcile_failed"]}}))
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump({
        "server": {"port": port}, "storage": {"url": f"sqlite:///{tmp / 'backout.db'}"},
        "alertmanager": {"auth": "bearer", "bearer_token": API_TOKEN}, "flux": {"hmac_key": KEY},
        "api": {"auth": "bearer", "tokens": [API_TOKEN], "link_secret": LINK_SECRET},
        "playbooks_dir": str(tmp / "playbooks"), "logging": {"level": "warning"},
        "repos": [{"name": "gitops", "url": str(bare), "branch": "main"}],
        "git": {"mirror_dir": str(tmp / "mirrors"), "import_window": "30d", "refresh_every": "1h"},
    }))
    return path


def stored_events(tmp: Path) -> int:
    engine = sa.create_engine(f"sqlite:///{tmp / 'backout.db'}")
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM controller_events")).scalar() or 0)
    finally:
        engine.dispose()


def processes(pid: int) -> list[int]:
    """The server and its child processes (the controller-event writer, the chart workers)."""
    found = [pid]
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
        except (OSError, ValueError):
            continue  # ended meanwhile
    return found


def cpu_by_process(pids: list[int]) -> dict[int, float]:
    found = {}
    for pid in pids:
        try:
            found[pid] = cpu_seconds(pid)
        except OSError:
            continue  # ended meanwhile
    return found


def phase(name: str, *, port: int, events: list[bytes] | None, pages: list[bytes] | None, args: argparse.Namespace,
          server: subprocess.Popen[bytes]) -> dict[str, Any]:
    pids = processes(server.pid)
    cpu, waited = cpu_by_process(pids), cpu_wait_seconds(server.pid)
    probing = in_process(probe, HOST, port, "/healthz", every=PROBE_EVERY, seconds=args.seconds + 1)
    loading = (in_process(closed_loop, HOST, port, pages, concurrency=args.pages, seconds=args.seconds)
               if pages else None)
    storm = in_process(open_loop, HOST, port, events, rate=args.rate, connections=args.connections) if events else None
    began = time.perf_counter()
    found = {"name": name, "probe": probing.result(), "pages": loading.result() if loading else None,
             "events": storm.result() if storm else None}
    wall = time.perf_counter() - began
    used = {pid: seconds - cpu.get(pid, 0.0) for pid, seconds in cpu_by_process(pids).items()}
    found["server_cpu"] = sum(used.values()) / wall  # the writer process and the chart workers included
    found["serving_cpu"] = used.get(server.pid, 0.0) / wall  # the process whose event loop answers
    found["server_waited"] = (cpu_wait_seconds(server.pid) - waited) / wall
    found["wall"] = wall
    return found


def report(found: dict[str, Any], args: argparse.Namespace) -> None:
    health = found["probe"]["latencies"]
    bad = sum(1 for s in found["probe"]["statuses"] if s != 200)
    print(f"-- {found['name']}: server CPU {found['server_cpu']:.2f} of a core ({found['serving_cpu']:.2f} in the "
          f"serving process, the rest in its writer and chart processes); its threads waited "
          f"{found['server_waited']:.2f} s a second for a CPU other processes held")
    print(f"   /healthz        n {len(health):>6}  p50 {statistics.median(health):7.1f} ms  "
          f"p99 {percentile(health, 0.99):7.1f} ms  max {max(health):7.1f} ms  non-200 {bad}  (target p99 <= 50 ms)")
    if (storm := found["events"]) is not None:
        lat, ok = storm["latencies"], sum(1 for s in storm["statuses"] if s in (200, 202))
        last = max(i / args.rate + ms / 1000 for i, ms in enumerate(lat))
        print(f"   flux events     n {len(lat):>6}  recorded {ok / last:7.0f}/s (offered {args.rate:.0f}/s)  "
              f"POST to recorded p50 {statistics.median(lat):6.0f} ms  p99 {percentile(lat, 0.99):6.0f} ms  "
              f"max {max(lat):6.0f} ms  not 2xx {len(lat) - ok}  (target >= 1,000/s, p99 <= 1,000 ms)")
        print(f"   server CPU      {found['server_cpu'] * found['wall'] / len(lat) * 1000:.2f} ms an event, "
              f"{found['serving_cpu'] * found['wall'] / len(lat) * 1000:.2f} ms of it in the serving process "
              f"(pages included in 'both'): a core records {len(lat) / (found['server_cpu'] * found['wall']):.0f}/s")
        print(f"   generator       CPU {storm['cpu'] / storm['wall']:.2f} of a core; sent p99 "
              f"{percentile(storm['lags'], 0.99):.1f} ms behind schedule (waiting for a free connection included)")
    if (pages := found["pages"]) is not None:
        lat = pages["latencies"]
        bad = sum(1 for s in pages["statuses"] if s != 200)
        print(f"   page loads      n {len(lat):>6}  {len(lat) / pages['wall']:7.1f}/s with {args.pages} browsers  "
              f"p50 {statistics.median(lat):6.0f} ms  p99 {percentile(lat, 0.99):6.0f} ms  non-200 {bad}  "
              f"(generator CPU {pages['cpu'] / pages['wall']:.2f} of a core)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="Flux events a second, offered open-loop")
    parser.add_argument("--seconds", type=float, default=10.0, help="each phase")
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--objects", type=int, default=100, help="Flux Kustomizations reporting")
    parser.add_argument("--pages", type=int, default=50, help="browsers loading pages at once")
    parser.add_argument("--incidents", type=int, default=10, help="incidents whose pages they load")
    parser.add_argument("--phases", default="idle,events,pages,both")
    args = parser.parse_args()
    count = int(args.rate * args.seconds)
    results = []
    with tempfile.TemporaryDirectory(prefix="backout-storm-") as name:
        tmp = Path(name)
        bare, shas = history(tmp, commits=200)
        port = free_port()
        server = start([sys.executable, "-m", "bot", "serve", "--config", str(config(tmp, bare, port))], port, ROOT)
        try:
            with httpx.Client(base_url=f"http://{HOST}:{port}", timeout=60) as client:
                for n in range(args.incidents):
                    client.post("/webhooks/alertmanager", content=alert(n),
                                headers={"Authorization": f"Bearer {API_TOKEN}"}).raise_for_status()
                first = client.get("/api/incidents", headers={"Authorization": f"Bearer {API_TOKEN}"}).json()
            numbers = [int(i["ref"].removeprefix("INC-")) for i in first["incidents"]]
            links = PageLinks(LINK_SECRET.encode(), timedelta(days=1))
            pages = [http_request("GET", f"/incidents/INC-{n}?t={links.token(n, now=datetime.now(UTC))}", host=HOST)
                     for n in numbers]
            at = datetime.now(UTC) - timedelta(days=1)
            sent = 0
            for which in args.phases.split(","):
                events = None
                if which in ("events", "both"):
                    events = flux_events(shas, count=count, objects=args.objects, at=at + timedelta(hours=sent))
                    sent += 1
                results.append(phase(which, port=port, events=events, args=args, server=server,
                                     pages=pages if which in ("pages", "both") else None))
            stored = stored_events(tmp)
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"machine: {os.cpu_count()} cores (shared: figures are indicative); SQLite; {args.objects} Flux objects, "
          f"{count:,} signed events a phase at {args.rate:.0f}/s over {args.connections} connections; "
          f"{args.pages} page loaders on {args.incidents} incidents; /healthz every {PROBE_EVERY * 1000:.0f} ms")
    for found in results:
        report(found, args)
    offered = count * sum(1 for r in results if r["events"] is not None)
    print(f"stored: {stored:,} controller events of {offered:,} offered "
          f"({'all' if stored == offered else 'LOST SOME'})")
    return 0 if stored == offered else 1


if __name__ == "__main__":
    os.environ.pop("BACKOUT_CONFIG", None)
    raise SystemExit(main())
