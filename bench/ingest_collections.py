"""Garbage collections while a huge delivery is parsed and stored, in this process, with the
server's modules loaded: how many full collections it triggers and the CPU each takes, holding the
interpreter lock (every request waits meanwhile), with and without `serve`'s `gc.freeze()` of what
start-up built. CPU times, not wall-clock: load stretches them less. A child process per mode.
Usage: python bench/ingest_collections.py [--alerts 20000]
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))


def measure(alerts: int, *, freeze: bool) -> str:
    from ingest_mixed import alert, delivery

    import bot.entrypoints.http  # noqa: F401  # the server's modules, as `serve` holds them
    from bot.adapters.alertmanager.payload import parse_large_delivery
    from bot.adapters.storage import migrate
    from bot.adapters.storage.engine import create_engine
    from bot.adapters.storage.store import SqlStore
    from bot.cli.server import settle_heap
    from bot.domain.incidents import IncidentPolicy
    from bot.services.ingest import ingest_deliveries
    from bot.services.ingest_parts import parts

    started = datetime.now(UTC) - timedelta(minutes=10)
    body = delivery("fleet", [alert(1_000_000 + n, "fleet", started, description="x" * 400) for n in range(alerts)])
    engine = create_engine(f"sqlite:///{tempfile.mkdtemp(prefix='backout-gc-')}/bench.db")
    migrate.upgrade(engine)
    store = SqlStore(engine)
    if freeze:
        settle_heap()
    else:
        gc.collect()
    full: list[float] = []
    began = [0.0]

    def timed(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            began[0] = time.process_time()
        elif info["generation"] == 2:
            full.append(1000 * (time.process_time() - began[0]))

    gc.callbacks.append(timed)
    cpu = time.process_time()
    now = datetime.now(UTC)
    for part in parts(parse_large_delivery(body, now=now)):
        ingest_deliveries(store=store, deliveries=[part], playbooks=(), policy=IncidentPolicy(), now=now)
    cpu = time.process_time() - cpu
    gc.callbacks.remove(timed)
    return (f"{'frozen' if freeze else 'plain '}  parse and store {cpu:.2f} s CPU; {len(full)} full collections: "
            + ", ".join(f"{ms:.0f}" for ms in full) + " ms of CPU each")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=20_000)
    parser.add_argument("--mode", choices=["plain", "frozen"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        print(measure(args.alerts, freeze=args.mode == "frozen"))
        return 0
    print(f"{args.alerts:,} alerts, load average {os.getloadavg()[0]:.2f}")
    for mode in ("plain", "frozen"):
        subprocess.run([sys.executable, __file__, "--alerts", str(args.alerts), "--mode", mode], check=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
