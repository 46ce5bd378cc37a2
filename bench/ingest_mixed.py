"""Mixed webhook load: one huge Alertmanager delivery while single-alert deliveries keep coming.

Starts `backout serve` (SQLite, bearer auth, `server.max_body_bytes` raised to --max-body: the
default 1 MiB refuses a fleet-wide group; the README says how to size it beside Alertmanager's
`max_alerts`). Single-alert deliveries, each a new alert in one of 20 groups, are offered
open-loop at --rate a second for --seconds from a separate process; after --after seconds one
delivery of --alerts alerts (about 1 KB each, ~20 MB) is posted. Prints how long the huge one
took to be accepted (target <= 2 s; it is answered once every alert is stored) and the small ones'
latency from their scheduled send, over the run and while the huge one was in flight (target
p99 < 100 ms), with the generator's CPU share and lag. The machine is shared: re-measure quietly.
Two figures load does not change: the server's CPU seconds from the huge post to its answer, and
how many alerts the huge incident's announcement (its notice and chat card) builds, read back from
the run's database afterwards (the summary reads at most 20; before it, all 20,000).
Usage: python bench/ingest_mixed.py [--alerts 20000] [--rate 100] [--seconds 8]
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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import TOKEN, cpu_seconds, cpu_wait_seconds, free_port, start
from openloop import http_request, in_process, open_loop, percentile

from bot.adapters.console import RecordingNotifier
from bot.adapters.storage import store as sql_store
from bot.adapters.storage.engine import create_engine
from bot.services.card import incident_message
from bot.services.notify import incident_update

HOST = "127.0.0.1"


def delivery(group: str, alerts: list[dict[str, object]]) -> bytes:
    return json.dumps({
        "version": "4", "groupKey": f'{{}}:{{service="{group}"}}', "truncatedAlerts": 0, "status": "firing",
        "receiver": "backout", "groupLabels": {"service": group}, "commonLabels": {"service": group},
        "commonAnnotations": {}, "externalURL": "http://alertmanager:9093", "alerts": alerts,
    }).encode()


def alert(n: int, service: str, started: datetime, *, description: str = "") -> dict[str, object]:
    return {
        "status": "firing", "fingerprint": f"{n:016x}", "startsAt": (started + timedelta(milliseconds=n)).isoformat(),
        "endsAt": "0001-01-01T00:00:00Z",
        "labels": {"alertname": "KubePodNotReady", "service": service, "severity": "warning", "cluster": "prod-eu-1",
                   "namespace": f"ns{n % 50}", "pod": f"{service}-{n:06d}", "job": "kube-state-metrics",
                   "instance": f"10.{n % 250}.{n // 250 % 250}.1:9100"},
        "annotations": {"summary": f"Pod ns{n % 50}/{service}-{n:06d} has been not ready for 15 minutes.",
                        "description": description, "runbook_url": "https://runbooks.example.com/kube-pod-not-ready"},
        "generatorURL": "http://prometheus:9090/graph?g0.expr=kube_pod_status_ready%7Bcondition%3D%22false%22%7D",
    }


def announcement_reads(database: Path) -> int:
    """Alerts built to announce the run's fleet-wide incident (its notice, then its card), in this
    process, from the run's database: every alert read is built once, by the store's `_alert`."""
    built = [0]
    real = sql_store._alert

    def counting(row: Any) -> Any:
        built[0] += 1
        return real(row)

    engine = create_engine(f"sqlite:///{database}")
    store = sql_store.SqlStore(engine)
    fleet = next((i for i in store.read(lambda tx: tx.incidents.list(limit=100)) if i.service == "fleet"), None)
    if fleet is None or fleet.id is None:
        raise SystemExit("the huge delivery opened no incident")
    sql_store._alert = counting
    try:
        incident_update(store=store, notifier=RecordingNotifier(), incident_id=fleet.id, kind="incident.opened")
        incident_message(store=store, incident_id=fleet.id)
    finally:
        sql_store._alert = real
        engine.dispose()
    return built[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=20_000, help="alerts in the huge delivery")
    parser.add_argument("--rate", type=float, default=100.0, help="single-alert deliveries a second")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--after", type=float, default=2.0, help="when the huge delivery is posted")
    parser.add_argument("--max-body", type=int, default=32 << 20, help="server.max_body_bytes")
    args = parser.parse_args()
    started = datetime.now(UTC) - timedelta(minutes=10)
    huge = delivery("fleet", [alert(1_000_000 + n, "fleet", started, description="x" * 400)
                              for n in range(args.alerts)])
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    smalls = [http_request("POST", "/webhooks/alertmanager", host=HOST, headers=auth,
                           body=delivery(f"svc{n % 20}", [alert(n, f"svc{n % 20}", started)]))
              for n in range(int(args.rate * args.seconds))]
    with tempfile.TemporaryDirectory(prefix="backout-mixed-") as name:
        tmp = Path(name)
        (tmp / "playbooks").mkdir()
        port = free_port()
        (tmp / "config.yaml").write_text(json.dumps({
            "server": {"port": port, "max_body_bytes": args.max_body},
            "storage": {"url": f"sqlite:///{tmp / 'bench.db'}"},
            "alertmanager": {"auth": "bearer", "bearer_token": TOKEN},
            "playbooks_dir": str(tmp / "playbooks"), "logging": {"level": "warning"},
        }))
        server = start([sys.executable, "-m", "bot", "serve", "--config", "config.yaml"], port, tmp)
        huge_answer: dict[str, float | int] = {}

        def post_huge() -> None:
            time.sleep(args.after)
            began, cpu_before = time.perf_counter(), cpu_seconds(server.pid)
            answer = httpx.post(f"http://{HOST}:{port}/webhooks/alertmanager", content=huge, headers=auth, timeout=120)
            huge_answer.update(status=answer.status_code, began=began, took=time.perf_counter() - began,
                               cpu=cpu_seconds(server.pid) - cpu_before,
                               stored=answer.json().get("new", 0) if answer.status_code == 200 else 0)

        if spy := os.environ.get("BENCH_PYSPY"):  # a profile of the server over the run
            import subprocess
            subprocess.Popen([spy, "record", "-p", str(server.pid), "-d", str(int(args.seconds) + 2), "-f", "raw",
                              "-o", str(Path(os.environ.get("BENCH_PYSPY_OUT", "pyspy.txt")).resolve()), "-r", "100"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            cpu, waited = cpu_seconds(server.pid), cpu_wait_seconds(server.pid)
            load = in_process(open_loop, HOST, port, smalls, rate=args.rate, connections=32)
            sender = threading.Thread(target=post_huge)
            sender.start()
            found = load.result()
            sender.join()
            server_cpu = cpu_seconds(server.pid) - cpu
            server_waited = cpu_wait_seconds(server.pid) - waited
        finally:
            server.terminate()
            server.wait(30)
        announced = announcement_reads(tmp / "bench.db")
    lat = found["latencies"]
    during = [ms for i, ms in enumerate(lat) if huge_answer["began"] <= found["began"] + i / args.rate
              <= huge_answer["began"] + huge_answer["took"]]
    bad = sum(1 for s in found["statuses"] if s != 200)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} (shared: figures are "
          f"indicative); SQLite; server CPU "
          f"{server_cpu / found['wall']:.2f} of a core over the run, {server_cpu:.1f} s in all; its threads waited "
          f"{server_waited / found['wall']:.2f} s a second for a CPU other processes held")
    print(f"huge delivery    {args.alerts:,} alerts, {len(huge) / 1e6:.1f} MB: answered {huge_answer['status']} in "
          f"{huge_answer['took']:.2f} s, {huge_answer['stored']:,} alerts stored (target <= 2 s); server CPU "
          f"meanwhile {huge_answer['cpu']:.2f} s (the small ones' included); its announcement builds "
          f"{announced:,} alerts")
    print(f"single alerts    n {len(lat):>5}  p50 {statistics.median(lat):6.1f} ms  p99 {percentile(lat, 0.99):6.1f} ms"
          f"  max {max(lat):6.1f} ms  not 200 {bad}  (target p99 < 100 ms)")
    if during:
        print(f"  while huge     n {len(during):>5}  p50 {statistics.median(during):6.1f} ms  "
              f"p99 {percentile(during, 0.99):6.1f} ms  max {max(during):6.1f} ms")
    if os.environ.get("BENCH_TRACE"):
        for second in range(int(args.seconds * 2)):
            window = lat[int(second * args.rate / 2):int((second + 1) * args.rate / 2)]
            print(f"  t={second / 2:4.1f}s  max {max(window):7.1f} ms")
        print(f"  huge sent at t={huge_answer['began'] - found['began']:.2f}s")
    print(f"generator        CPU {found['cpu'] / found['wall']:.2f} of a core; sent p99 "
          f"{percentile(found['lags'], 0.99):.1f} ms behind schedule")
    return 0 if huge_answer["status"] == 200 and not bad else 1


if __name__ == "__main__":
    os.environ.pop("BACKOUT_CONFIG", None)
    raise SystemExit(main())
