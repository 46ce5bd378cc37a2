"""Review risk's storage on SQLite and on a real PostgreSQL: a head queued once and claimed by one
replica however many race; past causes from a responder's verdict and from a confident suspect
whose revert was merged, each with its change's files, within the lookback only."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.adapters.storage import migrate
from bot.adapters.storage.engine import create_engine
from bot.adapters.storage.store import SqlStore, SqlTransaction
from bot.adapters.storage.store_reviews import SqlReviews
from bot.domain.actions import Action, ActionKind, ActionState
from bot.domain.changes import AppliedSource, Change, Effect, FileChange
from bot.domain.models import Actor, Incident, IncidentStatus
from bot.domain.review_checks import ReviewItem
from bot.domain.review_risk import CauseSource
from bot.domain.suspects import Ranking, RankingStatus, Suspect
from bot.domain.verdicts import Verdict, VerdictKind
from tests.integration.processes import Postgres
from tests.integration.test_postgres import race

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC).replace(microsecond=0)
ITEM = ReviewItem(repo="gitops", number=7, head_sha="a" * 40, base="main", forge="github")


@pytest.fixture(params=["sqlite", "postgresql"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[SqlStore]]:
    """Two stores on one freshly migrated database, as two replicas would have."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'backout.db'}"
    else:
        postgres: Postgres = request.getfixturevalue("postgres")
        url = postgres.url
        admin = create_engine(url)
        with admin.begin() as conn:
            conn.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        admin.dispose()
    engines = [create_engine(url), create_engine(url)]
    migrate.upgrade(engines[0])
    yield [SqlStore(engine) for engine in engines]
    for engine in engines:
        engine.dispose()


def test_a_head_is_queued_once_and_claimed_by_one_replica(stores: list[SqlStore]) -> None:
    """Eight deliveries of one head at once: one row, one claim; done, it is no longer due."""
    added: list[bool] = []
    race(stores, lambda store: added.append(SqlReviews(store).add(ITEM, at=NOW)))
    assert added.count(True) == 1
    claims: list[bool] = []
    race(stores, lambda store: claims.append(SqlReviews(store).claim(ITEM, now=NOW, until=NOW + timedelta(minutes=2))))
    assert claims.count(True) == 1
    reviews = SqlReviews(stores[0])
    assert reviews.due(now=NOW) == []
    assert [i.head_sha for i in reviews.due(now=NOW + timedelta(minutes=3))] == [ITEM.head_sha]  # its holder died
    reviews.finish(ITEM, at=NOW, flagged=True, state="warn", comment_id=12)
    assert reviews.due(now=NOW + timedelta(minutes=3)) == []
    posted = reviews.posted("gitops", 7)
    assert (posted.comment_id, posted.flagged) == (12, True)
    with stores[0].engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM review_checks")).scalar() == 1


def test_a_head_force_pushed_back_to_is_queued_again_once_however_many_replicas_race(stores: list[SqlStore]) -> None:
    """A assessed, then B, then A again (a force-push back): eight deliveries of A queue it once more;
    a closed request's heads are dropped, and queued again when pushed after a reopen."""
    reviews = SqlReviews(stores[0])
    later = ReviewItem(repo="gitops", number=7, head_sha="b" * 40, base="main", forge="github")
    assert reviews.add(ITEM, at=NOW)
    reviews.finish(ITEM, at=NOW, flagged=True, state="warn", comment_id=12)
    assert not reviews.add(ITEM, at=NOW + timedelta(seconds=1))  # a redelivery of the head it is
    assert reviews.add(later, at=NOW + timedelta(seconds=2))
    reviews.finish(later, at=NOW + timedelta(seconds=2), flagged=True, state="warn", comment_id=12)
    added: list[bool] = []
    race(stores, lambda store: added.append(SqlReviews(store).add(ITEM, at=NOW + timedelta(seconds=3))))
    assert added.count(True) == 1
    assert [i.head_sha for i in reviews.due(now=NOW + timedelta(seconds=3))] == [ITEM.head_sha]
    assert reviews.drop("gitops", 7, at=NOW + timedelta(seconds=4)) == 1
    assert reviews.due(now=NOW + timedelta(seconds=4)) == []
    assert reviews.posted("gitops", 7).flagged is True  # the dropped head is no assessment: B's stands
    assert reviews.add(ITEM, at=NOW + timedelta(seconds=5))  # reopened
    assert reviews.drop("gitops", 7, at=NOW + timedelta(seconds=6)) == 1


def test_one_head_of_a_request_is_held_at_a_time_however_many_replicas_race(stores: list[SqlStore]) -> None:
    """Eight replicas claim four heads of one request at once: one holds a head (only it may post the
    request's comment); the others are due again, and claimable once it is done. A head backing off
    after a failure holds nothing up."""
    heads = [ReviewItem(repo="gitops", number=9, head_sha=c * 40, base="main", forge="github") for c in "1234"]
    reviews = SqlReviews(stores[0])
    for head in heads:
        assert reviews.add(head, at=NOW)
    claims: list[bool] = []
    race(stores, lambda store: claims.extend(
        SqlReviews(store).claim(head, now=NOW, until=NOW + timedelta(minutes=2)) for head in heads))
    assert claims.count(True) == 1
    [held] = [head for head in heads if head not in reviews.due(now=NOW)]
    reviews.retry_later(held, until=NOW + timedelta(hours=1), error="UpstreamError: host down")
    others = [head for head in heads if head != held]
    assert reviews.claim(others[0], now=NOW, until=NOW + timedelta(minutes=2))  # a backoff holds nothing
    assert not reviews.claim(others[1], now=NOW, until=NOW + timedelta(minutes=2))
    reviews.finish(others[0], at=NOW, flagged=True, state="warn", comment_id=5)
    assert reviews.claim(others[1], now=NOW, until=NOW + timedelta(minutes=2))


def change(sha: str, path: str, at: datetime) -> Change:
    return Change(repo="gitops", sha=sha, parents=(), author="dev <dev@example.com>", committed_at=at,
                  subject=f"change {sha[:7]}", files=(FileChange(path=path, status="M", effects=(Effect.IMAGE,)),),
                  additions=1, deletions=1, image_bump=True, applied_at=at, applied_source=AppliedSource.COMMIT_TIME)


def incident(tx: SqlTransaction, number: int, started: datetime) -> int:
    saved = tx.incidents.add(Incident(group_key=f"g{number}", title="t", service="checkout", severity="critical",
                                      playbook=None,
                                      status=IncidentStatus.RESOLVED, started_at=started, opened_at=started))
    assert saved.id is not None
    return saved.id


def test_past_causes_come_from_verdicts_and_merged_reverts_of_confident_suspects(stores: list[SqlStore]) -> None:
    """Three incidents: a culprit named, a confident suspect reverted, and one too old for the lookback."""
    confirmed, reverted, old = "b" * 40, "c" * 40, "d" * 40
    store = stores[0]

    def seed(tx: SqlTransaction) -> None:
        tx.changes.add_many([change(confirmed, "apps/checkout/deploy.yaml", NOW - timedelta(days=3)),
                             change(reverted, "apps/checkout/values.yaml", NOW - timedelta(days=2)),
                             change(old, "apps/checkout/deploy.yaml", NOW - timedelta(days=200))])
        first = incident(tx, 1, NOW - timedelta(days=3))
        tx.verdicts.add(Verdict(incident_id=first, kind=VerdictKind.CULPRIT, repo="gitops", sha=confirmed,
                                actor=Actor.USER, at=NOW - timedelta(days=3)))
        second = incident(tx, 2, NOW - timedelta(days=2))
        suspect = Suspect(repo="gitops", sha=reverted, subject="s", author="a", applied_at=NOW - timedelta(days=2),
                          applied_source=AppliedSource.COMMIT_TIME, score=0.9, reasons=("r",))
        tx.rankings.save(second, Ranking(status=RankingStatus.RANKED, confident=True, reason="r", suspects=(suspect,)))
        tx.actions.add(Action(incident_id=second, kind=ActionKind.REVERT, repo="gitops", commit_sha=reverted,
                              state=ActionState.MERGED, branch=f"backout/INC-{second}/revert-{reverted[:7]}",
                              created_at=NOW, updated_at=NOW))
        third = incident(tx, 3, NOW - timedelta(days=200))
        tx.verdicts.add(Verdict(incident_id=third, kind=VerdictKind.CULPRIT, repo="gitops", sha=old,
                                actor=Actor.USER, at=NOW - timedelta(days=200)))

    store.run(seed)
    causes = SqlReviews(stores[1]).causes("gitops", since=NOW - timedelta(days=90))
    assert [(c.sha, c.source, c.service) for c in causes] == [(confirmed, CauseSource.VERDICT, "checkout"),
                                                              (reverted, CauseSource.REVERTED, "checkout")]
    assert causes[1].files[0].path == "apps/checkout/values.yaml"
    assert SqlReviews(stores[1]).causes("platform", since=NOW - timedelta(days=90)) == []
