"""When an alert says it started. A start far ahead of Backout's clock or far behind it (9999-12-31,
0002-01-01) is a broken source, not an incident: opened from it, an incident has no time axis a
review can draw. Such an alert is set aside with the reason (the Alertmanager adapter applies the
range as it parses a delivery); the rest of its delivery is kept. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.domain.durations import format_duration


@dataclass(frozen=True)
class StartRange:
    """How far before and after Backout's clock an alert's start may lie."""

    max_age: timedelta = timedelta(days=365)
    max_ahead: timedelta = timedelta(days=1)

    def refusal(self, at: datetime, *, now: datetime) -> str | None:
        """Why `at` is no time an alert can have started at, or None. Differences, not sums:
        `now + max_ahead` can overflow where `at - now` cannot."""
        if at - now > self.max_ahead:
            return f"is more than {format_duration(self.max_ahead)} ahead of Backout's clock ({iso(now)})"
        if now - at > self.max_age:
            return f"is more than {format_duration(self.max_age)} before Backout's clock ({iso(now)})"
        return None


def iso(at: datetime) -> str:
    """`9999-12-31T00:00:00Z`: as Alertmanager writes a time (year padded, unlike strftime's %Y)."""
    return at.isoformat().replace("+00:00", "Z")
