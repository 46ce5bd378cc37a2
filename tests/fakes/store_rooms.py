"""The in-memory store's rooms and roles (the storage port's fake, continued)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.domain.models import ACTIVE_STATUSES, IncidentStatus
from bot.domain.ports import Room


class FakeRooms:
    def __init__(self, state: Any) -> None:
        self._s = state

    def get(self, incident_id: int) -> Room | None:
        return self._s.rooms.get(incident_id)

    def by_channel(self, channel_id: str) -> Room | None:
        return next((r for r in self._s.rooms.values() if r.channel_id == channel_id), None)

    def add(self, room: Room) -> bool:
        if room.incident_id in self._s.rooms:
            return False
        self._s.rooms[room.incident_id] = room
        return True

    def save(self, room: Room) -> None:
        self._s.rooms[room.incident_id] = room

    def due(self, now: datetime, *, resolved_before: datetime | None, limit: int = 20) -> list[Room]:
        def work(room: Room) -> bool:
            if room.state == "pending" or (room.state == "open" and (room.invites_due or room.pointer_ts is None)):
                return True
            incident = self._s.incidents[room.incident_id]
            if room.state == "archived" and incident.status in ACTIVE_STATUSES:
                return True
            return (resolved_before is not None and room.state == "open"
                    and incident.status in (IncidentStatus.RESOLVED, IncidentStatus.CLOSED)
                    and incident.resolved_at is not None and incident.resolved_at <= resolved_before)

        ready = [r for _, r in sorted(self._s.rooms.items())
                 if (r.not_before is None or r.not_before <= now) and work(r)]
        return ready[:limit]

    def request_invites(self, incident_id: int) -> None:
        room = self._s.rooms.get(incident_id)
        if room is not None and room.state != "archived":
            self._s.rooms[incident_id] = dataclasses.replace(room, invites_due=True)

    def request_invites_many(self, incident_ids: Sequence[int]) -> None:
        for incident_id in incident_ids:
            self.request_invites(incident_id)


class FakeRoles:
    def __init__(self, state: Any) -> None:
        self._s = state

    def for_incident(self, incident_id: int) -> dict[str, str]:
        return dict(sorted((role, user) for (number, role), user in self._s.roles.items() if number == incident_id))

    def assign(self, incident_id: int, role: str, user: str, *, at: datetime, by: str) -> str | None:
        before = self._s.roles.get((incident_id, role))
        self._s.roles[(incident_id, role)] = user
        return before
