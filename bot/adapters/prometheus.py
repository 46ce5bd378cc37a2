"""Applied revisions from Prometheus: the first time a revision shows up in a query's series
(for example Argo CD's or Flux's metrics carrying the applied revision as a label)."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
import yaml
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential
from urllib3.util.retry import Retry

from bot.domain.errors import TransientError, UpstreamError
from bot.domain.models import Alert

MAX_POINTS = 10_000  # Prometheus refuses more than 11,000 points per series
EXTERNAL_LABELS_TTL = 300.0  # seconds a Prometheus's external labels are kept (they change with its config)
# An active alert whose activeAt is after the alert's startsAt is a later activation, not this one
# (Prometheus's startsAt is when the alert fired: never before activeAt).
ACTIVATION_SLACK = timedelta(seconds=1)


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
    """Implements the MetricsQuery port (instant and range queries, bounded retries, no library
    retry) and, through PrometheusAlerts, the AlertStates port."""

    def __init__(self, url: str, *, timeout: float = 10.0, attempts: int = 3, backoff: float = 0.5,
                 generators: Mapping[str, str] | None = None) -> None:
        self._client = PrometheusConnect(url=url, retry=Retry(total=0), timeout=int(max(timeout, 1)))
        self._attempts = attempts
        self._backoff = backoff
        # The configured Prometheus answers for the alerts its own address names; `generators`
        # adds the hosts other alerts name (its external URL, another Prometheus, a ruler).
        self._alerts = PrometheusAlerts({host_key(url): url, **(generators or {})}, timeout=timeout,
                                        backoff=backoff)

    def asks(self, alert: Alert) -> bool:
        return self._alerts.asks(alert)

    def active_at(self, alert: Alert) -> datetime | None:
        return self._alerts.active_at(alert)

    def rule_for(self, alert: Alert) -> timedelta | None:
        return self._alerts.rule_for(alert)

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


class PrometheusAlerts:
    """Implements the AlertStates port: an alert is looked up in the Prometheus (or ruler) its
    generatorURL names, when `sources` maps that host ("host:port", or "host" for any port) to a
    URL to ask; `/api/v1/alerts` for its activeAt, `/api/v1/rules` for its rule's `for`."""

    def __init__(self, sources: Mapping[str, str], *, timeout: float = 10.0, attempts: int = 2,
                 backoff: float = 0.5) -> None:
        self._sources = {host.lower(): url.rstrip("/") for host, url in sources.items()}
        self._session = requests.Session()  # no adapter retry: ours (tenacity) is bounded and visible
        self._timeout = timeout
        self._attempts = attempts
        self._backoff = backoff
        self._external: dict[str, tuple[float, dict[str, str]]] = {}  # url -> (read at, external labels)

    def asks(self, alert: Alert) -> bool:
        return self._source(alert.generator_url) is not None

    def active_at(self, alert: Alert) -> datetime | None:
        url, own = self._own(alert)
        found = []
        for item in (self._get(url, "/api/v1/alerts").get("alerts") or []):
            at = _rfc3339(item.get("activeAt"))
            # A later activation of the same labels is another alert (this one resolved meanwhile).
            if (item.get("state") in ("pending", "firing") and _str_map(item.get("labels")) == own
                    and at is not None and at <= alert.starts_at + ACTIVATION_SLACK):
                found.append(at)
        return min(found, default=None)

    def rule_for(self, alert: Alert) -> timedelta | None:
        url, own = self._own(alert)
        groups = self._get(url, "/api/v1/rules", params={"type": "alert"}).get("groups") or []
        rules = [rule for group in groups for rule in group.get("rules") or []
                 if rule.get("type") == "alerting" and rule.get("name") == own.get("alertname")
                 and _fixed_labels(rule).items() <= own.items()]
        expression = _expression(alert.generator_url)
        if expression is not None:  # the generatorURL carries the rule's expression: prefer the rule with it
            rules = [r for r in rules if " ".join(str(r.get("query", "")).split()) == expression] or rules
        durations = {float(rule.get("duration") or 0.0) for rule in rules}
        if len(durations) != 1:
            return None  # no rule, or rules that disagree: no guess
        return timedelta(seconds=durations.pop())

    def _source(self, generator_url: str) -> str | None:
        if not generator_url:
            return None
        key = host_key(generator_url)
        return self._sources.get(key) or self._sources.get(key.rsplit(":", 1)[0])

    def _own(self, alert: Alert) -> tuple[str, dict[str, str]]:
        """The URL to ask about the alert, and its labels as that Prometheus has them: without the
        external labels it adds when it sends alerts (a label the rule sets itself stays)."""
        url = self._source(alert.generator_url)
        if url is None:
            named = alert.generator_url or "an alert without generatorURL"
            raise UpstreamError(f"prometheus: no configured source for {named}")
        external = self._external_labels(url)
        return url, {k: v for k, v in alert.labels.items() if external.get(k) != v}

    def _external_labels(self, url: str) -> dict[str, str]:
        known = self._external.get(url)
        if known is not None and time.monotonic() - known[0] < EXTERNAL_LABELS_TTL:
            return known[1]
        try:
            text = str(self._get(url, "/api/v1/status/config").get("yaml") or "")
        except UpstreamError:
            text = ""  # a ruler without the endpoint (Mimir): its alerts carry no external labels to strip
        config = yaml.safe_load(text) if text else None
        external = _str_map(((config or {}).get("global") or {}).get("external_labels"))
        self._external[url] = (time.monotonic(), external)
        return external

    def _get(self, url: str, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        retrying = Retrying(retry=retry_if_exception_type(TransientError), reraise=True,
                            stop=stop_after_attempt(self._attempts),
                            wait=wait_exponential(multiplier=self._backoff, max=4))
        for attempt in retrying:
            with attempt:
                return _api_data(self._session, f"{url}{path}", params=params, timeout=self._timeout)
        raise AssertionError("unreachable")


def host_key(url: str) -> str:
    """A URL's host and port ("host:port"), the port its scheme implies when it names none."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{(parts.hostname or '').lower()}:{port}"


def _api_data(session: requests.Session, url: str, *, params: Mapping[str, str] | None,
              timeout: float) -> dict[str, Any]:
    """The `data` of a Prometheus API answer; 5xx and 429 are transient, other refusals are not."""
    try:
        response = session.get(url, params=params, timeout=timeout)
    except requests.exceptions.RequestException as exc:
        raise TransientError(f"prometheus: cannot reach it ({type(exc).__name__})") from exc
    path = urlsplit(url).path
    if response.status_code >= 500 or response.status_code == 429:
        raise TransientError(f"prometheus: {path} answered {response.status_code}")
    try:
        body = response.json()
    except ValueError as exc:
        raise UpstreamError(f"prometheus: {path} answered {response.status_code}, not JSON") from exc
    if response.status_code != 200 or not isinstance(body, dict) or body.get("status") != "success":
        error = body.get("error", "") if isinstance(body, dict) else ""
        raise UpstreamError(f"prometheus: {path} answered {response.status_code} {str(error)[:200]}".rstrip())
    data = body.get("data")
    return data if isinstance(data, dict) else {}


def _rfc3339(value: object) -> datetime | None:
    """Prometheus's times ("2026-12-04T14:30:01.123456789Z"): nanoseconds cut to microseconds."""
    if not isinstance(value, str) or not value:
        return None
    text = re.sub(r"(\.\d{6})\d+", r"\1", value.replace("Z", "+00:00"))
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _str_map(value: object) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _fixed_labels(rule: Mapping[str, Any]) -> dict[str, str]:
    """The rule's labels that are not templates (a templated one cannot be compared as written)."""
    return {k: v for k, v in _str_map(rule.get("labels")).items() if "{{" not in v}


def _expression(generator_url: str) -> str | None:
    found = parse_qs(urlsplit(generator_url).query).get("g0.expr")
    return " ".join(found[0].split()) if found else None


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
