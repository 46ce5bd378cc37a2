"""The alert's onset from the real Prometheus: activeAt while the alert is pending or firing, its
labels matched less the external labels, the rule's `for` from /api/v1/rules, and a Prometheus
that does not answer."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from bot.adapters.prometheus import PrometheusAlerts, PrometheusQuery, host_key
from bot.domain.errors import TransientError
from bot.domain.models import Alert, AlertStatus
from bot.services.onset import OnsetSource, alerts_onset
from tests.integration.processes import Exporter, Prometheus, free_port, wait_until

pytestmark = pytest.mark.integration

EXTERNAL = {"cluster": "eu-1"}
SLOW: dict[str, Any] = {"alert": "CheckoutErrors", "expr": "checkout_errors > 0", "for": "30s",
                        "labels": {"severity": "page"}}
FAST: dict[str, Any] = {**SLOW, "alert": "CheckoutErrorsNow", "for": "2s"}


@pytest.fixture(scope="module")
def failing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Prometheus, datetime, str]]:
    """A real Prometheus with external labels and two rules on checkout_errors, which turns bad at
    the time yielded (the exporter's address, the alerts' `instance`, comes last)."""
    exporter = Exporter().start()
    exporter.text = "checkout_errors 0\n"
    prometheus = Prometheus(tmp_path_factory.mktemp("prometheus"), target_port=exporter.port,
                            rules=[SLOW, FAST], external_labels=EXTERNAL).start()
    try:
        query = f"{prometheus.url}/api/v1/query?query=checkout_errors"
        wait_until(lambda: bool(httpx.get(query, timeout=2).json()["data"]["result"]), timeout=20,
                   what="the first scrape")
        bad = datetime.now(UTC)
        exporter.text = "checkout_errors 1\n"
        yield prometheus, bad, f"127.0.0.1:{exporter.port}"
    finally:
        prometheus.stop()
        exporter.stop()


def states(prometheus: Prometheus) -> list[dict[str, Any]]:
    return list(httpx.get(f"{prometheus.url}/api/v1/alerts", timeout=2).json()["data"]["alerts"])


def sent(name: str, instance: str, url: str, *, starts_at: datetime, rule: Mapping[str, Any],
         **extra: str) -> Alert:
    """The alert as Alertmanager delivers it: the rule's labels, the series', and the external ones."""
    labels = {"alertname": name, "instance": instance, "job": "test", "severity": "page", **EXTERNAL, **extra}
    return Alert(fingerprint=name, starts_at=starts_at, ends_at=None, status=AlertStatus.FIRING, labels=labels,
                 annotations={}, generator_url=f"{url}/graph?g0.expr={quote(str(rule['expr']))}&g0.tab=1",
                 incident_id=1, received_at=starts_at)


def test_active_at_is_read_while_pending_with_the_external_labels_stripped(
        failing: tuple[Prometheus, datetime, str]) -> None:
    """A `for: 30s` rule still pending: activeAt is when the condition became true; the delivered
    alert's external label is stripped to match, and another cluster's alert does not match."""
    prometheus, bad, instance = failing
    wait_until(lambda: any(a["labels"]["alertname"] == "CheckoutErrors" for a in states(prometheus)),
               timeout=15, what="the alert pending")
    assert {a["state"] for a in states(prometheus) if a["labels"]["alertname"] == "CheckoutErrors"} == {"pending"}
    source = PrometheusAlerts({host_key(prometheus.url): prometheus.url})
    now = datetime.now(UTC)
    alert = sent("CheckoutErrors", instance, prometheus.url, starts_at=now, rule=SLOW)
    active = source.active_at(alert)
    assert active is not None
    assert bad - timedelta(seconds=1) <= active <= bad + timedelta(seconds=4)
    assert source.active_at(alert.model_copy(update={"labels": {**alert.labels, "cluster": "us-1"}})) is None
    later = alert.model_copy(update={"starts_at": active - timedelta(minutes=5)})
    assert source.active_at(later) is None  # activated after this alert started: another activation


def test_active_at_is_read_when_firing_and_through_a_mapped_generator_host(
        failing: tuple[Prometheus, datetime, str]) -> None:
    """A `for: 2s` rule firing; its generatorURL names the external host, which prometheus.generators
    maps to the Prometheus Backout asks; an unmapped host is not asked."""
    prometheus, bad, instance = failing
    wait_until(lambda: any(a["labels"]["alertname"] == "CheckoutErrorsNow" and a["state"] == "firing"
                           for a in states(prometheus)), timeout=15, what="the alert firing")
    query = PrometheusQuery(prometheus.url, generators={"prometheus.example.com": prometheus.url})
    alert = sent("CheckoutErrorsNow", instance, "https://prometheus.example.com", starts_at=datetime.now(UTC),
                 rule=FAST)
    assert query.asks(alert)
    active = query.active_at(alert)
    assert active is not None
    assert abs((active - bad).total_seconds()) <= 4
    elsewhere = alert.model_copy(update={"generator_url": "http://prometheus-b.example.com:9090/graph"})
    assert not query.asks(elsewhere)


def test_the_rules_for_is_read_from_the_rules_api(failing: tuple[Prometheus, datetime, str]) -> None:
    """/api/v1/rules gives each rule's `for` (duration): an alert Prometheus no longer has counts
    from its startsAt less that; a name no rule has gives none."""
    prometheus, _, instance = failing
    source = PrometheusAlerts({host_key(prometheus.url): prometheus.url})
    started = datetime.now(UTC) - timedelta(hours=2)
    assert source.rule_for(sent("CheckoutErrors", instance, prometheus.url, starts_at=started, rule=SLOW)) \
        == timedelta(seconds=30)
    assert source.rule_for(sent("CheckoutErrorsNow", instance, prometheus.url, starts_at=started, rule=FAST)) \
        == timedelta(seconds=2)
    assert source.rule_for(sent("NoSuchRule", instance, prometheus.url, starts_at=started, rule=SLOW)) is None
    gone = sent("CheckoutErrors", instance, prometheus.url, starts_at=started, rule=SLOW)
    found = alerts_onset(states=source, alerts=[gone])
    assert found.source is OnsetSource.RULE_FOR
    assert found.at == started - timedelta(seconds=30)


def test_prometheus_down_counts_from_the_alerts_start_and_says_so() -> None:
    """Connection refused: a bounded transient error, and the onset says Prometheus did not answer."""
    url = f"http://127.0.0.1:{free_port()}"
    source = PrometheusAlerts({host_key(url): url}, attempts=2, backoff=0.01)
    alert = sent("CheckoutErrors", "127.0.0.1:1", url, starts_at=datetime.now(UTC), rule=SLOW)
    with pytest.raises(TransientError, match="cannot reach"):
        source.active_at(alert)
    found = alerts_onset(states=source, alerts=[alert])
    assert found.at is None
    assert found.source is OnsetSource.START
    assert found.note == "Onset: Prometheus did not answer; timing counts from the alert's start."
