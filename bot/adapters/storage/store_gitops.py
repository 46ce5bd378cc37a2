"""The GitOps repository: controller events once each, objects' applied revisions, failed
reconciliations and image builds (the storage port, continued)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bot.adapters.storage import tables as t
from bot.adapters.storage.store_changes import _insert, _upsert
from bot.domain.gitops import AppliedRevision, ControllerEvent, Failure, ImageBuild, ObjectState

CHUNK = 500  # keys in one IN (...): well under SQLite's limit on bound parameters


class SqlGitOpsRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def seen(self, keys: Sequence[str]) -> set[str]:
        c = t.controller_events.c
        return {row[0] for i in range(0, len(keys), CHUNK)
                for row in self._conn.execute(sa.select(c.key).where(c.key.in_(list(keys[i:i + CHUNK]))))}

    def record(self, events: Sequence[ControllerEvent], *, now: datetime) -> set[str]:
        if not events:
            return set()
        statement = _insert(self._conn)(t.controller_events).on_conflict_do_nothing(index_elements=["key"])
        rows = [{"key": e.key, "object_id": e.object_id[:600], "outcome": e.outcome.value, "reason": e.reason[:100],
                 "revision": e.revision[:300], "at": e.at, "received_at": now} for e in events]
        # One statement for the batch; RETURNING names the rows inserted, not those already there.
        return set(self._conn.execute(statement.returning(t.controller_events.c.key), rows).scalars())

    def object(self, object_id: str) -> ObjectState | None:
        return self.objects_by_id([object_id]).get(object_id)

    def objects_by_id(self, object_ids: Sequence[str]) -> dict[str, ObjectState]:
        c = t.gitops_objects.c
        return {row["object_id"]: ObjectState.model_validate(dict(row)) for i in range(0, len(object_ids), CHUNK)
                for row in self._conn.execute(sa.select(t.gitops_objects).where(
                    c.object_id.in_(list(object_ids[i:i + CHUNK])))).mappings()}

    def save_object(self, state: ObjectState) -> None:
        self.save_objects([state])

    def save_objects(self, states: Sequence[ObjectState]) -> None:
        if not states:
            return
        statement = _insert(self._conn)(t.gitops_objects)
        columns = [c.name for c in t.gitops_objects.columns if c.name != "object_id"]
        statement = statement.on_conflict_do_update(index_elements=["object_id"],
                                                    set_={name: statement.excluded[name] for name in columns})
        self._conn.execute(statement, [state.model_dump() for state in states])

    def failing(self, object_ids: Sequence[str]) -> set[str]:
        c = t.reconcile_failures.c
        return {row[0] for i in range(0, len(object_ids), CHUNK) for row in self._conn.execute(
            sa.select(c.object_id).distinct().where(c.object_id.in_(list(object_ids[i:i + CHUNK])),
                                                    c.resolved_at.is_(None)))}

    def objects(self, repos: Sequence[str]) -> list[ObjectState]:
        rows = self._conn.execute(sa.select(t.gitops_objects).where(
            t.gitops_objects.c.repo.in_(list(repos))).limit(1000)).mappings()
        return [ObjectState.model_validate(dict(row)) for row in rows]

    def add_applied(self, revisions: Sequence[AppliedRevision], *, only_later: Sequence[str] = ()) -> None:
        if not revisions:
            return
        first = revisions[0]
        c = t.object_revisions.c
        # Of two times one object reports for a change, the first stays (the rollout's start).
        statement = _insert(self._conn)(t.object_revisions)
        statement = statement.on_conflict_do_update(
            index_elements=["object_id", "repo", "sha"], set_={"applied_at": statement.excluded.applied_at},
            where=c.applied_at > statement.excluded.applied_at)
        self._conn.execute(statement, [r.model_dump() for r in revisions])
        if only_later:
            self._conn.execute(t.object_revisions.update().where(
                c.object_id == first.object_id, c.repo == first.repo, c.sha.in_(list(only_later)),
                c.applied_at > first.applied_at).values(applied_at=first.applied_at))

    def set_healthy(self, object_id: str, *, at: datetime) -> None:
        c = t.object_revisions.c
        self._conn.execute(t.object_revisions.update().where(
            c.object_id == object_id, c.healthy_at.is_(None), c.applied_at <= at).values(healthy_at=at))

    def applied(self, repos: Sequence[str], *, since: datetime, until: datetime, shas: Sequence[str] = (),
                objects: Sequence[str] | None = None) -> list[AppliedRevision]:
        if not repos or objects == []:
            return []
        c = t.object_revisions.c
        of = [c.repo.in_(list(repos))] + ([c.object_id.in_(list(objects))] if objects is not None else [])
        # Two queries, each on its index (an OR of both would scan the table).
        queries = [sa.select(t.object_revisions).where(*of, c.applied_at >= since, c.applied_at <= until)]
        queries += [sa.select(t.object_revisions).where(*of, c.sha.in_(list(shas[i:i + 500])))
                    for i in range(0, len(shas), 500)]
        found = {}
        for query in queries:
            for row in self._conn.execute(query).mappings():
                found[(row["object_id"], row["repo"], row["sha"])] = AppliedRevision.model_validate(dict(row))
        return list(found.values())

    def add_failure(self, failure: Failure) -> Failure:
        values = failure.model_dump(exclude={"id"})
        values["shas"] = list(failure.shas)
        new_id = self._conn.execute(t.reconcile_failures.insert().values(**values)).inserted_primary_key
        return failure.model_copy(update={"id": new_id[0] if new_id else None})

    def open_failure(self, object_id: str) -> Failure | None:
        row = self._conn.execute(sa.select(t.reconcile_failures).where(
            t.reconcile_failures.c.object_id == object_id, t.reconcile_failures.c.resolved_at.is_(None),
        ).order_by(t.reconcile_failures.c.id.desc()).limit(1)).mappings().first()
        return _failure(row) if row else None

    def resolve_failures(self, object_id: str, *, at: datetime) -> list[Failure]:
        c = t.reconcile_failures.c
        rows = self._conn.execute(t.reconcile_failures.update().where(
            c.object_id == object_id, c.resolved_at.is_(None), c.at <= at,
        ).values(resolved_at=at).returning(*t.reconcile_failures.columns)).mappings().all()
        return sorted((_failure(row) for row in rows), key=lambda f: f.at)

    def failures(self, repos: Sequence[str], *, since: datetime, until: datetime) -> list[Failure]:
        if not repos:
            return []
        rows = self._conn.execute(sa.select(t.reconcile_failures).where(
            t.reconcile_failures.c.repo.in_(list(repos)),
            t.reconcile_failures.c.at >= since, t.reconcile_failures.c.at <= until,
        ).order_by(t.reconcile_failures.c.at.desc()).limit(100)).mappings()
        return [_failure(row) for row in rows]

    def add_build(self, build: ImageBuild, *, now: datetime) -> None:
        values = {"repo": build.repo, "sha": build.sha, "at": build.at or now}
        _upsert(self._conn, t.image_builds, {"image": build.image, "tag": build.tag}, values)

    def build(self, image: str, tag: str) -> ImageBuild | None:
        row = self._conn.execute(sa.select(t.image_builds).where(
            t.image_builds.c.image == image, t.image_builds.c.tag == tag)).mappings().first()
        return ImageBuild.model_validate(dict(row)) if row else None


def _failure(row: Any) -> Failure:
    return Failure.model_validate({**row, "shas": tuple(row["shas"] or ())})
