"""Review risk's storage: the queue of request heads (claimed like follow-up work) and the past
causes, read in one bounded query each from the verdicts, rankings and actions."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bot.adapters.storage import tables as t
from bot.adapters.storage.replicas import stamp
from bot.adapters.storage.store import SqlStore, SqlTransaction
from bot.adapters.storage.store_changes import SqlChangeRepository, _insert
from bot.adapters.storage.store_work import _verdict
from bot.domain.actions import ActionKind, ActionState
from bot.domain.review_checks import PostedReview, ReviewItem
from bot.domain.review_risk import CauseSource, PastCause
from bot.domain.verdicts import VerdictKind, finding

REQUEST_LOCK = 0x5249534B  # "RISK": the advisory-lock class of a request's claims (apart from the leader's key)
DROPPED = "dropped"  # the state of a head whose request was closed before it was assessed
MAX_INCIDENTS = 5_000  # the latest incidents within the lookback that a past cause is looked for in


class SqlReviews:
    """Implements the ReviewQueue and PastCauses ports on the SqlStore."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store

    # ---- the queue ----
    def add(self, item: ReviewItem, *, at: datetime) -> bool:
        def work(tx: SqlTransaction) -> bool:
            statement = _insert(tx.conn)(t.review_checks).values(
                repo=item.repo, number=item.number, head_sha=item.head_sha, base=item.base, forge=item.forge,
                created_at=at, attempts=0)
            # RETURNING, not rowcount: the drivers do not all say 0 for a row left alone.
            done = tx.conn.execute(statement.on_conflict_do_nothing(index_elements=["repo", "number", "head_sha"])
                                   .returning(t.review_checks.c.id))
            return done.first() is not None or _requeued(tx.conn, item, at)

        return self._store.run(work)

    def drop(self, repo: str, number: int, *, at: datetime) -> int:
        c = t.review_checks.c
        return self._store.run(lambda tx: len(tx.conn.execute(t.review_checks.update().where(
            c.repo == repo, c.number == number, c.done_at.is_(None),
        ).values(done_at=at, claimed_until=None, state=DROPPED).returning(c.id)).all()))

    def due(self, *, now: datetime, limit: int = 50) -> list[ReviewItem]:
        c = t.review_checks.c
        query = sa.select(t.review_checks).where(
            c.done_at.is_(None), sa.or_(c.claimed_until.is_(None), c.claimed_until < now)).order_by(c.id).limit(limit)
        return self._store.run(lambda tx: [_item(row) for row in tx.conn.execute(query).mappings()])

    def claim(self, item: ReviewItem, *, now: datetime, until: datetime) -> bool:
        """One head of a request held at a time, across workers and replicas: the request's one comment
        is then never made twice by two heads that both found none. A head backing off after a failure
        (last_error set) holds nothing up."""
        c, sibling = t.review_checks.c, t.review_checks.alias("sibling")
        running = sa.exists().where(sibling.c.repo == c.repo, sibling.c.number == c.number,
                                    sibling.c.head_sha != c.head_sha, sibling.c.done_at.is_(None),
                                    sibling.c.claimed_until >= now, sibling.c.last_error.is_(None))

        def work(tx: SqlTransaction) -> bool:
            if tx.conn.dialect.name == "postgresql":  # READ COMMITTED would let two claims both see none running
                tx.conn.execute(sa.select(sa.func.pg_advisory_xact_lock(REQUEST_LOCK, sa.func.hashtext(
                    f"{item.repo}#{item.number}"))))
            taken = tx.conn.execute(t.review_checks.update().where(
                *_key(item), c.done_at.is_(None), sa.or_(c.claimed_until.is_(None), c.claimed_until < now), ~running,
            ).values(claimed_until=until, attempts=c.attempts + 1, last_error=None, **stamp(self._store.holder)))
            return taken.rowcount == 1

        return self._store.run(work)

    def finish(self, item: ReviewItem, *, at: datetime, flagged: bool, state: str, comment_id: int | None) -> None:
        c = t.review_checks.c
        self._store.run(lambda tx: tx.conn.execute(t.review_checks.update().where(*_key(item), c.done_at.is_(None))
                                                   .values(done_at=at, flagged=flagged, state=state or None,
                                                           comment_id=comment_id, last_error=None)))

    def retry_later(self, item: ReviewItem, *, until: datetime, error: str) -> None:
        c = t.review_checks.c
        self._store.run(lambda tx: tx.conn.execute(t.review_checks.update().where(*_key(item), c.done_at.is_(None))
                                                   .values(claimed_until=until, last_error=error[:1000])))

    def backlog(self) -> int:
        c = t.review_checks.c
        query = sa.select(sa.func.count()).select_from(t.review_checks).where(c.done_at.is_(None))
        return int(self._store.read(lambda tx: tx.conn.execute(query).scalar_one()))

    def posted(self, repo: str, number: int) -> PostedReview:
        c = t.review_checks.c
        assessed = sa.or_(c.state.is_(None), c.state != DROPPED)
        query = (sa.select(c.comment_id, c.flagged).where(c.repo == repo, c.number == number, c.done_at.is_not(None),
                                                          assessed)
                 .order_by(c.done_at.desc(), c.id.desc()))

        def work(tx: SqlTransaction) -> PostedReview:
            rows = list(tx.conn.execute(query))
            comment = next((int(row.comment_id) for row in rows if row.comment_id is not None), None)
            return PostedReview(comment_id=comment, flagged=bool(rows and rows[0].flagged))

        return self._store.run(work)

    # ---- past causes ----
    def causes(self, repo: str, *, since: datetime) -> Sequence[PastCause]:
        return self._store.read(lambda tx: _causes(tx.conn, repo, since))


def _causes(conn: Connection, repo: str, since: datetime) -> list[PastCause]:
    i = t.incidents.c
    recent = sa.select(i.id, i.service, i.started_at).where(i.started_at >= since)
    incidents = {row.id: row for row in conn.execute(recent.order_by(i.id.desc()).limit(MAX_INCIDENTS))}
    if not incidents:
        return []
    ids = list(incidents)
    picked: dict[tuple[int, str], CauseSource] = {}
    for (incident_id, sha), source in [*_confirmed(conn, repo, ids), *_reverted(conn, repo, ids)]:
        picked.setdefault((incident_id, sha), source)  # a responder's word first
    changes = {c.sha: c for c in SqlChangeRepository(conn).get_many(repo, sorted({sha for _, sha in picked}))}
    return [PastCause(incident_id=incident_id, service=incidents[incident_id].service, repo=repo, sha=sha,
                      started_at=incidents[incident_id].started_at, files=changes[sha].files, source=source)
            for (incident_id, sha), source in sorted(picked.items()) if sha in changes]


def _confirmed(conn: Connection, repo: str, incident_ids: list[int]) -> list[tuple[tuple[int, str], CauseSource]]:
    """Responders' culprits on this repository, as their last word stands (verdicts.finding)."""
    v = t.verdicts.c
    by_incident: dict[int, list[Any]] = defaultdict(list)
    for start in range(0, len(incident_ids), 500):
        rows = conn.execute(sa.select(t.verdicts).where(v.incident_id.in_(incident_ids[start:start + 500]))
                            .order_by(v.id)).mappings()
        for row in rows:
            by_incident[row["incident_id"]].append(_verdict(row))
    found = []
    for incident_id, verdicts in by_incident.items():
        said = finding(verdicts)
        if said is None or said.culprit is None:
            continue
        on_repo = any(x.kind is VerdictKind.CULPRIT and x.sha == said.culprit and x.repo in (repo, None)
                      for x in verdicts)
        if on_repo:
            found.append(((incident_id, said.culprit), CauseSource.VERDICT))
    return found


def _reverted(conn: Connection, repo: str, incident_ids: list[int]) -> list[tuple[tuple[int, str], CauseSource]]:
    """Confident best suspects on this repository whose revert pull request was merged."""
    s, r, a = t.suspects.c, t.rankings.c, t.actions.c
    found = []
    for start in range(0, len(incident_ids), 500):
        query = (sa.select(s.incident_id, s.sha)
                 .join(t.rankings, r.incident_id == s.incident_id)
                 .join(t.actions, sa.and_(a.incident_id == s.incident_id, a.commit_sha == s.sha, a.repo == s.repo))
                 .where(s.incident_id.in_(incident_ids[start:start + 500]), s.repo == repo, s.rank == 1,
                        r.confident.is_(True), a.kind == ActionKind.REVERT.value,
                        a.state == ActionState.MERGED.value))
        found += [((row.incident_id, row.sha), CauseSource.REVERTED) for row in conn.execute(query)]
    return found


def _requeued(conn: Connection, item: ReviewItem, at: datetime) -> bool:
    """A head assessed before and replaced since (a force-push back to it), or dropped when its request
    closed (pushed again after a reopen), is queued again: once however many deliveries and replicas
    say so (the first clears done_at; the others' conditions no longer hold)."""
    c, later = t.review_checks.c, t.review_checks.alias("later")
    replaced = sa.exists().where(later.c.repo == c.repo, later.c.number == c.number,
                                 later.c.head_sha != c.head_sha, later.c.created_at > c.created_at)
    again = sa.or_(replaced, c.state == DROPPED)  # or dropped when its request closed, and reopened since
    done = conn.execute(t.review_checks.update().where(*_key(item), c.done_at.is_not(None), again).values(
        done_at=None, claimed_until=None, attempts=0, last_error=None, created_at=at).returning(c.id))
    return done.first() is not None


def _key(item: ReviewItem) -> tuple[Any, ...]:
    c = t.review_checks.c
    return (c.repo == item.repo, c.number == item.number, c.head_sha == item.head_sha)


def _item(row: Any) -> ReviewItem:
    return ReviewItem(repo=row["repo"], number=row["number"], head_sha=row["head_sha"], base=row["base"],
                      forge=row["forge"], attempts=row["attempts"])
