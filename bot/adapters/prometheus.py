"""Applied revisions from Prometheus: the first time a revision shows up in a query's series
(for example Argo CD's or Flux's metrics carrying the applied revision as a label)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential
from urllib3.util.retry import Retry

from bot.domain.errors import TransientError, UpstreamError

MAX_POINTS = 10_000  # Prometheus refuses more than 11,000 points per series


@dataclass(frozen=True)
class RevisionQuery:
    query: str
    label: str


def step_for(start: datetime, end: datetime) -> int:
    """A step in seconds that keeps a range query within Prometheus's points limit."""
    return max(1, math.ceil((end - start).total_seconds() / MAX_POINTS))


class PrometheusRevisions:
    """Implements the AppliedTimes port for repositories whose applied revision is a metric label."""

    def __init__(self, url: str, *, queries: Mapping[str, RevisionQuery], timeout: float = 10.0,
                 attempts: int = 3) -> None:
        # The library's own urllib3 retry is off: ours (tenacity) is bounded and visible.
        self._client = PrometheusConnect(url=url, retry=Retry(total=0), timeout=int(timeout))
        self._queries = dict(queries)
        self._attempts = attempts

    def source(self, repo: str) -> str | None:
        return "prometheus" if repo in self._queries else None

    def applied_at(self, repo: str, shas: Sequence[str], *, since: datetime) -> dict[str, datetime]:
        spec = self._queries.get(repo)
        if spec is None or not shas:
            return {}
        now = datetime.now(UTC)
        series = self._query_range(spec.query, since, now)
        first: dict[str, datetime] = {}
        for item in series:
            revision = str(item.get("metric", {}).get(spec.label, ""))
            values = item.get("values") or []
            if len(revision) < 7 or not values:
                continue
            seen = datetime.fromtimestamp(float(values[0][0]), tz=UTC)
            for sha in shas:
                if sha.startswith(revision) or revision.startswith(sha):
                    first[sha] = min(seen, first.get(sha, seen))
        return first

    def _query_range(self, query: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        retrying = Retrying(retry=retry_if_exception_type(TransientError), reraise=True,
                            stop=stop_after_attempt(self._attempts),
                            wait=wait_exponential(multiplier=0.5, max=4))
        step = step_for(start, end)
        # The library rounds times to seconds: end one step late so the newest samples are
        # inside the last evaluation.
        late_end = end + timedelta(seconds=step)
        for attempt in retrying:
            with attempt:
                result = _call(lambda: self._client.custom_query_range(
                    query, start_time=start, end_time=late_end, step=str(step)))
                return list(result)
        raise AssertionError("unreachable")


class PrometheusQuery:
    """Implements the MetricsQuery port: instant queries, bounded retries, no library retry."""

    def __init__(self, url: str, *, timeout: float = 10.0, attempts: int = 3, backoff: float = 0.5) -> None:
        self._client = PrometheusConnect(url=url, retry=Retry(total=0), timeout=int(max(timeout, 1)))
        self._attempts = attempts
        self._backoff = backoff

    def value(self, query: str) -> float | None:
        retrying = Retrying(retry=retry_if_exception_type(TransientError), reraise=True,
                            stop=stop_after_attempt(self._attempts),
                            wait=wait_exponential(multiplier=self._backoff, max=4))
        for attempt in retrying:
            with attempt:
                result = _call(lambda: self._client.custom_query(query))
                values = [float(item["value"][1]) for item in result if "value" in item]
                finite = [v for v in values if math.isfinite(v)]
                return max(finite) if finite else None  # no series (or only NaN): no data
        raise AssertionError("unreachable")

    def series(self, query: str, *, start: datetime, end: datetime, step: timedelta) -> list[tuple[datetime, float]]:
        seconds = max(int(step.total_seconds()), step_for(start, end))
        retrying = Retrying(retry=retry_if_exception_type(TransientError), reraise=True,
                            stop=stop_after_attempt(self._attempts),
                            wait=wait_exponential(multiplier=self._backoff, max=4))
        for attempt in retrying:
            with attempt:
                result = _call(lambda: self._client.custom_query_range(
                    query, start_time=start, end_time=end, step=str(seconds)))
                largest: dict[float, float] = {}
                for item in result:
                    for stamp, raw in item.get("values") or []:
                        value = float(raw)
                        if math.isfinite(value):
                            largest[float(stamp)] = max(value, largest.get(float(stamp), value))
                return [(datetime.fromtimestamp(stamp, tz=UTC), largest[stamp]) for stamp in sorted(largest)]
        raise AssertionError("unreachable")


def _call(fn: Callable[[], Any]) -> Any:
    """Map the client's failures to ours: transient (network, 5xx) or not (a bad query)."""
    try:
        return fn()
    except requests.exceptions.RequestException as exc:
        raise TransientError(f"prometheus: cannot reach it ({type(exc).__name__})") from exc
    except PrometheusApiClientException as exc:
        message = str(exc)
        if "Status Code 5" in message or " 5" in message[:40]:
            raise TransientError(f"prometheus: {message[:200]}") from exc
        raise UpstreamError(f"prometheus: {message[:200]}") from exc
