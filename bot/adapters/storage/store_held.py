"""The held controller events: those answered 202 while their revision was still being fetched,
kept until recorded and claimed by whoever records them (the storage port, continued)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bot.adapters.storage import tables as t
from bot.adapters.storage.replicas import UNHELD, Holder, stamp
from bot.adapters.storage.store_changes import _insert
from bot.domain.gitops import ControllerEvent
from bot.domain.ports import HeldEvent

_NOTE = 1000  # characters of the reason an event is still held


class SqlHeldEventRepository:
    def __init__(self, conn: Connection, holder: Holder | None = None) -> None:
        self._conn = conn
        self._holder = holder  # stamped on each claim, so a restart frees its earlier run's at once

    def hold(self, event: ControllerEvent, *, at: datetime, note: str) -> None:
        statement = _insert(self._conn)(t.held_controller_events).values(
            key=event.key, event=event.model_dump(mode="json"), held_at=at, attempts=0, note=note[:_NOTE])
        self._conn.execute(statement.on_conflict_do_nothing(index_elements=["key"]))

    def count(self) -> int:
        return int(self._conn.execute(sa.select(sa.func.count()).select_from(t.held_controller_events)).scalar() or 0)

    def claim(self, *, now: datetime, until: datetime, keys: Sequence[str] | None = None,
              limit: int = 50) -> list[HeldEvent]:
        """PostgreSQL skips rows another transaction is claiming (FOR UPDATE SKIP LOCKED); the
        update is conditional either way, so an event is claimed by one replica at a time."""
        h = t.held_controller_events.c
        free = sa.or_(h.claimed_until.is_(None), h.claimed_until < now)
        candidates = sa.select(h.key).where(free).order_by(h.held_at, h.key).limit(limit)
        if keys is not None:
            candidates = candidates.where(h.key.in_(list(keys)))
        if self._conn.dialect.name == "postgresql":
            candidates = candidates.with_for_update(skip_locked=True)
        chosen = [row[0] for row in self._conn.execute(candidates)]
        if not chosen:
            return []
        rows = self._conn.execute(t.held_controller_events.update().where(h.key.in_(chosen), free).values(
            claimed_until=until, **stamp(self._holder)).returning(*t.held_controller_events.columns)).mappings().all()
        return sorted((_held(row) for row in rows), key=lambda held: (held.held_at, held.event.key))

    def release(self, key: str, *, note: str) -> None:
        h = t.held_controller_events.c
        self._conn.execute(t.held_controller_events.update().where(h.key == key).values(
            claimed_until=None, attempts=h.attempts + 1, note=note[:_NOTE], **UNHELD))

    def drop(self, key: str) -> None:
        self._conn.execute(t.held_controller_events.delete().where(t.held_controller_events.c.key == key))

    def release_all(self) -> int:
        h = t.held_controller_events.c
        done = self._conn.execute(t.held_controller_events.update().where(h.claimed_until.is_not(None))
                                  .values(claimed_until=None, **UNHELD))
        return max(done.rowcount or 0, 0)


def _held(row: Any) -> HeldEvent:
    return HeldEvent(event=ControllerEvent.model_validate(row["event"]), held_at=row["held_at"],
                     attempts=row["attempts"], note=row["note"])
