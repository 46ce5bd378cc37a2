"""The sweep's breaker on Prometheus: what it forwards, and when it stops asking."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest

from bot.domain.errors import TransientError, UpstreamError
from bot.domain.ports import AlertStates, MetricsQuery
from bot.services.batch_onsets import Breaker, KeyQuery, Prefetched
from bot.services.onset import EPOCH, alert_states, key_window
from tests.fakes.metrics import FakeMetrics, FakePrometheus

NOW = datetime.now(UTC)


def test_the_breaker_implements_alert_states_only_where_prometheus_does() -> None:
    """Wrapped, a MetricsQuery without activeAt stays one (the onset's notes depend on it), and
    one with it is still one where protocols are checked statically (Python 3.12 looks past
    `__getattr__`, by which the wrappers forward: the onset asks by attribute)."""
    for wrap in (lambda m: Breaker(m).as_metrics(), lambda m: Prefetched(Breaker(m).as_metrics(), []).as_metrics()):
        assert alert_states(wrap(FakePrometheus())) is not None
        assert alert_states(wrap(FakeMetrics())) is None
        assert inspect.getattr_static(wrap(FakePrometheus()), "active_at", None) is None  # what 3.12 would see
    assert isinstance(alert_states(FakePrometheus()), AlertStates)


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


class Ranges:
    """A Prometheus that evaluates a query at each instant of its range (`start + k * step`), the
    value a function of the instant alone, as Prometheus does; the ranges asked, counted."""

    def __init__(self) -> None:
        self.asked: list[tuple[datetime, datetime]] = []

    def series(self, query: str, *, start: datetime, end: datetime, step: timedelta) -> list[tuple[datetime, float]]:
        self.asked.append((start, end))
        points, at = [], start
        while at <= end:
            points.append((at, float(at.timestamp() % 977)))
            at += step
        return points


def test_one_query_over_a_batchs_windows_gives_each_window_its_own_points() -> None:
    """Windows on the step's grid: the union's query sliced is what each window alone gets, and a
    window the union does not cover is asked on its own."""
    base = datetime(2026, 3, 1, 12, 0, 7, 123456, tzinfo=UTC)
    starts = [base + timedelta(seconds=37 * n) for n in range(50)]
    windows = [key_window(at, timedelta(hours=6)) for at in starts]
    assert all((start - EPOCH) % step == timedelta(0) for start, _, step in windows)
    alone = Ranges()
    expected = [alone.series("q", start=s, end=e, step=step) for s, e, step in windows]
    ranges = Ranges()
    union = KeyQuery("q", min(w[0] for w in windows), max(w[1] for w in windows), windows[0][2]).fetch(
        cast(MetricsQuery, ranges))
    shared = Prefetched(cast(MetricsQuery, ranges), [union]).as_metrics()
    assert [shared.series("q", start=s, end=e, step=step) for s, e, step in windows] == expected
    assert len(ranges.asked) == 1
    later = key_window(base + timedelta(hours=3), timedelta(hours=6))
    shared.series("q", start=later[0], end=later[1], step=later[2])
    assert len(ranges.asked) == 2
