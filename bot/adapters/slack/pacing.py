"""Pacing Slack's methods for the incident rooms: a token bucket per method at its rate tier, and a
429 closing the method until Retry-After. A step that must wait raises `Paced`."""

from __future__ import annotations

from datetime import datetime, timedelta

# Calls a minute each method allows (Slack's rate tiers: 2 is about 20, 3 about 50), and the burst kept.
TIER_2, TIER_3 = (20, 3), (50, 10)
TIERS = {"conversations.create": TIER_2, "conversations.archive": TIER_2, "conversations.list": TIER_2,
         "conversations.unarchive": TIER_2, "conversations.invite": TIER_3, "conversations.history": TIER_3,
         "users.lookupByEmail": TIER_3, "chat.update": TIER_3, "auth.test": TIER_3}


class Paced(Exception):
    """A method's budget is spent for now, or Slack answered 429: the room's steps wait."""

    def __init__(self, until: datetime) -> None:
        super().__init__(f"paced until {until.isoformat()}")
        self.until = until


class MethodBudget:
    """A token bucket per Slack method at its tier's rate; a 429 closes it until Retry-After."""

    def __init__(self) -> None:
        self._left: dict[str, tuple[float, datetime]] = {}
        self._closed: dict[str, datetime] = {}

    def take(self, method: str, now: datetime) -> None:
        closed = self._closed.get(method)
        if closed is not None and now < closed:
            raise Paced(closed)
        per_minute, burst = TIERS.get(method, TIER_3)
        rate = per_minute / 60.0
        left, since = self._left.get(method, (float(burst), now))
        left = min(float(burst), left + (now - since).total_seconds() * rate)
        if left < 1:
            self._left[method] = (left, now)
            raise Paced(now + timedelta(seconds=(1 - left) / rate))
        self._left[method] = (left - 1, now)

    def close(self, method: str, until: datetime) -> None:
        self._closed[method] = until
