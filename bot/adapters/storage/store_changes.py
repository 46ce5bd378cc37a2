"""Repositories for the change log, rankings and actions (the storage port, continued)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import bindparam
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from bot.adapters.storage import tables as t
from bot.domain.actions import Action, ActionKind, ActionState
from bot.domain.changes import CONTROLLER_SOURCES, AppliedSource, Change, Revert
from bot.domain.ports import AuthorNotice, ChatThread, FollowUp, PendingSummary, Verification
from bot.domain.probes import ProbeState, ProbeStatus
from bot.domain.suspects import Ranking, RankingStatus, Suspect
from bot.domain.verdicts import Verdict

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
        row = self._conn.execute(
            sa.select(t.rankings).where(t.rankings.c.incident_id == incident_id)
        ).mappings().first()
        if row is None:
            return None
        suspects = self._conn.execute(
            sa.select(t.suspects).where(t.suspects.c.incident_id == incident_id).order_by(t.suspects.c.rank)
        ).mappings()
        return Ranking(
            status=RankingStatus(row["status"]), confident=row["confident"], reason=row["reason"],
            ranked_at=row["ranked_at"], onset_at=row["onset_at"], floor=row["floor"],
            confidence=row["confidence"],
            suspects=tuple(Suspect.model_validate({**{k: s[k] for k in _SUSPECT_FIELDS}, "code": s["code"] or ()})
                           for s in suspects),
        )

    def save(self, incident_id: int, ranking: Ranking) -> None:
        self._conn.execute(t.suspects.delete().where(t.suspects.c.incident_id == incident_id))
        self._conn.execute(t.rankings.delete().where(t.rankings.c.incident_id == incident_id))
        self._conn.execute(t.rankings.insert().values(
            incident_id=incident_id, status=ranking.status.value, confident=ranking.confident,
            reason=ranking.reason, ranked_at=ranking.ranked_at, onset_at=ranking.onset_at, floor=ranking.floor,
            confidence=ranking.confidence,
        ))
        if ranking.suspects:
            self._conn.execute(t.suspects.insert(), [
                {**suspect.model_dump(mode="python"), "incident_id": incident_id, "rank": rank,
                 "reasons": list(suspect.reasons), "warnings": list(suspect.warnings),
                 "code": [c.model_dump(mode="json") for c in suspect.code] or None}
                for rank, suspect in enumerate(ranking.suspects, start=1)
            ])


class SqlActionRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def get(self, incident_id: int, kind: ActionKind, commit_sha: str) -> Action | None:
        row = self._conn.execute(sa.select(t.actions).where(
            t.actions.c.incident_id == incident_id, t.actions.c.kind == kind.value,
            t.actions.c.commit_sha == commit_sha,
        )).mappings().first()
        return Action.model_validate(dict(row)) if row else None

    def add(self, action: Action) -> Action:
        values = action.model_dump(mode="python", include=_ACTION_FIELDS)
        new_id = self._conn.execute(t.actions.insert().values(**values)).inserted_primary_key
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


class SqlChatRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def put_summary(self, incident_id: int, channel: str | None, payload: dict[str, Any],
                    *, at: datetime) -> None:
        pending = t.chat_outbox.c.state == "pending"
        updated = self._conn.execute(
            t.chat_outbox.update().where(t.chat_outbox.c.incident_id == incident_id, pending)
            .values(payload=payload, channel=channel)
        )
        if updated.rowcount == 0:  # no summary waiting: queue one (a waiting one is replaced)
            self._conn.execute(t.chat_outbox.insert().values(
                incident_id=incident_id, channel=channel, payload=payload, state="pending", attempts=0,
                not_before=at, created_at=at))

    def backlog(self) -> int:
        return int(self._conn.execute(sa.select(sa.func.count()).select_from(t.chat_outbox).where(
            t.chat_outbox.c.state.in_(("pending", "sending")))).scalar() or 0)

    def claim_summaries(self, now: datetime, *, until: datetime, limit: int = 20) -> list[PendingSummary]:
        """Take due summaries for delivery until `until`: one per incident, none of an incident
        whose earlier summary another drainer is still sending. PostgreSQL skips rows another
        transaction is claiming (FOR UPDATE SKIP LOCKED); the update is conditional either way, so
        a summary is claimed by one drainer at a time."""
        o = t.chat_outbox.c
        busy = sa.select(t.chat_outbox.c.incident_id).where(o.state == "sending", o.not_before > now)
        due = sa.or_(sa.and_(o.state == "pending", o.not_before <= now),
                     sa.and_(o.state == "sending", o.not_before <= now))  # a drainer that died
        candidates = sa.select(o.id).where(due, o.incident_id.not_in(busy)).order_by(o.id).limit(limit)
        if self._conn.dialect.name == "postgresql":
            candidates = candidates.with_for_update(skip_locked=True)
        ids = [row[0] for row in self._conn.execute(candidates)]
        if not ids:
            return []
        rows = self._conn.execute(t.chat_outbox.update().where(o.id.in_(ids), due).values(
            state="sending", not_before=until, attempts=o.attempts + 1,
        ).returning(*t.chat_outbox.columns)).mappings().all()
        claimed, seen = [], set()
        for row in sorted(rows, key=lambda r: r["id"]):
            if row["incident_id"] in seen:  # two due rows of one incident: the later waits its turn
                self._conn.execute(t.chat_outbox.update().where(o.id == row["id"]).values(
                    state="pending", not_before=now, attempts=o.attempts - 1))
                continue
            seen.add(row["incident_id"])
            # `attempts`: how many times it was taken before this one (a lost answer, a dead drainer).
            claimed.append(PendingSummary(id=row["id"], incident_id=row["incident_id"], channel=row["channel"],
                                          payload=row["payload"], attempts=row["attempts"] - 1))
        return claimed

    def finish_summary(self, summary_id: int) -> None:
        self._conn.execute(t.chat_outbox.update().where(t.chat_outbox.c.id == summary_id)
                           .values(state="sent", error=None))

    def delay_summary(self, summary_id: int, *, until: datetime, error: str) -> None:
        # Without an error it was given back untried (paced, debounced): the claim does not count.
        self._conn.execute(t.chat_outbox.update().where(t.chat_outbox.c.id == summary_id).values(
            state="pending", not_before=until, error=error[:500] or None,
            attempts=t.chat_outbox.c.attempts - (0 if error else 1)))

    def thread(self, incident_id: int) -> ChatThread | None:
        row = self._conn.execute(
            sa.select(t.chat_threads).where(t.chat_threads.c.incident_id == incident_id)
        ).mappings().first()
        return ChatThread(**row) if row else None

    def threads_behind(self, limit: int = 20) -> list[ChatThread]:
        newer = sa.exists().where(t.timeline_events.c.incident_id == t.chat_threads.c.incident_id,
                                  t.timeline_events.c.id > t.chat_threads.c.last_event_id)
        rows = self._conn.execute(sa.select(t.chat_threads).where(newer).limit(limit)).mappings()
        return [ChatThread(**row) for row in rows]

    def save_thread(self, thread: ChatThread) -> None:
        _upsert(self._conn, t.chat_threads, {"incident_id": thread.incident_id},
                {"channel": thread.channel, "ts": thread.ts, "last_event_id": thread.last_event_id})


class SqlWatchRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def probe_state(self, key: str) -> ProbeState | None:
        row = self._conn.execute(sa.select(t.probe_states).where(t.probe_states.c.key == key)).mappings().first()
        if row is None:
            return None
        return ProbeState(key=row["key"], status=ProbeStatus(row["status"]), since=row["since"],
                          value=row["value"], error=row["error"])

    def save_probe_state(self, state: ProbeState) -> None:
        _upsert(self._conn, t.probe_states, {"key": state.key},
                {"status": state.status.value, "since": state.since, "value": state.value, "error": state.error})

    def verification(self, incident_id: int) -> Verification | None:
        row = self._conn.execute(
            sa.select(t.verifications).where(t.verifications.c.incident_id == incident_id)).mappings().first()
        return Verification(**row) if row else None

    def watching(self) -> list[Verification]:
        rows = self._conn.execute(
            sa.select(t.verifications).where(t.verifications.c.outcome == "watching").limit(500)).mappings()
        return [Verification(**row) for row in rows]

    def save_verification(self, verification: Verification) -> None:
        _upsert(self._conn, t.verifications, {"incident_id": verification.incident_id},
                {"query": verification.query, "started_at": verification.started_at,
                 "healthy_since": verification.healthy_since, "outcome": verification.outcome})


class SqlAuthorNoticeRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def for_incident(self, incident_id: int) -> list[AuthorNotice]:
        rows = self._conn.execute(sa.select(t.author_notices).where(
            t.author_notices.c.incident_id == incident_id).order_by(t.author_notices.c.id)).mappings()
        return [AuthorNotice(**{k: v for k, v in row.items() if k != "id"}) for row in rows]

    def save(self, notice: AuthorNotice) -> None:
        values = {"pr_number": notice.pr_number, "comment_id": notice.comment_id, "body": notice.body,
                  "updated_at": notice.updated_at}
        _upsert(self._conn, t.author_notices,
                {"incident_id": notice.incident_id, "repo": notice.repo, "sha": notice.sha}, values)


class SqlFollowUpRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(self, incident_id: int, kind: str, *, at: datetime) -> None:
        statement = _insert(self._conn)(t.follow_ups).values(
            incident_id=incident_id, kind=kind, created_at=at, attempts=0)
        self._conn.execute(statement.on_conflict_do_nothing(
            index_elements=["incident_id", "kind"], index_where=sa.text(t.PENDING)))

    def claim(self, incident_id: int, kind: str, *, now: datetime, until: datetime) -> bool:
        f = t.follow_ups.c
        taken = self._conn.execute(t.follow_ups.update().where(
            f.incident_id == incident_id, f.kind == kind, f.done_at.is_(None),
            sa.or_(f.claimed_until.is_(None), f.claimed_until < now),
        ).values(claimed_until=until, attempts=f.attempts + 1))
        return taken.rowcount == 1

    def backlog(self) -> int:
        return int(self._conn.execute(sa.select(sa.func.count()).select_from(t.follow_ups).where(
            t.follow_ups.c.done_at.is_(None))).scalar() or 0)

    def due(self, *, now: datetime, limit: int = 50) -> list[FollowUp]:
        f = t.follow_ups.c
        rows = self._conn.execute(sa.select(t.follow_ups).where(
            f.done_at.is_(None), sa.or_(f.claimed_until.is_(None), f.claimed_until < now),
        ).order_by(f.id).limit(limit)).mappings()
        return [FollowUp(incident_id=r["incident_id"], kind=r["kind"], created_at=r["created_at"],
                         attempts=r["attempts"]) for r in rows]

    def finish(self, incident_id: int, kind: str, *, at: datetime) -> None:
        f = t.follow_ups.c
        self._conn.execute(t.follow_ups.update().where(
            f.incident_id == incident_id, f.kind == kind, f.done_at.is_(None)).values(done_at=at))

    def retry_later(self, incident_id: int, kind: str, *, until: datetime, error: str) -> None:
        f = t.follow_ups.c
        self._conn.execute(t.follow_ups.update().where(
            f.incident_id == incident_id, f.kind == kind, f.done_at.is_(None),
        ).values(claimed_until=until, last_error=error[:1000]))

    def release_all(self) -> int:
        f = t.follow_ups.c
        done = self._conn.execute(t.follow_ups.update().where(
            f.done_at.is_(None), f.claimed_until.is_not(None)).values(claimed_until=None))
        return max(done.rowcount or 0, 0)


class SqlVerdictRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(self, verdict: Verdict) -> None:
        self._conn.execute(t.verdicts.insert().values(**verdict.model_dump(mode="python")))

    def for_incident(self, incident_id: int) -> list[Verdict]:
        rows = self._conn.execute(sa.select(t.verdicts).where(t.verdicts.c.incident_id == incident_id)
                                  .order_by(t.verdicts.c.id)).mappings()
        return [_verdict(row) for row in rows]

    def since(self, at: datetime, limit: int = 20_000) -> list[Verdict]:
        query = (sa.select(t.verdicts).join(t.incidents, t.incidents.c.id == t.verdicts.c.incident_id)
                 .where(t.incidents.c.opened_at >= at).order_by(t.verdicts.c.id).limit(limit))
        return [_verdict(row) for row in self._conn.execute(query).mappings()]


def _verdict(row: Any) -> Verdict:
    return Verdict.model_validate({key: value for key, value in row.items() if key != "id"})
