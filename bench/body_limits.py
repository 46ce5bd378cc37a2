"""Bodies before authentication: what a 200 MB body costs a running Backout, route by route.

Starts `backout serve` (SQLite, an API token, Flux and Argo CD credentials) as its own process
and streams 200 MB chunked bodies at each write route, with no credential and then with one,
stopping when the server answers. Prints each answer, the body bytes the sender got out before
it (the server reads no more than that), and the server's resident memory: now, and its peak
(VmHWM) since it started. Usage: python bench/body_limits.py [--megabytes N]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import free_port, start  # noqa: E402
from tests.chunked import stream_chunked  # noqa: E402

API_TOKEN = "bench-api-token-0123456789"
AM_TOKEN = "bench-am-token-0123456789"
ARGO_TOKEN = "bench-argo-token-0123456789"
ROUTES = ["/api/incidents/1/notes", "/api/incidents/1/ack", "/api/incidents/1/rollback",
          "/api/incidents/1/verdict", "/webhooks/build", "/webhooks/alertmanager", "/webhooks/argocd",
          "/webhooks/flux"]
CREDENTIALS = {"/webhooks/alertmanager": {"Authorization": f"Bearer {AM_TOKEN}"},
               "/webhooks/argocd": {"Authorization": f"Bearer {ARGO_TOKEN}"},
               "/webhooks/flux": {"X-Signature": "sha256=" + "0" * 64}}  # an HMAC is read to be checked


def memory_mb(pid: int) -> tuple[float, float]:
    """(resident now, peak resident) of a process, in MB (Linux /proc)."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=200, help="size of each streamed body")
    args = parser.parse_args()
    total = args.megabytes * 1024 * 1024

    with tempfile.TemporaryDirectory(prefix="backout-bench-") as tmp:
        workdir = Path(tmp)
        (workdir / "playbooks").mkdir()
        port = free_port()
        (workdir / "config.yaml").write_text(json.dumps({
            "storage": {"url": f"sqlite:///{workdir / 'bench.db'}"}, "server": {"port": port},
            "alertmanager": {"auth": "bearer", "bearer_token": AM_TOKEN}, "api": {"tokens": [API_TOKEN]},
            "flux": {"hmac_key": "bench-flux-key-0123"}, "argocd": {"token": ARGO_TOKEN},
            "playbooks_dir": str(workdir / "playbooks"), "logging": {"level": "warning"},
        }))
        server = start([sys.executable, "-m", "bot", "serve", "--config", "config.yaml"], port, workdir)
        url = f"http://127.0.0.1:{port}"
        try:
            now, peak = memory_mb(server.pid)
            print(f"started: resident {now:.0f} MB, peak {peak:.0f} MB; {args.megabytes} MB streamed at each route")
            for path in ROUTES:
                for who, headers in (("no credential", {}),
                                     ("credential", CREDENTIALS.get(path, {"Authorization": f"Bearer {API_TOKEN}"}))):
                    answer = stream_chunked(url, path, headers, total=total)
                    now, peak = memory_mb(server.pid)
                    print(f"{path:28} {who:14} {answer.status}  sent {answer.sent / 1024:8.0f} KiB before the "
                          f"answer  resident {now:4.0f} MB  peak {peak:4.0f} MB")
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main()
