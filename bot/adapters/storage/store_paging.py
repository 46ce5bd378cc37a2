"""The pager's repository: its outbox, filled from the timeline, and PagerDuty's webhook events seen
(the storage port, continued)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bot.adapters.storage import tables as t
from bot.adapters.storage.store_changes import _insert
from bot.domain.models import TimelineEvent
from bot.domain.ports import PendingPage

UNFINISHED = ("pending", "sending")


class SqlPagerRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def unsent_events(self, kinds: Sequence[str], *, since: datetime, limit: int = 100) -> list[TimelineEvent]:
        e, o = t.timeline_events.c, t.pager_outbox.c
        taken = sa.exists().where(o.event_id == e.id)
        shown = [c for c in t.timeline_events.c if c.name != "hidden"]  # a hidden entry is out of every reading
        rows = self._conn.execute(sa.select(*shown).where(
            e.kind.in_(list(kinds)), e.at >= since, ~taken, e.hidden == sa.false(),
        ).order_by(e.id).limit(limit)).mappings()
        return [TimelineEvent.model_validate(dict(row)) for row in rows]

    def add(self, *, incident_id: int, event_id: int, kind: str, payload: dict[str, Any] | None,
            at: datetime) -> None:
        statement = _insert(self._conn)(t.pager_outbox).values(
            incident_id=incident_id, event_id=event_id, kind=kind, payload=payload,
            state="pending" if payload is not None else "none", attempts=0, not_before=at, created_at=at)
        self._conn.execute(statement.on_conflict_do_nothing(index_elements=["event_id"]))

    def triggered(self, incident_id: int) -> bool:
        o = t.pager_outbox.c
        found = self._conn.execute(sa.select(o.id).where(
            o.incident_id == incident_id, o.kind == "trigger", o.state != "none").limit(1))
        return found.first() is not None

    def claim(self, now: datetime, *, until: datetime, limit: int = 20) -> list[PendingPage]:
        o = t.pager_outbox.c
        earlier = t.pager_outbox.alias("earlier")
        due = sa.or_(o.state == "pending", o.state == "sending") & (o.not_before <= now)
        waiting = sa.exists().where(earlier.c.incident_id == o.incident_id, earlier.c.id < o.id,
                                    earlier.c.state.in_(UNFINISHED))
        candidates = sa.select(o.id).where(due, ~waiting).order_by(o.id).limit(limit)
        if self._conn.dialect.name == "postgresql":
            candidates = candidates.with_for_update(skip_locked=True)
        ids = [row[0] for row in self._conn.execute(candidates)]
        if not ids:
            return []
        # Conditional on still being due: of two drainers, one takes each page.
        rows = self._conn.execute(t.pager_outbox.update().where(o.id.in_(ids), due).values(
            state="sending", not_before=until, attempts=o.attempts + 1,
        ).returning(o.id, o.incident_id, o.payload, o.attempts)).all()
        return [PendingPage(id=r.id, incident_id=r.incident_id, payload=r.payload, attempts=r.attempts - 1)
                for r in sorted(rows, key=lambda r: r.id)]

    def finish(self, page_id: int, *, at: datetime) -> None:
        self._set(page_id, state="sent", error=None, not_before=at)

    def retry(self, page_id: int, *, until: datetime, error: str) -> None:
        self._set(page_id, state="pending", not_before=until, error=error[:500])

    def refuse(self, page_id: int, *, error: str) -> None:
        self._set(page_id, state="refused", error=error[:500])

    def backlog(self) -> int:
        return int(self._conn.execute(sa.select(sa.func.count()).select_from(t.pager_outbox).where(
            t.pager_outbox.c.state.in_(UNFINISHED))).scalar() or 0)

    def first_delivery(self, event_id: str, *, at: datetime) -> bool:
        d = t.pager_deliveries.c
        statement = _insert(self._conn)(t.pager_deliveries).values(event_id=event_id, received_at=at)
        # RETURNING, not rowcount: a driver may report -1 for an INSERT ... ON CONFLICT.
        inserted = statement.on_conflict_do_nothing(index_elements=["event_id"]).returning(d.event_id)
        return self._conn.execute(inserted).first() is not None

    def _set(self, page_id: int, **values: Any) -> None:
        self._conn.execute(t.pager_outbox.update().where(t.pager_outbox.c.id == page_id).values(**values))
