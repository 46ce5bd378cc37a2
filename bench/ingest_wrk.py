"""Webhook ingestion driven by wrk (C, event loop): Backout against a bare parse-only endpoint.

`bench/ingest.py` uses a Python client, which cannot drive the bare endpoint past about a
thousand requests a second, so its ratio measures the client. Here wrk (Debian package `wrk`)
sends the same 5-alert deliveries to both servers in turn, in two workloads: every delivery new
(fresh fingerprints: five alerts and five timeline events written each), and re-sent (the same
500 groups again and again, as Alertmanager re-notifies a firing group every group_interval:
recognised, nothing written). It prints requests/s, the ratio, server CPU per request and wrk's
own CPU share (it must stay well below a core, or wrk is the bottleneck).
Usage: python bench/ingest_wrk.py [--seconds N]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import ROOT, TOKEN, cpu_seconds, free_port, payload, start

# Each request gets a new group and fingerprints: a counter spliced into the body template.
LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(token)s"
local template = [==[%(template)s]==]
local n = 0
request = function()
  n = n + 1
  local body = template:gsub("COUNTER", %(counter)s)
  return wrk.format(nil, nil, nil, body)
end
"""
RUNS = itertools.count(1)  # each run its own fingerprints: wrk restarts its counter, and a repeat is a duplicate
COUNTERS = {
    "new": 'string.format("%(run)04x%%08x", n)',
    "re-sent": 'string.format("ffff%%08x", n %% 500)',
}


def run_wrk(url: str, *, seconds: float, connections: int, workdir: Path,
            workload: str = "new") -> tuple[float, float, float]:
    """(requests/s, non-2xx share, wrk's CPU seconds per wall second)."""
    template = payload(0).decode().replace("000000000000", "COUNTER")
    script = workdir / "post.lua"
    counter = COUNTERS[workload] % {"run": next(RUNS)}
    script.write_text(LUA % {"token": TOKEN, "template": template, "counter": counter})
    started = time.perf_counter()
    done = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds:.0f}s", "-s", str(script), url],
                          capture_output=True, text=True, check=True)
    wall = time.perf_counter() - started
    text = done.stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", text).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return rate, (int(bad.group(1)) / total if bad and total else 0.0), wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)")
        return 2
    with tempfile.TemporaryDirectory(prefix="backout-wrk-") as tmp:
        workdir = Path(tmp)
        (workdir / "playbooks").mkdir()
        port, bare_port = free_port(), free_port()
        (workdir / "config.yaml").write_text(json.dumps({
            "server": {"port": port}, "storage": {"url": f"sqlite:///{workdir / 'bench.db'}"},
            "alertmanager": {"auth": "bearer", "bearer_token": TOKEN, "max_start_age": "36500d"},  # fixed dates
            "playbooks_dir": str(workdir / "playbooks"), "logging": {"level": "warning"},
        }))
        servers = [
            start([sys.executable, "-m", "bot", "serve", "--config", "config.yaml"], port, workdir),
            start([sys.executable, "-m", "uvicorn", "--app-dir", str(ROOT / "bench"), "bare_app:app",
                   "--port", str(bare_port), "--log-level", "warning", "--no-access-log"], bare_port, workdir),
        ]
        results: dict[tuple[str, str], tuple[float, float, float, float]] = {}
        try:
            for workload in COUNTERS:
                for name, server, url in (
                    ("backout", servers[0], f"http://127.0.0.1:{port}/webhooks/alertmanager"),
                    ("bare parse", servers[1], f"http://127.0.0.1:{bare_port}/webhooks/alertmanager"),
                ):
                    run_wrk(url, seconds=2, connections=args.connections, workdir=workdir, workload=workload)  # warm up
                    cpu = cpu_seconds(server.pid)
                    before = os.times()
                    rate, bad, wall = run_wrk(url, seconds=args.seconds, connections=args.connections,
                                              workdir=workdir, workload=workload)
                    after = os.times()
                    used = cpu_seconds(server.pid) - cpu
                    client = (after.children_user + after.children_system - before.children_user
                              - before.children_system) / wall
                    results[(workload, name)] = (rate, bad, used / (rate * wall) * 1000, client)
        finally:
            for server in servers:
                server.terminate()
                server.wait(10)
    print(f"machine: {os.cpu_count()} cores; wrk 1 thread, {args.connections} connections, "
          f"{args.seconds:.0f}s a run; 5 firing alerts per request; SQLite")
    for workload in COUNTERS:
        print(f"-- {workload} deliveries")
        for name in ("backout", "bare parse"):
            rate, bad, cpu_ms, client = results[(workload, name)]
            print(f"{name:<11} {rate:9.0f} requests/s   server CPU {cpu_ms:.2f} ms/request   "
                  f"errors {bad:.1%}   wrk CPU {client:.2f} of a core")
        ours, bare = results[(workload, "backout")][0], results[(workload, "bare parse")][0]
        print(f"ratio       {ours / bare:9.2f}   (target >= 0.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
