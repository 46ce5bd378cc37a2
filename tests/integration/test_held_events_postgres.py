"""Held controller events on PostgreSQL: replicas sweeping together record a held event once, and
a replica killed while recording one frees its claim when it starts again."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot import bootstrap
from bot.adapters.storage import tables as t
from bot.entrypoints.held_events import held_events_job
from bot.entrypoints.scheduler import refresh_job
from bot.services.held_events import LEASE
from tests.adapters.held import Replica, Site, later, make_site
from tests.adapters.test_controllers import DEPLOY, flux_body
from tests.adapters.test_held_events import QUICK, STALLED
from tests.integration.processes import Postgres
from tests.integration.test_replicas import fresh_database

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


@pytest.fixture
def site(tmp_path: Path, postgres: Postgres) -> Iterator[Site]:
    fresh_database(postgres).dispose()
    yield from make_site(tmp_path, postgres.url)


def counted(replica: Replica, outcome: str) -> float:
    """The controller events this replica counted with this outcome (its /metrics)."""
    line = f'backout_controller_events_total{{controller="flux",outcome="{outcome}"}}'
    found = [text for text in replica.metric(line).splitlines() if text.startswith(line)]
    return float(found[0].rsplit(" ", 1)[1]) if found else 0.0


def test_two_replicas_sweeping_together_record_a_held_failure_once(site: Site) -> None:
    """Replica one answers 202 for a failed reconciliation and dies; when the host answers, two
    and three sweep at the same moment: one failure recorded, one incident, nothing held."""
    now = later(site.remote.clock, 5)
    first = site.replica("one", now=now, dies=True, **STALLED)
    refresh_job(first.app.ctx)
    site.host.stall()
    bad = site.remote.commit("checkout 3.0", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="3.0", replicas=2)})
    body = flux_body("kustomization-health-failed", sha=bad, at=later(site.remote.clock, 1))
    assert first.post_flux(body).json()["status"] == "fetching"
    site.drop(first)

    site.host.answer()
    others = [site.replica(name, now=later(now, 2), **QUICK) for name in ("two", "three")]
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda replica: held_events_job(replica.app.ctx), others))

    with others[0].app.engine.connect() as conn:  # type: ignore[union-attr]
        failures = conn.execute(sa.select(t.reconcile_failures.c.revision)).scalars().all()
    assert failures == [bad]
    assert sum(counted(replica, "failed") for replica in others) == 1
    assert sum(counted(replica, "duplicate") for replica in others) == 0
    assert others[0].held() == 0
    assert len(others[1].client.get("/api/incidents").json()["incidents"]) == 1


@pytest.mark.parametrize("sweeper", ["itself", "the leader"])
def test_a_replica_killed_while_recording_a_held_event_frees_it_when_it_starts_again(
        site: Site, sweeper: str) -> None:
    """Replica one answers 202, claims the held event to record it (as its git-wait thread does when
    the fetch lands) and is killed. Started again a minute later (its name's next epoch), its
    earlier claim is freed at once: the next sweep, its own or the leader's on replica two, records
    the event now, not when the 5-minute lease runs out."""
    now = later(site.remote.clock, 5)
    first = site.replica("one", now=now, dies=True, **STALLED)
    bootstrap.start_replica(first.app)
    refresh_job(first.app.ctx)
    site.host.stall()
    bump = site.remote.commit("checkout 2.0", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="2.0", replicas=2)})
    body = flux_body("kustomization-succeeded", sha=bump, at=later(site.remote.clock, 1))
    assert first.post_flux(body).json()["status"] == "fetching"
    claimed = first.app.ctx.store.run(lambda tx: tx.held_events.claim(now=now, until=now + LEASE))
    assert len(claimed) == 1
    site.drop(first)  # killed while recording: the claim stays in the database
    site.host.answer()

    restarted = site.replica("one", now=later(now, 1), **QUICK)
    bootstrap.start_replica(restarted.app)
    sweeping = restarted if sweeper == "itself" else site.replica("two", now=later(now, 1), **QUICK)
    held_events_job(sweeping.app.ctx)
    assert site.applied_by_flux(sweeping, bump)
    assert sweeping.held() == 0
