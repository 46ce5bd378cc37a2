"""Held controller events: what storing each 202 costs, and what recording a held storm costs.

N Flux events for one revision reach Backout (SQLite, in process) while its Git host holds every
request, so each is answered 202 "fetching" and stored. Then the host answers and the events are
recorded, either by the process that answered (its git-wait threads) or, after it died, by the next
one's sweep. Printed: database transactions and CPU time per event (figures load hardly moves), the
fetches started, and the wall time (which it does).
Usage: python bench/held_events.py [--events 200]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.entrypoints.held_events import held_events_job  # noqa: E402
from bot.entrypoints.scheduler import refresh_job  # noqa: E402
from tests.adapters.held import Replica, Site, make_site  # noqa: E402
from tests.adapters.test_controllers import DEPLOY, flux_body  # noqa: E402
from tests.fakes.git_host import wait_until  # noqa: E402

STALLED = {"fetch_wait": "0s", "connect_timeout": "60s", "stall_timeout": "60s"}


class Counted:
    """CPU seconds of this process and transactions begun on an engine, since `start`."""

    def __init__(self, engine: sa.Engine) -> None:
        self.transactions = 0
        sa.event.listen(engine, "begin", self._begun)
        self.cpu = time.process_time()
        self.wall = time.perf_counter()

    def _begun(self, _conn: object) -> None:
        self.transactions += 1

    def line(self, what: str, events: int, fetches: int) -> str:
        cpu = time.process_time() - self.cpu
        return (f"{what}: {self.transactions / events:.2f} transactions/event, {cpu / events * 1000:.2f} ms CPU/event, "
                f"{fetches} fetch(es) started, {time.perf_counter() - self.wall:.2f} s wall")


def storm(site: Site, replica: Replica, events: int) -> str:
    """Post the events for one new revision while the host holds requests; the sha."""
    refresh_job(replica.app.ctx)
    site.host.stall()
    bump = site.remote.commit("checkout 2.0", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="2.0", replicas=2)})
    counted = Counted(replica.app.engine)  # type: ignore[arg-type]
    for n in range(events):
        at = site.remote.clock + timedelta(seconds=n)
        answer = replica.post_flux(flux_body("kustomization-succeeded", sha=bump, at=at))
        assert answer.json()["status"] == "fetching", answer.text
    print(counted.line("hold (the 202 path)", events, fetches=0))
    return bump


def fetches(replica: Replica) -> int:
    return int(replica.app.ctx.git.fetches.started)  # type: ignore[attr-defined]


def run(events: int, scenario: str, tmp: Path) -> None:
    print(f"-- {scenario}: {events} events")
    sites = make_site(tmp, f"sqlite:///{tmp / 'backout.db'}")
    site = next(sites)
    now = site.remote.clock + timedelta(minutes=5)
    try:
        first = site.replica("one", now=now, dies=scenario == "restart", **STALLED)
        storm(site, first, events)
        if scenario == "restart":
            site.drop(first)
            site.host.answer()
            second = site.replica("two", now=now + timedelta(minutes=1), fetch_wait="0s")
            counted, before = Counted(second.app.engine), fetches(second)  # type: ignore[arg-type]
            held_events_job(second.app.ctx)
            recorder: Replica = second
        else:
            counted, before = Counted(first.app.engine), fetches(first)  # type: ignore[arg-type]
            site.host.answer()
            recorder = first
        settled: Callable[[], bool] = lambda: recorder.held() == 0  # noqa: E731
        wait_until(settled, "every held event recorded", timeout=600)
        print(counted.line("record (after the fetch)", events, fetches=fetches(recorder) - before))
    finally:
        next(sites, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200)
    args = parser.parse_args()
    for scenario in ("alive", "restart"):
        with tempfile.TemporaryDirectory(prefix="backout-held-") as folder:
            run(args.events, scenario, Path(folder))


if __name__ == "__main__":
    main()
