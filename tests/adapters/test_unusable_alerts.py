"""One unusable alert never breaks the review: a start time outside the sane range is set aside
with its reason while the delivery's other alerts are stored, a delivery of nothing usable is a
422, labels are drawn as plain text, and far dates already in the database still chart."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from bot import bootstrap
from bot.config import AlertmanagerSettings
from bot.domain.models import Alert, AlertStatus
from tests.conftest import AUTH, TOKEN, Clock, payload

MATH = "$\\undefinedcmd$"  # matplotlib's mathtext cannot parse it


def post(client: TestClient, body: dict[str, Any]):  # type: ignore[no-untyped-def]
    return client.post("/webhooks/alertmanager", content=json.dumps(body),
                       headers={"Content-Type": "application/json", **AUTH})


def with_starts(*starts: str) -> dict[str, Any]:
    """Payload 01 (two alerts), its alerts' startsAt replaced in order (None: kept)."""
    body = payload("01")
    for alert, starts_at in zip(body["alerts"], starts, strict=False):
        alert["startsAt"] = starts_at or alert["startsAt"]
    return body


@pytest.mark.parametrize(("starts_at", "why"), [
    ("9999-12-31T00:00:00Z", "ahead"),
    ("0002-01-01T00:00:00Z", "before"),
    ("9999-12-31T23:00:00-05:00", "out of range"),  # a time that does not exist in UTC
])
def test_an_alert_starting_out_of_range_is_set_aside_and_the_others_stored(
        client: TestClient, starts_at: str, why: str) -> None:
    """One good alert and one with an absurd startsAt: 200, the good one stored (its zero endsAt
    still none), the other named in the answer and on the timeline with the reason."""
    body = with_starts("", starts_at)
    response = post(client, body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["alerts"], answer["new"], answer["incidents"]) == (1, 1, ["INC-1"])
    [aside] = answer["set_aside"]
    bad = body["alerts"][1]["fingerprint"]
    assert (aside["fingerprint"], aside["alertname"]) == (bad, "HighErrorRate")
    assert starts_at in aside["reason"]
    assert why in aside["reason"]
    incident = client.get("/api/incidents/INC-1").json()
    assert [(a["fingerprint"], a["ends_at"]) for a in incident["alerts"]] == [(body["alerts"][0]["fingerprint"], None)]
    [event] = [e for e in incident["timeline"] if e["kind"] == "alert.set_aside"]
    assert bad in event["text"]
    assert aside["reason"] in event["text"]
    assert post(client, body).json()["set_aside"] == [aside], "a repeat says it again"
    timeline = client.get("/api/incidents/INC-1/timeline").json()["timeline"]
    assert [e["kind"] for e in timeline].count("alert.set_aside") == 1, "but the timeline does not repeat it"


def test_a_delivery_of_only_unusable_alerts_is_422_and_stores_nothing(client: TestClient) -> None:
    """Every alert set aside: 422 (Alertmanager does not retry it) naming each, nothing stored."""
    response = post(client, with_starts("9999-12-31T00:00:00Z", "0002-01-01T00:00:00Z"))
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_payload"
    [ahead, before] = response.json()["detail"]
    assert ahead["loc"] == "alerts.0.startsAt"
    assert "9999-12-31T00:00:00Z is more than 1d ahead" in ahead["msg"]
    assert before["loc"] == "alerts.1.startsAt"
    assert "0002-01-01T00:00:00Z is more than 365d before" in before["msg"]
    assert client.get("/api/incidents").json()["incidents"] == []
    assert 'backout_alerts_ingested_total{result="set_aside"} 2.0' in client.get("/metrics").text


def test_the_sane_range_is_a_setting(build: Callable[..., bootstrap.App], make_settings: Callable[..., Any],
                                     clock: Clock) -> None:
    """A capture older than a year is refused by default and accepted with a longer max_start_age
    (replaying old captures into a test instance)."""
    clock.now += timedelta(days=400)
    strict = build()
    with TestClient(strict.http) as client:
        assert post(client, payload("01")).status_code == 422
    lenient = build(make_settings(alertmanager=AlertmanagerSettings(
        auth="bearer", bearer_token=TOKEN, max_start_age=timedelta(days=800))))
    with TestClient(lenient.http) as client:
        assert post(client, payload("01")).json()["new"] == 2


def png_size(content: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(content)).size


def test_a_label_with_mathtext_is_drawn_as_plain_text(client: TestClient) -> None:
    """`$\\undefinedcmd$` as alert name and service: the chart, the page and the HTML export render,
    the label shown as written."""
    body = payload("01")
    for alert in body["alerts"]:
        alert["labels"] |= {"alertname": MATH, "service": MATH}
    assert post(client, body).status_code == 200
    chart = client.get("/api/incidents/INC-1/chart.png")
    assert chart.status_code == 200, chart.text
    assert png_size(chart.content) == (1200, 480)
    page = client.get("/incidents/INC-1")
    assert page.status_code == 200, page.text
    assert MATH in page.text
    exported = client.get("/api/incidents/INC-1/export", params={"format": "html"})
    assert (exported.status_code, exported.text) == (200, page.text)


def test_the_chart_draws_mathtext_characters_literally() -> None:
    """The drawing itself: title, labels and query keep their `$` and render to a PNG."""
    from bot.adapters.export.chart import figure, render_png
    from bot.domain.chart import ChartData, Marker

    start = datetime(2026, 11, 21, 22, 0, tzinfo=UTC)
    data = ChartData(f"INC-1: {MATH}", start, start + timedelta(minutes=30), f"sum({MATH})",
                     markers=[Marker(start + timedelta(minutes=5), "alert_firing", MATH)])
    [axes] = figure(data).axes
    assert [t.get_text() for t in axes.texts if t.get_gid()] == [MATH]
    assert png_size(render_png(data)) == (1200, 480)


@pytest.mark.parametrize("far", [datetime(9999, 12, 31, tzinfo=UTC), datetime(2, 1, 1, tzinfo=UTC)])
def test_far_dates_already_stored_still_chart_and_export(app: bootstrap.App, client: TestClient,
                                                         far: datetime) -> None:
    """Data stored before the check (an incident started at, and an alert of, 9999 or year 2): the
    chart frames the incident around when it opened, and the page and HTML export render."""
    assert post(client, payload("01")).status_code == 200

    def corrupt(tx: Any) -> None:
        incident = tx.incidents.get(1)
        tx.incidents.save(incident.model_copy(update={"started_at": far}))
        tx.alerts.add_many([Alert(fingerprint="0ddba11", starts_at=far, ends_at=far, status=AlertStatus.RESOLVED,
                                  labels={"alertname": "Far"}, annotations={}, incident_id=1,
                                  received_at=incident.opened_at)])

    app.ctx.store.run(corrupt)
    chart = client.get("/api/incidents/INC-1/chart.png")
    assert chart.status_code == 200, chart.text
    assert png_size(chart.content) == (1200, 480)
    for path, params in (("/incidents/INC-1", {}), ("/api/incidents/INC-1/export", {"format": "html"})):
        response = client.get(path, params=params)
        assert response.status_code == 200, (path, response.text)


def test_a_set_aside_alerts_name_shows_nul_as_stored_text() -> None:
    """Its name goes on the timeline: a NUL in it is U+2400, which PostgreSQL can store."""
    from bot.adapters.alertmanager.payload import parse_delivery

    body = with_starts("9999-12-31T00:00:00Z")
    body["alerts"][0]["labels"]["alertname"] = "a\x00b"
    parsed = parse_delivery(json.dumps(body).encode(), now=Clock()())
    assert [(a.index, a.name) for a in parsed.set_aside] == [(0, "a\u2400b")]
    assert len(parsed.alerts) == 1
