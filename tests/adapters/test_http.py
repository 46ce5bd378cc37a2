"""The HTTP interface: the webhook's bad-input answers, auth, the incident API and metrics."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from bot import bootstrap
from bot.config import AlertmanagerSettings, ServerSettings, Settings
from bot.domain.timeline import EventKind
from tests.conftest import AUTH, TOKEN, Clock, payload, payload_bytes
from tests.fakes.git import FakeGit
from tests.fakes.store import InMemoryStore

URL = "/webhooks/alertmanager"


def post(client: TestClient, body: bytes, headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return client.post(URL, content=body, headers={"Content-Type": "application/json",
                                                   **(AUTH if headers is None else headers)})


def test_a_delivery_opens_an_incident(client: TestClient) -> None:
    """A real payload is accepted and its incident is readable through the API."""
    response = post(client, payload_bytes("01"))
    assert response.status_code == 200
    assert response.json() == {"status": "accepted", "alerts": 2, "new": 2, "resolved": 0,
                               "duplicates": 0, "incidents": ["INC-1"], "set_aside": []}
    listed = client.get("/api/incidents").json()["incidents"]
    assert [(i["ref"], i["status"], i["service"]) for i in listed] == [("INC-1", "open", "checkout")]


@pytest.mark.parametrize("ref", ["1", "INC-1", "inc-1"])
def test_incident_ids_accept_both_forms(client: TestClient, ref: str) -> None:
    """`/api/incidents/1` and `/api/incidents/INC-1` are the same incident."""
    post(client, payload_bytes("01"))
    body = client.get(f"/api/incidents/{ref}").json()
    assert body["ref"] == "INC-1"
    assert len(body["alerts"]) == 2
    assert body["timeline"][0]["kind"] == "incident.opened"


def test_timeline_and_status_filter(client: TestClient) -> None:
    """The timeline endpoint lists events in order; ?status= filters the list."""
    for prefix in ("01", "02", "04", "05"):
        post(client, payload_bytes(prefix))
    timeline = client.get("/api/incidents/INC-1/timeline").json()["timeline"]
    assert [e["kind"] for e in timeline][-1] == "incident.resolved"
    from_alerts = [e for e in timeline if e["kind"].startswith(("alert.", "incident."))]
    assert {e["actor"] for e in from_alerts} == {"alertmanager"}
    assert "suspects.ranked" in [e["kind"] for e in timeline]
    resolved = client.get("/api/incidents", params={"status": "resolved"}).json()["incidents"]
    assert [i["ref"] for i in resolved] == ["INC-1"]


def test_unknown_and_malformed_ids(client: TestClient) -> None:
    """Unknown ids are 404, malformed ones 400, both as JSON errors."""
    missing = client.get("/api/incidents/INC-99")
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
    bad = client.get("/api/incidents/INC-x")
    assert (bad.status_code, bad.json()["error"]) == (400, "bad_request")
    wrong_status = client.get("/api/incidents", params={"status": "sleepy"})
    assert (wrong_status.status_code, wrong_status.json()["error"]) == (422, "invalid_request")


def test_malformed_json_is_400(client: TestClient) -> None:
    """A body that is not JSON is refused with 400 and a JSON error."""
    response = post(client, b'{"version": "4", ')
    assert response.status_code == 400
    assert response.json()["error"] == "malformed_json"


def test_wrong_shape_is_422_naming_the_field(client: TestClient) -> None:
    """A missing or wrong field is 422 and the detail names its path."""
    body = payload("01")
    del body["alerts"][1]["fingerprint"]
    body["alerts"][0]["startsAt"] = "yesterday"
    response = post(client, json.dumps(body).encode())
    assert response.status_code == 422
    locs = {item["loc"] for item in response.json()["detail"]}
    assert locs == {"alerts.1.fingerprint", "alerts.0.startsAt"}


@pytest.mark.parametrize("body", [b"[]", b'"text"', b"null", b'{"version": "3"}'])
def test_json_of_the_wrong_kind_is_422(client: TestClient, body: bytes) -> None:
    """Valid JSON that is not a version 4 payload is 422, never 500."""
    assert post(client, body).status_code == 422


def test_body_over_the_limit_is_413(
    make_settings: Callable[..., Settings], build: Callable[..., bootstrap.App]
) -> None:
    """Over max_body_bytes is refused, whether announced by Content-Length or streamed."""
    app = build(make_settings(server=ServerSettings(max_body_bytes=2048)))
    big = b'{"pad": "' + b"x" * 4096 + b'"}'
    with TestClient(app.http) as client:
        assert post(client, big).status_code == 413

        def chunks():  # type: ignore[no-untyped-def]
            for _ in range(8):
                yield b"x" * 512

        streamed = client.post(URL, content=chunks(), headers=AUTH)
        assert streamed.status_code == 413
        assert streamed.json()["error"] == "too_large"
        assert post(client, payload_bytes("01")).status_code == 200


def huge_delivery(count: int) -> bytes:
    """One group of `count` firing alerts (a fleet-wide alert), as Alertmanager sends it."""
    body = payload("01")
    template = body["alerts"][0]
    body["alerts"] = [{**template, "fingerprint": f"{n:016x}", "labels": {**template["labels"], "pod": f"p-{n}"}}
                      for n in range(count)]
    return json.dumps(body).encode()


def test_a_delivery_of_twelve_thousand_alerts_is_recorded_whole(
    make_settings: Callable[..., Settings], build: Callable[..., bootstrap.App]
) -> None:
    """Past ten thousand alerts (the body limit raised for it), a delivery is accepted and every
    alert stored in one incident, however it is parsed and written inside; its timeline says so
    once, with the total (it said so once per part of 500), and again nothing when it is resent."""
    body = huge_delivery(12_000)
    app = build(make_settings(server=ServerSettings(max_body_bytes=len(body) + 1)))
    with TestClient(app.http) as client:
        answer = post(client, body)
        assert answer.status_code == 200, answer.text[:300]
        assert (answer.json()["new"], answer.json()["incidents"]) == (12_000, ["INC-1"])
        assert post(client, body).json()["duplicates"] == 12_000
    assert app.ctx.store.run(lambda tx: tx.alerts.count_firing(1)) == 12_000
    firing = [e for e in app.ctx.store.read(lambda tx: tx.timeline.for_incident(1))
              if e.kind == EventKind.ALERT_FIRING.value]
    assert [e.data["count"] for e in firing] == [12_000]


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"},
    {"Authorization": "Bearer"}, {"Authorization": f"bearer {TOKEN}x"},
])
def test_missing_or_wrong_bearer_is_401(client: TestClient, headers: dict[str, str]) -> None:
    """Anything but the right bearer token is 401 with a challenge, and nothing is stored."""
    response = post(client, payload_bytes("01"), headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert client.get("/api/incidents").json()["incidents"] == []


def test_basic_auth(
    make_settings: Callable[..., Settings], build: Callable[..., bootstrap.App]
) -> None:
    """Basic auth accepts the right pair only."""
    settings = make_settings(alertmanager=AlertmanagerSettings(
        auth="basic", basic_username="am", basic_password="pw"))
    app = build(settings)

    def basic(pair: bytes) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(pair).decode()}

    with TestClient(app.http) as client:
        assert post(client, payload_bytes("01"), basic(b"am:pw")).status_code == 200
        assert post(client, payload_bytes("01"), basic(b"am:nope")).status_code == 401
        assert post(client, payload_bytes("01"), {"Authorization": "Basic !!!"}).status_code == 401


def test_storage_down_is_503_and_nothing_is_lost(
    make_settings: Callable[..., Settings], build: Callable[..., bootstrap.App]
) -> None:
    """When storage is unavailable the webhook answers 503 so Alertmanager retries."""
    store = InMemoryStore()
    app = build(make_settings(), store=store)
    with TestClient(app.http) as client:
        store.down = True
        response = post(client, payload_bytes("01"))
        assert (response.status_code, response.json()["error"]) == (503, "unavailable")
        store.down = False
        assert post(client, payload_bytes("01")).json()["new"] == 2


def test_unreachable_database_is_503(
    make_settings: Callable[..., Settings], build: Callable[..., bootstrap.App]
) -> None:
    """The real store maps a refused database connection to 503, and /readyz says why."""
    from bot.config import StorageSettings

    settings = make_settings(storage=StorageSettings(url="postgresql://backout@127.0.0.1:1/backout"))
    app = build(settings)
    with TestClient(app.http) as client:
        response = post(client, payload_bytes("01"))
        assert (response.status_code, response.json()["error"]) == (503, "unavailable")
        assert response.json()["detail"] == "storage is unavailable; retry later"
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["detail"].startswith("database unreachable")


def test_health_readiness_and_metrics(client: TestClient) -> None:
    """/healthz, /readyz (schema current) and /metrics with the webhook counters."""
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert re.search(r"schema at \d{4}$", ready.json()["detail"])
    post(client, payload_bytes("01"))
    post(client, payload_bytes("01"))
    post(client, b"nope")
    text = client.get("/metrics").text
    assert 'backout_webhook_requests_total{outcome="accepted"} 2.0' in text
    assert 'backout_webhook_requests_total{outcome="malformed"} 1.0' in text
    assert 'backout_alerts_ingested_total{result="duplicate"} 2.0' in text
    assert 'backout_incidents_opened_total{how="new"} 1.0' in text
    latency = 'backout_http_request_duration_seconds_count{method="POST",route="/webhooks/alertmanager"}'
    assert f"{latency} 3.0" in text
    assert 'backout_build_info{python="' in text
    assert 'backout_incidents_active{status="open"} 1.0' in text
    assert 'backout_incidents_active{status="acknowledged"} 0.0' in text
    assert 'backout_outbox_pending{queue="follow_ups"}' in text
    assert "_created" not in text
    assert "backout_github" not in text  # GitHub is not configured here


def test_readyz_reports_an_old_schema(
    make_settings: Callable[..., Settings], build: Callable[..., bootstrap.App]
) -> None:
    """A database behind the code's migrations is not ready."""
    app = build(make_settings())
    assert app.engine is not None
    with app.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'old'")
    with TestClient(app.http) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert "backout db upgrade" in response.json()["detail"]


def test_unknown_routes_are_json_errors(client: TestClient) -> None:
    """Even a 404 or 405 is `{"error", "detail"}`."""
    assert client.get("/nowhere").json()["error"] == "not_found"
    assert client.get(URL).json()["error"] == "method_not_allowed"


def test_suspects_endpoint_answers_the_documented_shape(
    build: Callable[..., bootstrap.App], fake_git: FakeGit, clock: Clock
) -> None:
    """GET /api/incidents/{id}/suspects: status, confident, reason and suspects best first."""
    from datetime import timedelta

    from bot.domain.changes import Change, FileChange

    fake_git.changes["gitops"] = [Change(
        repo="gitops", sha="a" * 40, parents=("b" * 40,), author="Dev <d@example.com>",
        committed_at=datetime(2026, 11, 21, 22, 10, tzinfo=UTC), subject="checkout: bump (#5)",
        files=(FileChange(path="apps/checkout/deploy.yaml", status="M"),), additions=1, deletions=1,
        pr_number=5, image_bump=True)]
    clock.now += timedelta(minutes=1)
    with TestClient(build().http) as client:
        post(client, payload_bytes("01"))
        answer = client.get("/api/incidents/INC-1/suspects").json()
    assert answer["status"] == "ranked"
    assert answer["confident"] is True
    [suspect] = answer["suspects"]
    assert set(suspect) >= {"sha", "repo", "subject", "applied_at", "score", "reasons"}
    assert suspect["sha"] == "a" * 40
    assert suspect["reasons"][0].startswith("applied 8m before the incident started")


def test_suspects_are_pending_before_ranking(build: Callable[..., bootstrap.App]) -> None:
    """Until a ranking is stored the answer is `pending`, never an empty "no suspect"."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    busy, release = ThreadPoolExecutor(max_workers=1), threading.Event()
    busy.submit(release.wait, 30)  # the ranking waits behind this until the answer is read
    try:
        with TestClient(build(work_executor=busy).http) as client:
            post(client, payload_bytes("01"))
            answer = client.get("/api/incidents/1/suspects").json()
            release.set()
    finally:
        release.set()
    assert (answer["status"], answer["suspects"]) == ("pending", [])


def test_export_endpoint_in_both_formats(client: TestClient) -> None:
    """?format=json gives the versioned document; ?format=markdown the review page's text."""
    post(client, payload_bytes("01"))
    document = client.get("/api/incidents/INC-1/export").json()
    assert document["schema_version"] == 1
    markdown = client.get("/api/incidents/1/export", params={"format": "markdown"})
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert markdown.text.startswith("# INC-1: HighErrorRate on checkout")
    bad = client.get("/api/incidents/1/export", params={"format": "pdf"})
    assert (bad.status_code, bad.json()["error"]) == (422, "invalid_request")


def test_the_incident_page_shows_alert_text_literally(client: TestClient) -> None:
    """GET /incidents/INC-1: the review page, escaped, with a CSP that allows no script."""
    post(client, payload_bytes("01"))
    page = client.get("/incidents/INC-1")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "<!channel>" not in page.text
    assert "&lt;!channel&gt;" in page.text
    assert "<h2>Timeline</h2>" in page.text
    assert client.get("/api/incidents/1/export", params={"format": "html"}).text == page.text
    assert client.get("/incidents/INC-9").status_code == 404


@pytest.mark.parametrize(("body", "status"), [
    (b"[" * 5000 + b"]" * 5000, 400),  # nested thousands deep
    (b'{"version": "4", "n": ' + b"9" * 5000 + b"}", 400),  # an integer of thousands of digits
    (json.dumps({**payload("01"), "alerts": [{**payload("01")["alerts"][0],
                                              "startsAt": "9999-12-31T23:00:00-05:00"}]}).encode(), 422),
    (json.dumps(payload("01")).replace('"checkout"', '"\\ud800"', 1).encode(), 400),  # a lone surrogate: not text
    (json.dumps({**payload("01"), "alerts": [{**payload("01")["alerts"][0],
                                              "labels": {"KEY": "x"}}]}).replace('"KEY"', '"\\ud800"').encode(), 400),
    (b"", 400),
    (b'{"version": "4", "groupKey": "g", "status": "firing", "alerts": "x"}', 422),
])
def test_hostile_bodies_are_clear_client_errors(client: TestClient, body: bytes, status: int) -> None:
    """Each answers 400 or 422 with a JSON error, never 500 (Alertmanager would retry it forever)."""
    response = post(client, body)
    assert response.status_code == status, response.text
    assert response.json()["error"] in {"malformed_json", "invalid_payload"}


def test_a_nul_in_a_label_is_stored_visibly(client: TestClient) -> None:
    """NUL (which PostgreSQL text cannot hold) is stored as U+2400 on every database."""
    data = payload("01")
    data["alerts"][0]["annotations"]["summary"] = "bad\x00byte"
    assert post(client, json.dumps(data).encode()).status_code == 200
    alert = client.get("/api/incidents/INC-1").json()["alerts"][0]
    assert "bad\u2400byte" in json.dumps(alert, ensure_ascii=False)


def test_unsigned_and_unreadable_slack_requests_are_client_errors(
    build: Callable[..., bootstrap.App], make_settings: Callable[..., Settings]
) -> None:
    """No signature headers: 401 saying what is missing; a signed payload that is not JSON: 400."""
    import hashlib
    import hmac
    import time

    from bot.config import SlackSettings

    secret = "s" * 32
    settings = make_settings(chat={"kind": "slack"}, slack=SlackSettings(
        mode="http", bot_token="xoxb-test", signing_secret=secret, api_url="http://127.0.0.1:9/api/",
        channel="#incidents"))
    with TestClient(build(settings).http) as slack_client:
        bare = slack_client.post("/slack/events", content=b"payload=x")
        assert bare.status_code == 401
        assert "missing or malformed Slack signature headers" in bare.json()["detail"]
        body = "payload=%7Bnot-json"
        stamp = str(int(time.time()))
        digest = hmac.new(secret.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
        signed = slack_client.post("/slack/events", content=body, headers={
            "X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}",
            "Content-Type": "application/x-www-form-urlencoded"})
        assert signed.status_code == 400


def test_validation_errors_lose_pydantics_value_error_prefix() -> None:
    """A validator's ValueError reaches the sender in its own words, not "Value error, ..."."""
    from pydantic import BaseModel, ValidationError, field_validator

    from bot.entrypoints.http_common import validation_detail

    class Body(BaseModel):
        since: str

        @field_validator("since")
        @classmethod
        def _duration(cls, value: str) -> str:
            raise ValueError(f"not a duration: {value!r}")

    with pytest.raises(ValidationError) as caught:
        Body(since="soon")
    assert validation_detail(caught.value) == [{"loc": "since", "msg": "not a duration: 'soon'"}]
