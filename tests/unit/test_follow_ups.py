"""Follow-up work recorded with the delivery: claimed once, done once, retried after a failure."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest

from bot.adapters.console import RecordingNotifier
from bot.domain.incidents import IncidentPolicy
from bot.domain.models import AlertStatus, Delivery, ReceivedAlert
from bot.domain.playbooks import Playbook
from bot.domain.suspects import Ranking
from bot.services.follow_ups import RETRY_AFTER, FollowUpKind, FollowUpWork, follow_up, run_one, sweep
from bot.services.incidents import get_ranking
from bot.services.ingest import ingest_delivery
from bot.services.investigate import rerank_open_incidents
from tests.fakes.git import FakeGit
from tests.fakes.store import InMemoryStore

T = TypeVar("T")
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
PLAYBOOKS = [Playbook.model_validate({"name": "checkout", "service": "checkout", "match": {"service": "checkout"},
                                      "repos": [{"repo": "gitops", "paths": ["apps/checkout/**"]}]})]


def opened(store: InMemoryStore, status: AlertStatus = AlertStatus.FIRING) -> None:
    alert = ReceivedAlert(fingerprint="f", starts_at=NOW, ends_at=None if status is AlertStatus.FIRING else NOW,
                          status=status, labels={"alertname": "Errors", "service": "checkout"}, annotations={})
    ingest_delivery(store=store, delivery=Delivery(group_key="g", status=status, alerts=(alert,)),
                    playbooks=PLAYBOOKS, policy=IncidentPolicy(), now=NOW)


def pending(store: InMemoryStore, count: int) -> None:
    """`count` incidents opened by distinct groups, their investigations pending (a crash's backlog)."""
    for n in range(count):
        alert = ReceivedAlert(fingerprint=f"{n:016x}", starts_at=NOW, ends_at=None, status=AlertStatus.FIRING,
                              labels={"alertname": f"Errors{n}", "service": "checkout"}, annotations={})
        ingest_delivery(store=store, delivery=Delivery(group_key=f"g{n}", status=AlertStatus.FIRING, alerts=(alert,)),
                        playbooks=PLAYBOOKS, policy=IncidentPolicy(), now=NOW)


def work(store: InMemoryStore, git: FakeGit | None = None) -> tuple[FollowUpWork, RecordingNotifier]:
    notes = RecordingNotifier()
    return FollowUpWork(store=store, git=git or FakeGit(), notifier=notes, playbooks=PLAYBOOKS,
                        import_window=timedelta(days=7)), notes


def test_the_delivery_records_the_work_and_running_it_once_finishes_it() -> None:
    """Opened: investigate pending in the same transaction; run once: ranked, announced, done."""
    store = InMemoryStore()
    opened(store)
    assert [f.kind for f in store.run(lambda tx: tx.follow_ups.due(now=NOW))] == ["investigate"]
    job, notes = work(store)
    assert follow_up(job, opened=[1], resolved=[], now=NOW) == 1
    assert get_ranking(store=store, incident_id=1).status.value == "ranked"
    assert [n.kind for n in notes.notices] == ["incident.opened"]
    assert follow_up(job, opened=[1], resolved=[], now=NOW) == 0, "done work is not done again"
    assert sweep(job, clock=lambda: NOW) == 0


def test_work_held_by_another_runner_is_left_to_it_until_its_claim_runs_out() -> None:
    """A claim holds for the lease; after it, the sweep takes the work over."""
    store = InMemoryStore()
    opened(store)
    store.run(lambda tx: tx.follow_ups.claim(1, "investigate", now=NOW, until=NOW + timedelta(minutes=5)))
    job, notes = work(store)
    assert sweep(job, clock=lambda: NOW + timedelta(minutes=1)) == 0
    assert sweep(job, clock=lambda: NOW + timedelta(minutes=6)) == 1
    assert [n.kind for n in notes.notices] == ["incident.opened"]


def test_a_failure_is_retried_later_not_lost() -> None:
    """The investigation raises: the work stays pending, due again after RETRY_AFTER."""
    store = InMemoryStore()
    opened(store)

    class BrokenGit(FakeGit):
        def refresh(self, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
            raise RuntimeError("disk full")

    job, _ = work(store, BrokenGit())
    assert run_one(job, incident_id=1, kind=FollowUpKind.INVESTIGATE, now=NOW) is False
    assert sweep(job, clock=lambda: NOW + timedelta(seconds=1)) == 0
    fixed, notes = work(store)
    assert sweep(fixed, clock=lambda: NOW + RETRY_AFTER + timedelta(seconds=1)) == 1
    assert [n.kind for n in notes.notices] == ["incident.opened"]


@pytest.mark.parametrize("status", [AlertStatus.RESOLVED])
def test_a_resolution_is_announced_through_the_same_work(status: AlertStatus) -> None:
    """Resolved by a delivery: announce_resolved is recorded and announced once."""
    store = InMemoryStore()
    opened(store)
    opened(store, status)
    kinds = sorted(f.kind for f in store.run(lambda tx: tx.follow_ups.due(now=NOW)))
    assert kinds == ["announce_resolved", "investigate"]
    job, notes = work(store)
    assert sweep(job, clock=lambda: NOW) == 2
    assert sorted(n.kind for n in notes.notices) == ["incident.opened", "incident.resolved"]


@pytest.mark.parametrize("workers", [1, 4])
def test_a_sweep_runs_the_whole_backlog_and_fetches_each_repository_once(workers: int) -> None:
    """60 incidents left pending by a crash: one sweep ranks and announces them all (each once, with
    one worker or several), batch after batch, and fetches their playbook's repository once a
    batch, not once an incident."""
    store = InMemoryStore()
    pending(store, 60)
    git = FakeGit()
    job, notes = work(store, git)
    job = dataclasses.replace(job, workers=workers)
    assert sweep(job, clock=lambda: NOW, batch=25) == 60
    assert store.run(lambda tx: tx.follow_ups.backlog()) == 0
    assert {get_ranking(store=store, incident_id=n).status.value for n in range(1, 61)} == {"ranked"}
    assert sorted(n.incident_id for n in notes.notices) == list(range(1, 61))
    assert git.refreshes == 3  # batches of 25, 25 and 10


def test_a_sweep_stops_when_told() -> None:
    """A replica that stops leading mid-sweep leaves the rest to the new leader."""
    store = InMemoryStore()
    opened(store)
    job, notes = work(store)
    assert sweep(job, clock=lambda: NOW, keep_going=lambda: False) == 0
    assert notes.notices == []


def test_new_changes_rank_again_only_what_was_ranked_before() -> None:
    """New commits after a restart: the incidents whose investigation is still pending are left to
    it (ranking them here too doubled the work of a crash's backlog); ranked ones are ranked again."""
    store = InMemoryStore()
    opened(store)
    alert = ReceivedAlert(fingerprint="g", starts_at=NOW, ends_at=None, status=AlertStatus.FIRING,
                          labels={"alertname": "Latency", "service": "checkout"}, annotations={})
    ingest_delivery(store=store, delivery=Delivery(group_key="h", status=AlertStatus.FIRING, alerts=(alert,)),
                    playbooks=PLAYBOOKS, policy=IncidentPolicy(), now=NOW)
    job, _ = work(store)
    assert run_one(job, incident_id=1, kind=FollowUpKind.INVESTIGATE, now=NOW)
    reranked = rerank_open_incidents(store=store, notifier=RecordingNotifier(), playbooks=PLAYBOOKS,
                                     repos=["gitops"], now=NOW + timedelta(minutes=1))
    assert reranked == 1
    assert get_ranking(store=store, incident_id=2).status.value == "pending", "left to its investigation"


class FailsFirstBatch(InMemoryStore):
    """A store whose first unit of work saving several rankings at once (a batch's) fails, as a
    bad row would: the whole unit is rolled back."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = 0

    def run(self, work: Callable[[Any], T]) -> T:
        def watched(tx: Any) -> T:
            save_many = tx.rankings.save_many

            def failing(rankings: dict[int, Ranking]) -> None:
                if not self.failed and len(rankings) > 1:
                    self.failed += 1
                    raise RuntimeError("disk full")
                save_many(rankings)

            tx.rankings.save_many = failing
            return work(tx)

        return super().run(watched)


def test_a_batch_that_fails_is_rolled_back_whole_and_run_one_by_one() -> None:
    """A batch's transaction fails: nothing of it is kept, each incident is then investigated on
    its own, and every one is ranked and announced once."""
    store = FailsFirstBatch()
    pending(store, 5)
    job, notes = work(store)
    assert sweep(job, clock=lambda: NOW) == 5
    assert store.failed == 1, "the batch was tried, and failed"
    assert {get_ranking(store=store, incident_id=n).status.value for n in range(1, 6)} == {"ranked"}
    assert sorted(n.incident_id for n in notes.notices) == [1, 2, 3, 4, 5]
