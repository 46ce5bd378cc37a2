"""The drift repository: out-of-band changes the controllers reported (the storage port, continued)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bot.adapters.storage import tables as t
from bot.adapters.storage.store_changes import _insert
from bot.domain.drift import Drift


class SqlDriftRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(self, drift: Drift) -> Drift | None:
        values = drift.model_dump(mode="json", exclude={"id"})
        values.update(since=drift.since, detected_at=drift.detected_at, corrected_at=drift.corrected_at,
                      object_id=drift.object_id[:600], label=drift.label[:700], revision=drift.revision[:300],
                      correction=drift.correction[:300], sync=drift.sync[:500] if drift.sync else None)
        statement = _insert(self._conn)(t.drifts).on_conflict_do_nothing(index_elements=["key"])
        result = self._conn.execute(statement.values(**values))
        if not result.rowcount:
            return None
        found = self._conn.execute(sa.select(t.drifts.c.id).where(t.drifts.c.key == drift.key)).scalar_one()
        return drift.model_copy(update={"id": found})

    def get(self, drift_id: int) -> Drift | None:
        row = self._conn.execute(sa.select(t.drifts).where(t.drifts.c.id == drift_id)).mappings().first()
        return _drift(row) if row else None

    def open_for(self, object_id: str) -> Drift | None:
        c = t.drifts.c
        row = self._conn.execute(sa.select(t.drifts).where(
            c.object_id == object_id, c.corrected_at.is_(None)).order_by(c.id.desc()).limit(1)).mappings().first()
        return _drift(row) if row else None

    def correct(self, drift_id: int, *, at: datetime, correction: str) -> None:
        self._conn.execute(t.drifts.update().where(t.drifts.c.id == drift_id, t.drifts.c.corrected_at.is_(None))
                           .values(corrected_at=at, correction=correction[:300], sync=None))

    def between(self, *, since: datetime, until: datetime, limit: int = 200) -> list[Drift]:
        c = t.drifts.c
        rows = self._conn.execute(sa.select(t.drifts).where(c.detected_at >= since, c.detected_at <= until)
                                  .order_by(c.detected_at.desc(), c.id.desc()).limit(limit)).mappings()
        return [_drift(row) for row in rows]


def _drift(row: Any) -> Drift:
    return Drift.model_validate({**row, "resources": tuple(row["resources"] or ()),
                                 "services": tuple(row["services"] or ()),
                                 "playbooks": tuple(row["playbooks"] or ())})
