"""The in-memory store's held controller events (the storage port's fake, continued)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.domain.gitops import ControllerEvent
from bot.domain.ports import HeldEvent


class FakeHeldEvents:
    """`state.held`: key -> [held event, claimed until]."""

    def __init__(self, state: Any) -> None:
        self._s = state

    def hold(self, event: ControllerEvent, *, at: datetime, note: str) -> None:
        self._s.held.setdefault(event.key, [HeldEvent(event=event, held_at=at, note=note), None])

    def count(self) -> int:
        return len(self._s.held)

    def claim(self, *, now: datetime, until: datetime, keys: Sequence[str] | None = None,
              limit: int = 50) -> list[HeldEvent]:
        rows = sorted(((key, row) for key, row in self._s.held.items()
                       if (keys is None or key in keys) and (row[1] is None or row[1] < now)),
                      key=lambda item: (item[1][0].held_at, item[0]))[:limit]
        for _, row in rows:
            row[1] = until
        return [row[0] for _, row in rows]

    def release(self, key: str, *, note: str) -> None:
        if key in self._s.held:
            held = self._s.held[key][0]
            self._s.held[key] = [dataclasses.replace(held, attempts=held.attempts + 1, note=note), None]

    def drop(self, key: str) -> None:
        self._s.held.pop(key, None)

    def release_all(self) -> int:
        claimed = [row for row in self._s.held.values() if row[1] is not None]
        for row in claimed:
            row[1] = None
        return len(claimed)
