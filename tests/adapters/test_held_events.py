"""A Flux event answered 202 while its revision is fetched is stored first (real git over loopback
HTTP, a host that holds requests): a process killed before the fetch lands loses nothing, the next
one records the event once the host answers, and one whose revision never comes is recorded anyway
after `git.hold_for`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.entrypoints.held_events import held_events_job
from bot.entrypoints.scheduler import refresh_job
from tests.adapters.held import Site, later, make_site
from tests.adapters.test_controllers import DEPLOY, flux_body

STALLED = {"fetch_wait": "0s", "connect_timeout": "60s", "stall_timeout": "60s"}
# After the restart: a host that holds a request is given up after 1 s, and asked again at once.
QUICK = {"fetch_wait": "0s", "stall_timeout": "1s", "retry_after": "0s"}
HELD = 'backout_outbox_pending{queue="held_controller_events"}'


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    yield from make_site(tmp_path, f"sqlite:///{tmp_path / 'backout.db'}")


def test_an_event_answered_202_before_a_crash_is_recorded_after_the_restart_once_the_host_answers(
        site: Site) -> None:
    """The process dies after answering 202 (its git-wait work never runs); the next one, on the
    same database, keeps the event held while the host is silent and records it, once, after."""
    now = later(site.remote.clock, 5)
    first = site.replica("one", now=now, dies=True, **STALLED)
    refresh_job(first.app.ctx)
    site.host.stall()
    bump = site.remote.commit("checkout 2.0", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="2.0", replicas=2)})
    answer = first.post_flux(flux_body("kustomization-succeeded", sha=bump, at=later(site.remote.clock, 1)))
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "fetching"
    site.drop(first)

    second = site.replica("two", now=later(now, 1), **QUICK)
    held_events_job(second.app.ctx)  # the host still holds every request
    assert second.held() == 1
    assert second.metric(HELD) == f"{HELD} 1.0"
    assert not site.applied_by_flux(second, bump)

    site.host.answer()
    held_events_job(second.app.ctx)
    assert site.applied_by_flux(second, bump)
    assert second.held() == 0
    assert second.metric(HELD) == f"{HELD} 0.0"
    held_events_job(second.app.ctx)
    assert 'outcome="applied"} 1.0' in second.metric("backout_controller_events_total")


def test_an_event_whose_revision_never_comes_is_recorded_anyway_after_hold_for(site: Site) -> None:
    """A failed reconciliation of a revision the silent host never delivers: held for `git.hold_for`,
    then recorded with its revision unknown to the mirror, so its incident still opens."""
    now = later(site.remote.clock, 5)
    first = site.replica("one", now=now, dies=True, **STALLED)
    refresh_job(first.app.ctx)
    site.host.stall()
    missing = "ab" * 20
    body = flux_body("kustomization-health-failed", sha=missing, at=later(site.remote.clock, 1))
    assert first.post_flux(body).json()["status"] == "fetching"
    site.drop(first)

    second = site.replica("two", now=later(now, 30), **QUICK, hold_for="1h")
    held_events_job(second.app.ctx)
    assert second.held() == 1
    assert second.client.get("/api/incidents").json()["incidents"] == []

    second.clock.now = now + timedelta(hours=1, minutes=1)
    held_events_job(second.app.ctx)
    assert second.held() == 0
    failures = second.app.ctx.store.run(lambda tx: tx.gitops.open_failure("flux:Kustomization/flux-system/apps"))
    assert failures is not None
    assert failures.revision.endswith(missing)
    [incident] = second.client.get("/api/incidents").json()["incidents"]
    assert incident["service"] == "checkout"
