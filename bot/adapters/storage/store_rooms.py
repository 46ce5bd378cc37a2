"""Repositories for incident rooms (the channel per declared incident, driven by the chat outbox)
and incident roles (the storage port, continued)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bot.adapters.storage import tables as t
from bot.adapters.storage.store_changes import _insert, _upsert
from bot.domain.models import ACTIVE_STATUSES, IncidentStatus
from bot.domain.ports import Room

_ROOM_FIELDS = [f.name for f in dataclasses.fields(Room) if f.name != "incident_id"]
_DONE = (IncidentStatus.RESOLVED.value, IncidentStatus.CLOSED.value)
_ACTIVE = sorted(status.value for status in ACTIVE_STATUSES)


class SqlRoomRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def get(self, incident_id: int) -> Room | None:
        row = self._conn.execute(sa.select(t.chat_rooms).where(t.chat_rooms.c.incident_id == incident_id)
                                 ).mappings().first()
        return _room(row) if row else None

    def by_channel(self, channel_id: str) -> Room | None:
        row = self._conn.execute(sa.select(t.chat_rooms).where(t.chat_rooms.c.channel_id == channel_id)
                                 ).mappings().first()
        return _room(row) if row else None

    def add(self, room: Room) -> bool:
        statement = _insert(self._conn)(t.chat_rooms).values(**_values(room), incident_id=room.incident_id)
        # RETURNING, not rowcount: psycopg reports -1 for an INSERT ... ON CONFLICT.
        added = self._conn.execute(statement.on_conflict_do_nothing(index_elements=["incident_id"])
                                   .returning(t.chat_rooms.c.incident_id))
        return added.first() is not None

    def save(self, room: Room) -> None:
        _upsert(self._conn, t.chat_rooms, {"incident_id": room.incident_id}, _values(room))

    def due(self, now: datetime, *, resolved_before: datetime | None, limit: int = 20) -> list[Room]:
        r, i = t.chat_rooms.c, t.incidents.c
        ready = sa.or_(r.not_before.is_(None), r.not_before <= now)
        work = sa.or_(r.state == "pending", sa.and_(r.state == "open", sa.or_(r.invites_due, r.pointer_ts.is_(None))),
                      sa.and_(r.state == "archived", i.status.in_(_ACTIVE)))  # reopened: to unarchive
        if resolved_before is not None:
            work = sa.or_(work, sa.and_(r.state == "open", i.status.in_(_DONE), i.resolved_at <= resolved_before))
        query = (sa.select(t.chat_rooms).join(t.incidents, i.id == r.incident_id)
                 .where(ready, work).order_by(r.incident_id).limit(limit))
        return [_room(row) for row in self._conn.execute(query).mappings()]

    def request_invites(self, incident_id: int) -> None:
        self.request_invites_many([incident_id])

    def request_invites_many(self, incident_ids: Sequence[int]) -> None:
        for start in range(0, len(incident_ids), 500):
            self._conn.execute(t.chat_rooms.update().where(
                t.chat_rooms.c.incident_id.in_(list(incident_ids[start:start + 500])),
                t.chat_rooms.c.state != "archived").values(invites_due=True))


class SqlRoleRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def for_incident(self, incident_id: int) -> dict[str, str]:
        rows = self._conn.execute(sa.select(t.incident_roles.c.role, t.incident_roles.c.user_id).where(
            t.incident_roles.c.incident_id == incident_id).order_by(t.incident_roles.c.role))
        return {row.role: row.user_id for row in rows}

    def assign(self, incident_id: int, role: str, user: str, *, at: datetime, by: str) -> str | None:
        before = self.for_incident(incident_id).get(role)
        _upsert(self._conn, t.incident_roles, {"incident_id": incident_id, "role": role},
                {"user_id": user, "assigned_at": at, "assigned_by": by})
        return before


def _values(room: Room) -> dict[str, Any]:
    values = {name: getattr(room, name) for name in _ROOM_FIELDS}
    values["invited"] = list(room.invited)
    return values


def _room(row: Any) -> Room:
    values = dict(row)
    values["invited"] = tuple(values["invited"] or ())
    return Room(**values)
