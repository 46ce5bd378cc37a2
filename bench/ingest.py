"""Webhook ingestion speed: Backout against a bare parse-only FastAPI endpoint, in one run.

Prints alerts per second for both (closed loop, fixed concurrency), their ratio, and p50/p99
latency at a fixed 200 requests/s (open loop: latency counts from the scheduled send time, so
a slow server cannot hide its queue). Both servers run as separate uvicorn processes on
loopback; the load comes from this process. Usage: python bench/ingest.py [--seconds N]
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-token-0123456789"
SERVICES = [f"svc-{n:02d}" for n in range(20)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def payload(n: int) -> bytes:
    """A realistic group of 5 new firing alerts for one of 20 services."""
    service = SERVICES[n % len(SERVICES)]
    starts = (datetime(2026, 11, 21, tzinfo=UTC) + timedelta(seconds=n)).isoformat()
    alerts = [{
        "status": "firing",
        "labels": {"alertname": "HighErrorRate", "service": service, "severity": "critical",
                   "instance": f"10.0.{n % 250}.{i}:8080", "namespace": "prod", "pod": f"{service}-{i}"},
        "annotations": {"summary": f"5xx > 5% on {service}", "description": "error ratio 0.12",
                        "runbook_url": "https://runbooks.example.com/high-error-rate"},
        "startsAt": starts, "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=x",
        "fingerprint": f"{n:012x}{i:04x}",
    } for i in range(5)]
    body = {"receiver": "backout", "status": "firing", "alerts": alerts,
            "groupLabels": {"alertname": "HighErrorRate", "service": service},
            "commonLabels": {"alertname": "HighErrorRate", "service": service},
            "commonAnnotations": {}, "externalURL": "http://alertmanager:9093", "version": "4",
            "groupKey": f'{{}}:{{alertname="HighErrorRate", service="{service}"}}',
            "truncatedAlerts": 0}
    return json.dumps(body).encode()


def start(command: list[str], port: int, workdir: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(command, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={k: v for k, v in os.environ.items() if not k.startswith("BACKOUT_")})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"server on port {port} did not start")


def cpu_wait_seconds(pid: int) -> float:
    """How long the process's threads, together, have waited for a CPU while runnable (Linux
    schedstat): on a busy machine, the time other processes took from it."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue  # the thread ended meanwhile
    return total / 1e9


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def throughput(url: str, *, seconds: float, workers: int, numbers: count) -> tuple[float, int]:
    """Alerts per second with `workers` clients posting back to back, and the request count."""
    stop = time.monotonic() + seconds
    done = [0] * workers
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    def worker(index: int) -> None:
        with httpx.Client(timeout=10) as client:
            while time.monotonic() < stop:
                response = client.post(url, content=payload(next(numbers)), headers=headers)
                response.raise_for_status()
                done[index] += 1

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done) * 5 / (time.monotonic() - started), sum(done)


def latency(url: str, *, rate: float, seconds: float, numbers: count) -> tuple[float, float, int]:
    """p50 and p99 in ms at a fixed request rate, measured from each scheduled send time."""
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    # Clients are made before the clock starts: making one builds an SSL context (~10 ms).
    clients: queue.SimpleQueue[httpx.Client] = queue.SimpleQueue()
    for _ in range(32):
        clients.put(httpx.Client(timeout=10))
    samples: list[float] = []
    errors = 0

    def send(scheduled: float, body: bytes) -> None:
        nonlocal errors
        client = clients.get()
        try:
            if client.post(url, content=body, headers=headers).status_code != 200:
                errors += 1
        finally:
            clients.put(client)
        samples.append(time.monotonic() - scheduled)

    total = int(rate * seconds)
    bodies = [payload(next(numbers)) for _ in range(total)]
    with ThreadPoolExecutor(max_workers=32) as pool:
        begin = time.monotonic() + 0.2
        for i, body in enumerate(bodies):
            scheduled = begin + i / rate
            pause = scheduled - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            pool.submit(send, scheduled, body)
    while not clients.empty():
        clients.get().close()
    samples.sort()
    return (statistics.median(samples) * 1000, samples[int(len(samples) * 0.99) - 1] * 1000, errors)


def big_group(size: int, status: str) -> bytes:
    """One group of `size` alerts (a fleet-wide alert), firing or all resolved."""
    starts = datetime(2026, 11, 22, tzinfo=UTC).isoformat()
    ends = "0001-01-01T00:00:00Z" if status == "firing" else datetime(2026, 11, 22, 1, tzinfo=UTC).isoformat()
    alerts = [{"status": status, "labels": {"alertname": "NodeDown", "service": "fleet", "instance": f"n{i}"},
               "annotations": {}, "startsAt": starts, "endsAt": ends, "fingerprint": f"b{i:015x}"}
              for i in range(size)]
    return json.dumps({"version": "4", "status": status, "receiver": "backout", "alerts": alerts,
                       "groupKey": '{}:{alertname="NodeDown"}'}).encode()


def big_resolve(url: str, *, size: int, numbers: count) -> tuple[float, float, int]:
    """Seconds to store the resolution of a `size`-alert group, and the worst latency of small
    deliveries sent meanwhile (they must not wait behind it for longer than it takes)."""
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    with httpx.Client(timeout=120, headers=headers) as client:
        assert client.post(url, content=big_group(size, "firing")).status_code == 200
        body = big_group(size, "resolved")
        small: list[float] = []
        done = threading.Event()

        def others() -> None:
            with httpx.Client(timeout=60, headers=headers) as other:
                while not done.is_set():
                    began = time.perf_counter()
                    other.post(url, content=payload(next(numbers)))
                    small.append(time.perf_counter() - began)
                    time.sleep(0.01)

        thread = threading.Thread(target=others)
        thread.start()
        time.sleep(0.1)
        began = time.perf_counter()
        status = client.post(url, content=body).status_code
        took = time.perf_counter() - began
        done.set()
        thread.join()
    assert status == 200, status
    return took, max(small), len(small)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each phase")
    parser.add_argument("--workers", type=int, default=8, help="clients in the throughput phase")
    parser.add_argument("--rate", type=float, default=200.0, help="requests/s in the latency phase")
    parser.add_argument("--group", type=int, default=10_000, help="alerts in the big group")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="backout-bench-") as tmp:
        workdir = Path(tmp)
        (workdir / "playbooks").mkdir()
        port, bare_port = free_port(), free_port()
        (workdir / "config.yaml").write_text(json.dumps({
            "storage": {"url": f"sqlite:///{workdir / 'bench.db'}"},
            "alertmanager": {"auth": "bearer", "bearer_token": TOKEN, "max_start_age": "36500d"},  # fixed dates
            "server": {"port": port, "max_body_bytes": 16 * 1024 * 1024},  # a 10,000-alert group
            "playbooks_dir": str(workdir / "playbooks"),
            "logging": {"level": "warning"},
        }))
        servers = [
            start([sys.executable, "-m", "bot", "serve", "--config", "config.yaml"], port, workdir),
            start([sys.executable, "-m", "uvicorn", "--app-dir", str(ROOT / "bench"), "bare_app:app",
                   "--port", str(bare_port), "--log-level", "warning", "--no-access-log"],
                  bare_port, workdir),
        ]
        numbers = count()
        backout_url = f"http://127.0.0.1:{port}/webhooks/alertmanager"
        bare_url = f"http://127.0.0.1:{bare_port}/webhooks/alertmanager"
        try:
            throughput(backout_url, seconds=1, workers=args.workers, numbers=numbers)  # warm up
            cpu = cpu_seconds(servers[0].pid)
            ours, ours_requests = throughput(backout_url, seconds=args.seconds, workers=args.workers,
                                             numbers=numbers)
            ours_cpu = (cpu_seconds(servers[0].pid) - cpu) / ours_requests * 1000
            cpu = cpu_seconds(servers[1].pid)
            bare, bare_requests = throughput(bare_url, seconds=args.seconds, workers=args.workers,
                                             numbers=numbers)
            bare_cpu = (cpu_seconds(servers[1].pid) - cpu) / bare_requests * 1000
            p50, p99, errors = latency(backout_url, rate=args.rate, seconds=args.seconds,
                                       numbers=numbers)
            resolve, held, others = big_resolve(backout_url, size=args.group, numbers=numbers)
        finally:
            for server in servers:
                server.terminate()
                server.wait(10)

    print(f"machine: {os.cpu_count()} cores; payload: 5 new firing alerts per request; "
          f"{args.workers} clients; {args.seconds:.0f}s per phase; SQLite")
    print(f"backout     {ours:9.0f} alerts/s   server CPU {ours_cpu:.2f} ms/request")
    print(f"bare parse  {bare:9.0f} alerts/s   server CPU {bare_cpu:.2f} ms/request")
    print(f"ratio       {ours / bare:9.2f}   (this client cannot drive the bare endpoint: the ratio to trust "
          "is bench/ingest_wrk.py's)")
    print(f"at {args.rate:.0f} req/s: p50 {p50:.1f} ms, p99 {p99:.1f} ms (target p99 <= 50 ms), "
          f"{errors} errors")
    print(f"resolving one {args.group:,}-alert group: {resolve:.2f} s (target < 1 s); {others} other "
          f"deliveries meanwhile, the slowest {held * 1000:.0f} ms")


if __name__ == "__main__":
    main()
