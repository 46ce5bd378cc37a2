"""A fake MetricsQuery (and AlertStates): values and series per query that the test sets, or an error."""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import urlsplit

from bot.domain.errors import TransientError
from bot.domain.models import Alert


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


class FakePrometheus(FakeMetrics):
    """FakeMetrics that also implements AlertStates: activeAt and the rule's `for` per alert name,
    for alerts whose generatorURL names one of `hosts`."""

    def __init__(self) -> None:
        super().__init__()
        self.active: dict[str, datetime] = {}
        self.rules: dict[str, timedelta] = {}
        self.hosts = {"prometheus:9090"}
        self.asked: list[str] = []

    def asks(self, alert: Alert) -> bool:
        return urlsplit(alert.generator_url).netloc in self.hosts

    def active_at(self, alert: Alert) -> datetime | None:
        self.asked.append(alert.name)
        if self.down:
            raise TransientError("prometheus: cannot reach it (ConnectionError)")
        return self.active.get(alert.name)

    def rule_for(self, alert: Alert) -> timedelta | None:
        if self.down:
            raise TransientError("prometheus: cannot reach it (ConnectionError)")
        return self.rules.get(alert.name)
