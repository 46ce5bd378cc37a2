"""The sweep's breaker on Prometheus: what it forwards, and when it stops asking."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.errors import TransientError, UpstreamError
from bot.domain.ports import AlertStates
from bot.services.batch_onsets import Breaker
from tests.fakes.metrics import FakeMetrics, FakePrometheus

NOW = datetime.now(UTC)


def test_the_breaker_implements_alert_states_only_where_prometheus_does() -> None:
    """Wrapped, a MetricsQuery without activeAt stays one (the onset's notes depend on it)."""
    assert isinstance(Breaker(FakePrometheus()).as_metrics(), AlertStates)
    assert not isinstance(Breaker(FakeMetrics()).as_metrics(), AlertStates)


def test_after_prometheus_failed_to_answer_it_is_not_asked_again() -> None:
    """One TransientError opens it: later calls fail at once, without reaching Prometheus."""
    fake = FakeMetrics()
    metrics = Breaker(fake).as_metrics()
    assert metrics.value("up") is None
    fake.down = True
    for _ in range(3):
        with pytest.raises(TransientError):
            metrics.series("up", start=NOW - timedelta(hours=1), end=NOW, step=timedelta(minutes=1))
    assert fake.queries == ["up", "up"]


def test_a_refused_query_does_not_stop_the_others() -> None:
    """A bad query (UpstreamError) says nothing of Prometheus answering: the next is asked."""

    class Refusing(FakeMetrics):
        def value(self, query: str) -> float | None:
            self.queries.append(query)
            raise UpstreamError("prometheus: /api/v1/query answered 400 bad_data")

    fake = Refusing()
    metrics = Breaker(fake).as_metrics()
    for _ in range(2):
        with pytest.raises(UpstreamError):
            metrics.value("nonsense(")
    assert fake.queries == ["nonsense(", "nonsense("]
