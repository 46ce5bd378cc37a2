"""The real Alertmanager posting to the running app: incidents open, group and resolve."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TOKEN
from tests.integration.processes import Alertmanager, BackoutServer, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.alertmanager]


@pytest.fixture
def alertmanagers(tmp_path: Path, backout: BackoutServer) -> Iterator[list[Alertmanager]]:
    """Two Alertmanagers, not clustered, both routed to the same Backout."""
    webhook = f"{backout.url}/webhooks/alertmanager"
    pair = [Alertmanager(tmp_path / f"am{i}", webhook_url=webhook, token=TOKEN) for i in (1, 2)]
    for am in pair:
        am.start()
    yield pair
    for am in pair:
        am.stop()


def alert(instance: str, starts_at: datetime, ends_at: datetime | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "labels": {"alertname": "HighErrorRate", "service": "checkout", "severity": "critical",
                   "instance": instance},
        "annotations": {"summary": "5xx > 5% on checkout", "description": "<!channel> *bold*"},
        "startsAt": starts_at.isoformat(),
        "generatorURL": "http://127.0.0.1:9090/graph?g0.expr=x",
    }
    if ends_at is not None:
        body["endsAt"] = ends_at.isoformat()
    return body


def incidents(backout: BackoutServer) -> list[dict[str, Any]]:
    return list(backout.api("/api/incidents")["incidents"])


def test_two_alertmanagers_open_one_incident_that_groups_and_resolves(
    backout: BackoutServer, alertmanagers: list[Alertmanager]
) -> None:
    """The same alerts from two Alertmanagers: one incident, both alerts, then resolved."""
    started = datetime.now(UTC) - timedelta(seconds=30)
    for am in alertmanagers:
        am.post_alerts([alert("10.0.0.1:8080", started)])
    wait_until(lambda: len(incidents(backout)) == 1, timeout=20, what="the incident to open")

    for am in alertmanagers:
        am.post_alerts([alert("10.0.0.2:8080", started)])
    wait_until(lambda: len(backout.api("/api/incidents/INC-1")["alerts"]) == 2, timeout=20,
               what="the second alert to join the incident")

    ended = datetime.now(UTC)
    for am in alertmanagers:
        am.post_alerts([alert("10.0.0.1:8080", started, ended), alert("10.0.0.2:8080", started, ended)])
    wait_until(lambda: incidents(backout)[0]["status"] == "resolved", timeout=30,
               what="the incident to resolve")

    [incident] = incidents(backout)
    assert (incident["ref"], incident["service"], incident["playbook"]) == ("INC-1", "checkout", "checkout")
    view = backout.api("/api/incidents/INC-1")
    assert sorted(a["status"] for a in view["alerts"]) == ["resolved", "resolved"]
    assert view["alerts"][0]["annotations"]["description"] == "<!channel> *bold*"
    kinds = [event["kind"] for event in view["timeline"]]
    assert kinds.count("incident.opened") == 1
    assert kinds.count("alert.firing") == 2
    assert kinds.count("alert.resolved") == 2
    assert kinds[-1] == "incident.resolved"
    # Both Alertmanagers delivered, every time, without a single failed notification.
    assert all(am.failed_notifications() == 0 for am in alertmanagers)
    metrics = _metric_lines(backout)
    duplicates = metrics['backout_alerts_ingested_total{result="duplicate"}']
    assert duplicates >= 2, "the second Alertmanager's copies were seen and ignored"
    assert TOKEN not in backout.log.read_text(), "the webhook token must never be logged"
    assert "webhook.ingested" in backout.log.read_text()


def test_wrong_token_is_refused_and_alertmanager_records_the_failure(
    tmp_path: Path, backout: BackoutServer
) -> None:
    """An Alertmanager with the wrong credentials gets 401; nothing is stored."""
    am = Alertmanager(tmp_path / "bad", webhook_url=f"{backout.url}/webhooks/alertmanager",
                      token="wrong").start()
    try:
        am.post_alerts([alert("10.0.0.9:8080", datetime.now(UTC))])
        wait_until(lambda: am.failed_notifications() >= 1, timeout=20,
                   what="alertmanager to record a failed notification")
        assert incidents(backout) == []
    finally:
        am.stop()


def _metric_lines(backout: BackoutServer) -> dict[str, float]:
    import httpx

    text = httpx.get(f"{backout.url}/metrics", timeout=5).text
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines() if line and not line.startswith("#")}
