"""A fake MetricsQuery: values per query that the test sets, or an error."""

from __future__ import annotations

from bot.domain.errors import TransientError


class FakeMetrics:
    def __init__(self) -> None:
        self.values: dict[str, float | None] = {}
        self.down = False
        self.queries: list[str] = []

    def value(self, query: str) -> float | None:
        self.queries.append(query)
        if self.down:
            raise TransientError("prometheus: cannot reach it (ConnectionError)")
        return self.values.get(" ".join(query.split()))
