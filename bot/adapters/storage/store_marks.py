"""Messages marked in chat, each once by its channel and ts (the primary key: a second insert of
the same message conflicts, and the store runs the work again to find the first)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bot.adapters.storage import tables as t
from bot.domain.chat_marks import MarkedMessage


class SqlChatMarkRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def get(self, channel: str, ts: str) -> MarkedMessage | None:
        c = t.chat_marks.c
        # Locked until the transaction ends: the marks are read, changed and written back, and two
        # replicas marking one message at once must not each write their own set over the other's.
        row = self._conn.execute(sa.select(t.chat_marks).where(c.channel == channel, c.ts == ts)
                                 .with_for_update()).mappings().first()
        if row is None:
            return None
        return MarkedMessage(incident_id=row["incident_id"], channel=row["channel"], ts=row["ts"],
                             event_id=row["event_id"], markers=frozenset(row["markers"]), hidden=row["hidden"])

    def add(self, mark: MarkedMessage) -> None:
        self._conn.execute(t.chat_marks.insert().values(channel=mark.channel, ts=mark.ts, **_values(mark)))

    def save(self, mark: MarkedMessage) -> None:
        c = t.chat_marks.c
        self._conn.execute(t.chat_marks.update().where(c.channel == mark.channel, c.ts == mark.ts)
                           .values(**_values(mark)))


def _values(mark: MarkedMessage) -> dict[str, Any]:
    return {"incident_id": mark.incident_id, "event_id": mark.event_id, "markers": sorted(mark.markers),
            "hidden": mark.hidden}
