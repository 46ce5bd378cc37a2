"""Repositories for the change log, rankings and actions (the storage port, continued; the rest of
the incident's work is in store_work.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import bindparam
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from bot.adapters.storage import tables as t
from bot.domain.actions import Action, ActionKind, ActionState
from bot.domain.changes import CONTROLLER_SOURCES, AppliedSource, Change, Revert
from bot.domain.suspects import Ranking, RankingStatus, Suspect

_CHANGE_FIELDS = {c.name for c in t.changes.columns if c.name != "id"}
_ACTION_FIELDS = {c.name for c in t.actions.columns if c.name != "id"}
_SUSPECT_FIELDS = {c.name for c in t.suspects.columns if c.name not in {"id", "incident_id", "rank"}}

_APPLIED_BETWEEN = (
    sa.select(t.changes)
    .where(
        t.changes.c.repo.in_(bindparam("repos", expanding=True)),
        t.changes.c.applied_at >= bindparam("since"),
        t.changes.c.applied_at <= bindparam("until"),
    )
    .order_by(t.changes.c.applied_at.desc())
)

# Built once: building a statement per call cost more than running it (a sweep proposes thousands).
_GET_ACTION = sa.select(t.actions).where(
    t.actions.c.incident_id == bindparam("incident_id"), t.actions.c.kind == bindparam("kind"),
    t.actions.c.commit_sha == bindparam("commit_sha")).order_by(t.actions.c.id)
_GET_REPO_ACTION = _GET_ACTION.where(t.actions.c.repo == bindparam("repo"))
_INSERT_ACTION = t.actions.insert()


class SqlChangeRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add_many(self, changes: Sequence[Change]) -> int:
        if not changes:
            return 0
        statement = _insert(self._conn)(t.changes).on_conflict_do_nothing(index_elements=["repo", "sha"])
        rows = [_change_values(change) for change in changes]
        result = self._conn.execute(statement, rows)
        return max(result.rowcount, 0) if result.rowcount is not None else len(rows)

    def applied_between(self, repos: Sequence[str], since: datetime, until: datetime) -> list[Change]:
        if not repos:
            return []
        rows = self._conn.execute(
            _APPLIED_BETWEEN, {"repos": list(repos), "since": since, "until": until}
        ).mappings()
        return [_change(row) for row in rows]

    def find(self, repo: str | None, sha_prefix: str) -> list[Change]:
        query = sa.select(t.changes).where(t.changes.c.sha.startswith(sha_prefix, autoescape=True))
        if repo is not None:
            query = query.where(t.changes.c.repo == repo)
        return [_change(row) for row in self._conn.execute(query.limit(20)).mappings()]

    def get_many(self, repo: str, shas: Sequence[str]) -> list[Change]:
        found: list[Change] = []
        for start in range(0, len(shas), 500):
            rows = self._conn.execute(sa.select(t.changes).where(
                t.changes.c.repo == repo, t.changes.c.sha.in_(list(shas[start:start + 500])))).mappings()
            found += [_change(row) for row in rows]
        return found

    def head(self, repo: str) -> str | None:
        value = self._conn.execute(
            sa.select(t.repo_heads.c.head_sha).where(t.repo_heads.c.repo == repo)
        ).scalar()
        return str(value) if value is not None else None

    def set_head(self, repo: str, sha: str, *, at: datetime) -> None:
        _upsert(self._conn, t.repo_heads, {"repo": repo}, {"head_sha": sha, "refreshed_at": at})


    def needing_applied(self, repo: str, since: datetime) -> list[str]:
        rows = self._conn.execute(sa.select(t.changes.c.sha).where(
            t.changes.c.repo == repo, t.changes.c.committed_at >= since,
            t.changes.c.applied_source == AppliedSource.COMMIT_TIME.value,
        ).order_by(t.changes.c.committed_at.desc()).limit(500))
        return [row[0] for row in rows]

    def set_applied(self, repo: str, sha: str, *, at: datetime, source: AppliedSource) -> None:
        self._conn.execute(t.changes.update().where(t.changes.c.repo == repo, t.changes.c.sha == sha)
                           .values(applied_at=at, applied_source=source.value))

    def set_applied_by(self, repo: str, shas: Sequence[str], *, at: datetime, source: AppliedSource,
                       by: str, only_later: Sequence[str] = ()) -> int:
        if not shas and not only_later:
            return 0
        c = t.changes.c
        controllers = [s.value for s in CONTROLLER_SOURCES]
        # A controller's time beats every other source; of two controller times the first stays.
        better = sa.or_(c.applied_source.not_in(controllers), c.applied_at > at)
        matched = sa.or_(c.sha.in_(list(shas)), sa.and_(c.sha.in_(list(only_later)), c.applied_at > at))
        result = self._conn.execute(t.changes.update().where(c.repo == repo, matched, better)
                                    .values(applied_at=at, applied_source=source.value, applied_by=by[:300]))
        return max(result.rowcount or 0, 0)


    def add_reverts(self, reverts: Sequence[Revert]) -> None:
        if not reverts:
            return
        statement = _insert(self._conn)(t.change_reverts).on_conflict_do_nothing(
            index_elements=["repo", "target", "by_sha"])
        self._conn.execute(statement, [r.model_dump() for r in reverts])

    def reverts(self, repos: Sequence[str], *, until: datetime) -> list[Revert]:
        if not repos:
            return []
        rows = self._conn.execute(sa.select(t.change_reverts).where(
            t.change_reverts.c.repo.in_(list(repos)), t.change_reverts.c.at <= until)).mappings()
        return [Revert(repo=r["repo"], target=r["target"], by_sha=r["by_sha"], at=r["at"]) for r in rows]


class SqlRankingRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def get(self, incident_id: int) -> Ranking | None:
        return self.get_many([incident_id]).get(incident_id)

    def get_many(self, incident_ids: Sequence[int]) -> dict[int, Ranking]:
        found: dict[int, Ranking] = {}
        for part in _parts(incident_ids):
            rows = self._conn.execute(sa.select(t.rankings).where(t.rankings.c.incident_id.in_(part))).mappings().all()
            if not rows:
                continue
            suspects: dict[int, list[Suspect]] = {}
            for s in self._conn.execute(sa.select(t.suspects).where(t.suspects.c.incident_id.in_(part))
                                        .order_by(t.suspects.c.incident_id, t.suspects.c.rank)).mappings():
                suspects.setdefault(s["incident_id"], []).append(
                    Suspect.model_validate({**{k: s[k] for k in _SUSPECT_FIELDS}, "code": s["code"] or ()}))
            found.update({row["incident_id"]: _ranking(row, suspects.get(row["incident_id"], [])) for row in rows})
        return found

    def save(self, incident_id: int, ranking: Ranking) -> None:
        self.save_many({incident_id: ranking})

    def save_many(self, rankings: Mapping[int, Ranking]) -> None:
        for part in _parts(list(rankings)):
            self._conn.execute(t.suspects.delete().where(t.suspects.c.incident_id.in_(part)))
            self._conn.execute(t.rankings.delete().where(t.rankings.c.incident_id.in_(part)))
            self._conn.execute(t.rankings.insert(), [_ranking_values(n, rankings[n]) for n in part])
            suspects = [_suspect_values(n, rank, suspect) for n in part
                        for rank, suspect in enumerate(rankings[n].suspects, start=1)]
            if suspects:
                self._conn.execute(t.suspects.insert(), suspects)


def _parts(ids: Sequence[int], size: int = 500) -> list[list[int]]:
    """Ids in parts small enough for one IN list."""
    return [list(ids[start:start + size]) for start in range(0, len(ids), size)]


def _ranking(row: Any, suspects: Sequence[Suspect]) -> Ranking:
    return Ranking(
        status=RankingStatus(row["status"]), confident=row["confident"], reason=row["reason"],
        ranked_at=row["ranked_at"], onset_at=row["onset_at"], floor=row["floor"],
        confidence=row["confidence"], suspects=tuple(suspects),
    )


def _ranking_values(incident_id: int, ranking: Ranking) -> dict[str, Any]:
    return {"incident_id": incident_id, "status": ranking.status.value, "confident": ranking.confident,
            "reason": ranking.reason, "ranked_at": ranking.ranked_at, "onset_at": ranking.onset_at,
            "floor": ranking.floor, "confidence": ranking.confidence}


def _suspect_values(incident_id: int, rank: int, suspect: Suspect) -> dict[str, Any]:
    return {**suspect.model_dump(mode="python"), "incident_id": incident_id, "rank": rank,
            "reasons": list(suspect.reasons), "warnings": list(suspect.warnings),
            "code": [c.model_dump(mode="json") for c in suspect.code] or None}


class SqlActionRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def get(self, incident_id: int, kind: ActionKind, commit_sha: str, *, repo: str | None = None) -> Action | None:
        values = {"incident_id": incident_id, "kind": kind.value, "commit_sha": commit_sha}
        query = _GET_ACTION if repo is None else _GET_REPO_ACTION
        row = self._conn.execute(query, values if repo is None else {**values, "repo": repo}).mappings().first()
        return Action.model_validate(dict(row)) if row else None

    def add(self, action: Action) -> Action:
        values = action.model_dump(mode="python", include=_ACTION_FIELDS)
        new_id = self._conn.execute(_INSERT_ACTION, values).inserted_primary_key
        assert new_id is not None
        return action.model_copy(update={"id": new_id[0]})

    def save(self, action: Action) -> None:
        values = action.model_dump(mode="python", include=_ACTION_FIELDS)
        self._conn.execute(t.actions.update().where(t.actions.c.id == action.id).values(**values))

    def for_incident(self, incident_id: int) -> list[Action]:
        rows = self._conn.execute(
            sa.select(t.actions).where(t.actions.c.incident_id == incident_id).order_by(t.actions.c.id)
        ).mappings()
        return [Action.model_validate(dict(row)) for row in rows]

    def with_state(self, state: ActionState) -> list[Action]:
        rows = self._conn.execute(
            sa.select(t.actions).where(t.actions.c.state == state.value).order_by(t.actions.c.id).limit(500)
        ).mappings()
        return [Action.model_validate(dict(row)) for row in rows]

    def locked(self, action_id: int) -> Action | None:
        query = sa.select(t.actions).where(t.actions.c.id == action_id)
        if self._conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = self._conn.execute(query).mappings().first()
        return Action.model_validate(dict(row)) if row else None

    def count_auto_since(self, playbook: str, since: datetime) -> int:
        query = (
            sa.select(sa.func.count())
            .select_from(t.actions.join(t.incidents, t.actions.c.incident_id == t.incidents.c.id))
            .where(t.actions.c.auto.is_(True), t.incidents.c.playbook == playbook,
                   t.actions.c.created_at >= since, t.actions.c.state != "proposed")
        )
        return int(self._conn.execute(query).scalar_one())


def _insert(conn: Connection) -> Callable[[sa.Table], Any]:
    """The dialect's INSERT, which has ON CONFLICT on both SQLite and PostgreSQL."""
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


def _upsert(conn: Connection, table: sa.Table, key: dict[str, Any], values: dict[str, Any]) -> None:
    """Insert or update the row with this primary key, in one statement (no race between two)."""
    statement = _insert(conn)(table).values(**key, **values)
    conn.execute(statement.on_conflict_do_update(index_elements=list(key), set_=values))


def _change_values(change: Change) -> dict[str, Any]:
    values = change.model_dump(mode="python", include=_CHANGE_FIELDS)
    values["files"] = [file.model_dump(mode="json", exclude_defaults=True) for file in change.files]
    values["parents"] = list(change.parents)
    values["applied_at"] = change.applied_at or change.committed_at
    return values


def _change(row: Any) -> Change:
    return Change.model_validate({key: value for key, value in row.items() if key != "id"})
