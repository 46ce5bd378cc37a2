"""Health-probe throughput and CPU share, with the real Prometheus and the real scheduler.

An exporter serves 100 gauges that Prometheus scrapes every second; Backout's scheduler runs one
probe per gauge (all healthy, as most probes are most of the time). Phase 1: every probe every
second for 20 s, counting evaluations per minute. Phase 2: 100 probes on a 30 s interval for
60 s, measuring the CPU time this process takes as a share of one core (target under 5%).
Needs the `prometheus` binary (Debian package prometheus). Usage: python bench/probes.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot import bootstrap
from bot.adapters.console import RecordingNotifier
from bot.config import LoggingSettings, Settings
from bot.domain.playbooks import Playbook
from bot.entrypoints.scheduler import start_scheduler
from tests.integration.processes import Exporter, Prometheus, wait_until

PROBES = 100


def playbooks(every: str) -> list[Playbook]:
    return [Playbook.model_validate({
        "name": f"svc{n:03d}", "service": f"svc{n:03d}", "match": {"service": f"svc{n:03d}"},
        "probes": [{"name": "error-ratio", "query": f'error_ratio{{service="svc{n:03d}"}}', "above": 0.5,
                    "for": "1m", "every": every}],
    }) for n in range(PROBES)]


def evaluations(app: bootstrap.App) -> float:
    text = app.ctx.metrics.render().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("backout_job_runs_total{") and 'job="probe:' in line)


def run(root: Path, url: str, every: str, seconds: float) -> tuple[float, float]:
    settings = Settings.model_validate({
        "storage": {"url": f"sqlite:///{root / f'bench-{every}.db'}"}, "alertmanager": {"auth": "none"},
        "prometheus": {"url": url}, "logging": {"level": "warning"},
        "scheduler": {"reminders_every": "1h"},
    })
    app = bootstrap.build(settings, playbooks=playbooks(every), notifier=RecordingNotifier())
    scheduler = start_scheduler(app.ctx)
    time.sleep(2)  # let the first runs settle
    runs, cpu, wall = evaluations(app), time.process_time(), time.monotonic()
    time.sleep(seconds)
    runs, cpu, wall = evaluations(app) - runs, time.process_time() - cpu, time.monotonic() - wall
    scheduler.shutdown(wait=True)
    app.close()
    return runs / wall * 60, cpu / wall


def main() -> None:
    bootstrap.configure_logging(LoggingSettings(level="warning"))
    exporter = Exporter().start()
    exporter.text = "".join(f'error_ratio{{service="svc{n:03d}"}} 0.01\n' for n in range(PROBES))
    with tempfile.TemporaryDirectory(prefix="backout-bench-") as tmp:
        root = Path(tmp)
        prometheus = Prometheus(root / "prometheus", target_port=exporter.port).start()
        try:
            wait_until(lambda: len(httpx.get(f"{prometheus.url}/api/v1/query", params={"query": "error_ratio"},
                                             timeout=2).json()["data"]["result"]) == PROBES,
                       timeout=30, what="the first scrape")
            per_minute, busy_share = run(root, prometheus.url, "1s", 20)
            per_minute_30, share_30 = run(root, prometheus.url, "30s", 60)
        finally:
            prometheus.stop()
            exporter.stop()
    print(f"{datetime.now(UTC):%Y-%m-%d}, {PROBES} probes against the real Prometheus, SQLite, one process")
    print(f"every probe every 1 s:  {per_minute:8.0f} evaluations/minute, CPU {busy_share * 100:5.1f}% of one core "
          f"= {busy_share / (per_minute / 60) * 1000:.2f} ms of CPU per evaluation "
          f"(about {60 / (busy_share / (per_minute / 60)):,.0f} evaluations/minute per core)")
    print(f"every probe every 30 s: {per_minute_30:8.0f} evaluations/minute, CPU {share_30 * 100:5.2f}% of one core "
          "(target < 5%)")


if __name__ == "__main__":
    main()
