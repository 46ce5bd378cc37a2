"""A fake MetricsQuery: values and series per query that the test sets, or an error."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.domain.errors import TransientError


class FakeMetrics:
    def __init__(self) -> None:
        self.values: dict[str, float | None] = {}
        self.history: dict[str, list[tuple[datetime, float]]] = {}
        self.down = False
        self.queries: list[str] = []

    def value(self, query: str) -> float | None:
        self.queries.append(query)
        if self.down:
            raise TransientError("prometheus: cannot reach it (ConnectionError)")
        return self.values.get(" ".join(query.split()))

    def series(self, query: str, *, start: datetime, end: datetime, step: timedelta) -> list[tuple[datetime, float]]:
        self.queries.append(query)
        if self.down:
            raise TransientError("prometheus: cannot reach it (ConnectionError)")
        return [(at, v) for at, v in self.history.get(" ".join(query.split()), []) if start <= at <= end]
