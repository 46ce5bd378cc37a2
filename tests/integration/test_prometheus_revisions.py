"""Applied times from the real Prometheus: the first time a revision label appears."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from bot.adapters.prometheus import PrometheusRevisions, RevisionQuery, step_for
from bot.domain.errors import TransientError
from tests.integration.processes import Exporter, Prometheus, free_port, wait_until

pytestmark = pytest.mark.integration

OLD, NEW = "a" * 40, "b" * 40


@contextmanager
def scraped(tmp_path: Path, text: str, name: str) -> Iterator[tuple[Exporter, Prometheus]]:
    """An exporter serving `text` and the real Prometheus that has scraped metric `name` once."""
    exporter = Exporter().start()
    exporter.text = text
    prometheus = Prometheus(tmp_path, target_port=exporter.port).start()
    try:
        query = f"{prometheus.url}/api/v1/query?query={name}"
        wait_until(lambda: bool(httpx.get(query, timeout=2).json()["data"]["result"]), timeout=20,
                   what="the first scrape")
        yield exporter, prometheus
    finally:
        prometheus.stop()
        exporter.stop()


def test_the_first_sighting_of_a_revision_is_its_applied_time(tmp_path: Path) -> None:
    """A controller metric switches from the old revision to the new: the new one's first
    sample is when it was applied; a revision never seen has no time."""
    old = f'gitops_applied_revision{{app="checkout",revision="{OLD[:12]}"}} 1\n'
    with scraped(tmp_path, old, "gitops_applied_revision") as (exporter, prometheus):
        query = f"{prometheus.url}/api/v1/query?query=gitops_applied_revision"
        switched = datetime.now(UTC)
        exporter.text = f'gitops_applied_revision{{app="checkout",revision="{NEW[:12]}"}} 1\n'
        wait_until(lambda: NEW[:12] in httpx.get(query, timeout=2).text, timeout=20, what="the switch")
        source = PrometheusRevisions(prometheus.url, queries={
            "gitops": RevisionQuery(query='gitops_applied_revision{app="checkout"}', label="revision")})
        found = source.applied_at("gitops", [OLD, NEW, "c" * 40], since=switched - timedelta(minutes=5))
        assert set(found) == {OLD, NEW}
        assert found[OLD] < found[NEW]
        assert abs((found[NEW] - switched).total_seconds()) < 5
        assert source.source("gitops") == "prometheus"


def test_an_unreachable_prometheus_is_a_transient_error() -> None:
    """Connection refused: retried a bounded number of times, then a clear transient error."""
    source = PrometheusRevisions(f"http://127.0.0.1:{free_port()}", attempts=2,
                                 queries={"gitops": RevisionQuery(query="up", label="revision")})
    with pytest.raises(TransientError, match="cannot reach"):
        source.applied_at("gitops", [OLD], since=datetime.now(UTC) - timedelta(hours=1))


def test_range_steps_stay_under_the_points_limit() -> None:
    """Whatever the window, a range query asks for at most 10,000 points per series."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert step_for(start, start + timedelta(hours=1)) == 1
    for days in (1, 7, 30, 365):
        step = step_for(start, start + timedelta(days=days))
        assert days * 86400 / step <= 10_000


def test_the_onset_of_a_real_series_is_found_where_it_changed(tmp_path: Path) -> None:
    """The error ratio steps up: PrometheusQuery.series reads it back, and the onset lands at the step."""
    from bot.adapters.prometheus import PrometheusQuery
    from bot.services.onset import level_shift

    with scraped(tmp_path, "checkout_error_ratio 0.01\n", "checkout_error_ratio") as (exporter, prometheus):
        began = datetime.now(UTC)
        wait_until(lambda: datetime.now(UTC) - began > timedelta(seconds=12), timeout=20, what="a baseline")
        stepped = datetime.now(UTC)
        exporter.text = "checkout_error_ratio 0.3\n"
        wait_until(lambda: datetime.now(UTC) - stepped > timedelta(seconds=8), timeout=20, what="the new level")
        points = PrometheusQuery(prometheus.url).series("checkout_error_ratio", start=began,
                                                        end=datetime.now(UTC), step=timedelta(seconds=1))
        assert len(points) >= 15
        assert points[0][1] == 0.01
        assert points[-1][1] == 0.3
        onset = level_shift(points, before=datetime.now(UTC), worse=1)
        assert onset is not None
        assert abs((onset - stepped).total_seconds()) <= 3
