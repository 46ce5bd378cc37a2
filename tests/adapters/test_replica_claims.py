"""A restarted process frees what its previous run held (its name kept on disk, an epoch per
start); other replicas' claims and claims of no replica wait for their lease."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.adapters.replica import take_name
from bot.adapters.storage import migrate
from bot.adapters.storage.store import SqlStore
from bot.adapters.storage.store_reviews import SqlReviews
from bot.config import load_playbooks
from bot.domain.incidents import IncidentPolicy
from bot.domain.models import AlertStatus, Delivery, ReceivedAlert
from bot.domain.review_checks import ReviewItem
from bot.services.ingest import ingest_delivery
from tests.conftest import PLAYBOOKS
from tests.integration.processes import Postgres
from tests.stores import store_maker

NOW = datetime(2026, 11, 21, 22, 30, tzinfo=UTC)
LEASE = timedelta(minutes=10)


def open_incidents(store: SqlStore, count: int) -> None:
    """`count` incidents, each with its investigation pending and its message queued."""
    for n in range(count):
        alert = ReceivedAlert(fingerprint=f"{n:016x}", starts_at=NOW, ends_at=None, status=AlertStatus.FIRING,
                              labels={"alertname": "Down", "service": f"svc{n}"}, annotations={})
        ingest_delivery(store=store, playbooks=load_playbooks(PLAYBOOKS), policy=IncidentPolicy(), now=NOW,
                        delivery=Delivery(group_key=f"g{n}", status=AlertStatus.FIRING, alerts=(alert,)))
        store.run(lambda tx, n=n: tx.chat.put_summary(n + 1, "#incidents", {}, at=NOW))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=[pytest.mark.postgres, pytest.mark.integration])])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], SqlStore]]:
    """Stores on one fresh database (each with its own engine, as processes have), disposed after."""
    server = Postgres().start() if request.param == "postgresql" else None
    url = server.url if server else f"sqlite:///{tmp_path / 'db.sqlite'}"
    try:
        with store_maker(url) as make:
            migrate.upgrade(make().engine)
            yield make
    finally:
        if server:
            server.stop()


def claim_everything(store: SqlStore, count: int) -> None:
    for n in range(1, count + 1):
        assert store.run(lambda tx, n=n: tx.follow_ups.claim(n, "investigate", now=NOW, until=NOW + LEASE))
    assert len(store.run(lambda tx: tx.chat.claim_summaries(NOW, until=NOW + LEASE, limit=count))) == count


def test_a_restart_frees_what_its_previous_run_held_and_nothing_else(stores: Callable[[], SqlStore]) -> None:
    """Run 1 of `a` holds two investigations and two summaries, `b` and a process of no name one
    of each; `a` dies and starts again (epoch 2): its own are free at once, the others still held."""
    first = stores()
    assert first.start_replica("a", at=NOW)[0].epoch == 1
    open_incidents(first, 4)
    claim_everything(first, 2)
    other = stores()
    other.start_replica("b", at=NOW)
    assert other.run(lambda tx: tx.follow_ups.claim(3, "investigate", now=NOW, until=NOW + LEASE))
    [held_by_b] = other.run(lambda tx: tx.chat.claim_summaries(NOW, until=NOW + LEASE, limit=1))
    nameless = stores()  # a CLI command: its claims only lapse
    assert nameless.run(lambda tx: tx.follow_ups.claim(4, "investigate", now=NOW, until=NOW + LEASE))
    nameless.run(lambda tx: tx.chat.claim_summaries(NOW, until=NOW + LEASE, limit=1))

    again = stores()  # `a` killed (-9) and started again, a minute later
    later = NOW + timedelta(minutes=1)
    holder, released = again.start_replica("a", at=later)
    assert (holder.epoch, released.follow_ups, released.summaries) == (2, 2, 2)
    due = again.run(lambda tx: tx.follow_ups.due(now=later))
    assert sorted(item.incident_id for item in due) == [1, 2]
    taken = again.run(lambda tx: tx.follow_ups.claim_many([1, 2, 3, 4], "investigate", now=later,
                                                          until=later + LEASE))
    assert taken == [1, 2], "a batch's claim takes the freed work, not another replica's or a CLI's"
    summaries = again.run(lambda tx: tx.chat.claim_summaries(later, until=later + LEASE))
    assert sorted(s.incident_id for s in summaries) == [1, 2]
    assert {s.attempts for s in summaries} == {1}, "taken before: delivery looks for a post that went out"
    assert held_by_b.incident_id == 3
    with again.engine.connect() as conn:
        holders = conn.execute(sa.text("SELECT incident_id, claimed_by, claimed_epoch FROM chat_outbox "
                                       "WHERE state = 'sending' ORDER BY incident_id")).all()
    assert [tuple(row) for row in holders] == [(1, "a", 2), (2, "a", 2), (3, "b", 1), (4, None, None)]


def test_the_name_is_kept_on_disk_and_never_shared_by_two_live_processes(tmp_path: Path) -> None:
    """The same folder gives the same name after the holder exits; while it lives, another process
    gets a name of its own, for its run only."""
    first = take_name(tmp_path / "mirrors")
    assert first.kept
    second = take_name(tmp_path / "mirrors")
    assert not second.kept
    assert second.name != first.name
    first.close()
    again = take_name(tmp_path / "mirrors")
    assert (again.name, again.kept) == (first.name, True)
    again.close()


def test_a_folder_that_cannot_be_made_still_gives_a_name(tmp_path: Path) -> None:
    """No folder to keep it in (here a file stands in the way): a name for this run only."""
    (tmp_path / "taken").write_text("")
    name = take_name(tmp_path / "taken" / "mirrors")
    assert not name.kept
    assert name.name


def test_a_restart_frees_its_previous_runs_review_heads(stores: Callable[[], SqlStore]) -> None:
    """Run 1 of `a` claimed a review head and died: run 2 may assess it at once; `b`'s claim waits its lease."""
    mine = ReviewItem(repo="gitops", number=1, head_sha="a" * 40, base="main", forge="github")
    theirs = ReviewItem(repo="gitops", number=2, head_sha="b" * 40, base="main", forge="github")
    first, other = stores(), stores()
    first.start_replica("a", at=NOW)
    other.start_replica("b", at=NOW)
    for store, item in ((first, mine), (other, theirs)):
        assert SqlReviews(store).add(item, at=NOW)
        assert SqlReviews(store).claim(item, now=NOW, until=NOW + LEASE)
    again = stores()
    later = NOW + timedelta(minutes=1)
    _, released = again.start_replica("a", at=later)
    assert [i.head_sha for i in SqlReviews(again).due(now=later)] == [mine.head_sha]
    assert released.reviews == 1
