"""How long the CLI takes to answer, start to exit, as a person runs it: `--help`, `--version`,
`incidents list` and `incidents show` on the local SQLite database, and the same two through
`--server` against a running `backout serve`. Each is run several times; the median and the
slowest are printed. Target: well under a second for each.
Usage: python bench/cli_start.py [--runs N]
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import TOKEN, free_port, payload, start

ENV = {k: v for k, v in os.environ.items() if not k.startswith("BACKOUT_")}


def timed(args: list[str], cwd: Path, runs: int) -> tuple[float, float]:
    took = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "bot", *args], cwd=cwd, capture_output=True, env=ENV,
                              check=False)
        took.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise SystemExit(f"backout {' '.join(args)} failed:\n{done.stderr.decode()}")
    return statistics.median(took), max(took)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="backout-cli-") as tmp:
        workdir = Path(tmp)
        (workdir / "playbooks").mkdir()
        port = free_port()
        (workdir / "config.yaml").write_text(json.dumps({
            "server": {"port": port}, "storage": {"url": "sqlite:///bench.db"},
            "alertmanager": {"auth": "bearer", "bearer_token": TOKEN, "max_start_age": "36500d"},  # fixed dates
            "api": {"tokens": [TOKEN]},
            "playbooks_dir": "playbooks", "logging": {"level": "warning"},
        }))
        server = start([sys.executable, "-m", "bot", "serve", "--config", "config.yaml"], port, workdir)
        try:
            import httpx

            for n in range(20):  # twenty incidents to list
                httpx.post(f"http://127.0.0.1:{port}/webhooks/alertmanager", content=payload(n * 1000),
                           headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
            remote = ["--server", f"http://127.0.0.1:{port}", "--token", TOKEN]
            cases = {
                "--help": ["--help"],
                "--version": ["--version"],
                "incidents list (local)": ["incidents", "list"],
                "incidents show 1 (local)": ["incidents", "show", "1"],
                "incidents list (--server)": [*remote, "incidents", "list"],
                "incidents show 1 (--server)": [*remote, "incidents", "show", "1"],
            }
            print(f"machine: {os.cpu_count()} cores; {args.runs} runs each; python {sys.version.split()[0]}; "
                  f"a bare `python -c pass` takes {timed_python(args.runs) * 1000:.0f} ms")
            for name, case in cases.items():
                median, slowest = timed(case, workdir, args.runs)
                print(f"{name:<30} median {median * 1000:5.0f} ms   slowest {slowest * 1000:5.0f} ms")
        finally:
            server.terminate()
            server.wait(10)
    return 0


def timed_python(runs: int) -> float:
    took = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        took.append(time.perf_counter() - started)
    return statistics.median(took)


if __name__ == "__main__":
    sys.exit(main())
