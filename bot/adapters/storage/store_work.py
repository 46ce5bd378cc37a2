"""Repositories for the work around an incident: chat summaries and threads, probe and verification
state, author notices, follow-up work, verdicts and the keys Backout keeps for itself (the storage
port, continued)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import bindparam
from sqlalchemy.engine import Connection

from bot.adapters.storage import tables as t
from bot.adapters.storage.replicas import Holder, stamp
from bot.adapters.storage.store_changes import _insert, _upsert
from bot.domain.ports import AuthorNotice, ChatThread, FollowUp, PendingSummary, Verification
from bot.domain.probes import ProbeState, ProbeStatus
from bot.domain.verdicts import Verdict


class SqlChatRepository:
    def __init__(self, conn: Connection, holder: Holder | None = None) -> None:
        self._conn = conn
        self._holder = holder  # stamped on each claim; None outside `serve` (claims then only lapse)

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

    def put_summaries(self, payloads: Mapping[int, dict[str, Any]], *, at: datetime) -> None:
        o = t.chat_outbox.c
        ids = list(payloads)
        waiting = {row[0] for row in self._conn.execute(
            sa.select(o.incident_id).where(o.incident_id.in_(ids), o.state == "pending"))} if ids else set()
        if waiting:  # a waiting summary is replaced, as put_summary does
            self._conn.execute(t.chat_outbox.update().where(
                o.incident_id == bindparam("_incident"), o.state == "pending").values(
                payload=bindparam("_payload"), channel=None),
                [{"_incident": n, "_payload": payloads[n]} for n in sorted(waiting)])
        new = [n for n in ids if n not in waiting]
        if new:
            self._conn.execute(t.chat_outbox.insert(), [
                {"incident_id": n, "channel": None, "payload": payloads[n], "state": "pending", "attempts": 0,
                 "not_before": at, "created_at": at} for n in new])

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
            state="sending", not_before=until, attempts=o.attempts + 1, **stamp(self._holder),
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
                                  t.timeline_events.c.id > t.chat_threads.c.last_event_id,
                                  t.timeline_events.c.hidden == sa.false())
        rows = self._conn.execute(sa.select(t.chat_threads).where(newer).limit(limit)).mappings()
        return [ChatThread(**row) for row in rows]

    def save_thread(self, thread: ChatThread) -> None:
        _upsert(self._conn, t.chat_threads, {"incident_id": thread.incident_id},
                {"channel": thread.channel, "ts": thread.ts, "last_event_id": thread.last_event_id,
                 "reply_unconfirmed": thread.reply_unconfirmed})

    def channel_id(self, name: str) -> str | None:
        found = self._conn.execute(sa.select(t.chat_channels.c.channel_id).where(t.chat_channels.c.name == name))
        return found.scalar()

    def save_channel_id(self, name: str, channel_id: str) -> None:
        _upsert(self._conn, t.chat_channels, {"name": name}, {"channel_id": channel_id})

    def incident_by_message(self, channel: str, ts: str) -> int | None:
        c = t.chat_threads.c
        found = self._conn.execute(sa.select(c.incident_id).where(c.channel == channel, c.ts == ts)).scalar()
        return int(found) if found is not None else None

    def has_messages_in(self, channel: str) -> bool:
        c = t.chat_threads.c
        return self._conn.execute(sa.select(c.incident_id).where(c.channel == channel).limit(1)).first() is not None


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
    def __init__(self, conn: Connection, holder: Holder | None = None) -> None:
        self._conn = conn
        self._holder = holder

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
        ).values(claimed_until=until, attempts=f.attempts + 1, **stamp(self._holder)))
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

    def claim_many(self, incident_ids: Sequence[int], kind: str, *, now: datetime, until: datetime) -> list[int]:
        f = t.follow_ups.c
        free = sa.and_(f.kind == kind, f.done_at.is_(None), sa.or_(f.claimed_until.is_(None), f.claimed_until < now))
        taken: list[int] = []
        for start in range(0, len(incident_ids), 500):
            part = list(incident_ids[start:start + 500])
            rows = sa.select(f.id).where(f.incident_id.in_(part), free)
            if self._conn.dialect.name == "postgresql":
                rows = rows.with_for_update(skip_locked=True)  # another replica claiming them keeps them
            ids = [row[0] for row in self._conn.execute(rows)]
            if ids:
                claimed = self._conn.execute(t.follow_ups.update().where(f.id.in_(ids), free).values(
                    claimed_until=until, attempts=f.attempts + 1, **stamp(self._holder)).returning(f.incident_id))
                taken += [row[0] for row in claimed]
        return sorted(taken)

    def finish_many(self, incident_ids: Sequence[int], kind: str, *, at: datetime) -> None:
        f = t.follow_ups.c
        for start in range(0, len(incident_ids), 500):
            self._conn.execute(t.follow_ups.update().where(
                f.incident_id.in_(list(incident_ids[start:start + 500])), f.kind == kind, f.done_at.is_(None),
            ).values(done_at=at))

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

    def for_incidents(self, incident_ids: Sequence[int]) -> dict[int, list[Verdict]]:
        found: dict[int, list[Verdict]] = {n: [] for n in incident_ids}
        for start in range(0, len(incident_ids), 500):
            rows = self._conn.execute(sa.select(t.verdicts).where(
                t.verdicts.c.incident_id.in_(list(incident_ids[start:start + 500]))).order_by(t.verdicts.c.id))
            for row in rows.mappings():
                found[row["incident_id"]].append(_verdict(row))
        return found

    def since(self, at: datetime, limit: int = 20_000) -> list[Verdict]:
        query = (sa.select(t.verdicts).join(t.incidents, t.incidents.c.id == t.verdicts.c.incident_id)
                 .where(t.incidents.c.opened_at >= at).order_by(t.verdicts.c.id).limit(limit))
        return [_verdict(row) for row in self._conn.execute(query).mappings()]


def _verdict(row: Any) -> Verdict:
    return Verdict.model_validate({key: value for key, value in row.items() if key != "id"})


class SqlKeyRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def get_or_add(self, name: str, value: str, *, at: datetime) -> str:
        # ON CONFLICT DO NOTHING waits for a replica inserting the same name to commit, then the
        # SELECT (a new snapshot under READ COMMITTED; SQLite has one writer) reads the winner.
        insert = _insert(self._conn)(t.server_keys).values(name=name, value=value, created_at=at)
        self._conn.execute(insert.on_conflict_do_nothing(index_elements=["name"]))
        kept = self._conn.execute(sa.select(t.server_keys.c.value).where(t.server_keys.c.name == name))
        return str(kept.scalar_one())
