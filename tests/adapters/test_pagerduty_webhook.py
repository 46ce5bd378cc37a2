"""PagerDuty's webhook (v3) on the running app: signatures (good, bad, rotated), incidents PagerDuty
raised open a ranked Backout incident and follow it, replays change nothing, and what PagerDuty did
is never sent back to it."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bot import bootstrap
from bot.config import PagerDutySettings
from bot.domain.changes import Change, FileChange
from bot.domain.models import Actor, IncidentStatus
from bot.domain.paging import Page
from bot.domain.timeline import EventKind
from bot.services.paging import run_pager
from tests.conftest import Clock
from tests.fakes.git import FakeGit

SECRET = "pd-webhook-secret"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pagerduty"


class NoPager:
    """A pager that records what it is asked to send."""

    sends = True

    def __init__(self) -> None:
        self.sent: list[Page] = []

    def send(self, page: Page) -> None:
        self.sent.append(page)

    def on_call(self, **_: object) -> list[object]:
        return []


def body(event_type: str = "incident.triggered", *, event_id: str = "E1", key: str | None = None,
         agent: str | None = None, fixture: str = "incident-triggered.json") -> dict[str, Any]:
    data: dict[str, Any] = copy.deepcopy(json.loads((FIXTURES / fixture).read_text()))
    data["event"].update({"event_type": event_type, "id": event_id})
    if key is not None:
        data["event"]["data"]["incident_key"] = key
    if agent is not None:
        data["event"]["agent"] = {"id": "PUSR001", "type": "user_reference", "summary": agent}
    return data


def sign(raw: bytes, secret: str = SECRET) -> str:
    return "v1=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def timeline(client: TestClient) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = client.get("/api/incidents/1/timeline").json()["timeline"]
    return events


def post(client: TestClient, data: dict[str, Any], *, signature: str | None = None) -> Any:
    raw = json.dumps(data).encode()
    return client.post("/webhooks/pagerduty", content=raw,
                       headers={"X-PagerDuty-Signature": signature or sign(raw), "Content-Type": "application/json"})


@pytest.fixture
def pager() -> NoPager:
    return NoPager()


@pytest.fixture
def app(build: Callable[..., bootstrap.App], make_settings: Callable[..., Any], clock: Clock,
        pager: NoPager) -> bootstrap.App:
    clock.now = datetime(2026, 11, 21, 22, 22, 10, tzinfo=UTC)
    git = FakeGit({"gitops": [Change(
        repo="gitops", sha="b" * 40, parents=("0" * 40,), author="Dev <dev@example.com>",
        committed_at=clock.now - timedelta(minutes=12), subject="checkout: image 1.4.2",
        files=(FileChange(path="apps/checkout/deploy.yaml", status="M"),), additions=1, deletions=1,
        image_bump=True)]})
    return build(make_settings(pagerduty=PagerDutySettings(webhook_secret=SECRET)), git=git, pager=pager)


@pytest.fixture
def client(app: bootstrap.App) -> Iterator[TestClient]:
    with TestClient(app.http) as test_client:
        yield test_client


def test_a_good_signature_among_rotated_ones_is_accepted(client: TestClient) -> None:
    """During a rotation PagerDuty sends two signatures: one matching is enough."""
    raw = json.dumps(body("pagey.ping", fixture="pagey-ping.json")).encode()
    rotated = f"{sign(raw, 'the-old-secret')}, {sign(raw)}"
    answer = client.post("/webhooks/pagerduty", content=raw, headers={"X-PagerDuty-Signature": rotated})
    assert answer.status_code == 200
    assert answer.json()["status"] == "ignored"


@pytest.mark.parametrize("signature", [None, "", "v1=" + "0" * 64, "v0=abc", "sha256=abc"])
def test_a_wrong_or_missing_signature_is_refused_before_the_body_is_read(client: TestClient,
                                                                         signature: str | None) -> None:
    """401 whatever the body (here not even JSON): nothing is parsed or recorded."""
    headers = {"X-PagerDuty-Signature": signature} if signature is not None else {}
    answer = client.post("/webhooks/pagerduty", content=b"{not json", headers=headers)
    assert answer.status_code == 401
    assert answer.json()["error"] == "unauthorized"
    assert client.get("/api/incidents").json()["incidents"] == []


def test_a_webhook_without_a_secret_configured_is_refused(build: Callable[..., bootstrap.App]) -> None:
    """No pagerduty.webhook_secret: every delivery is refused, saying which setting is missing."""
    with TestClient(build().http) as bare:
        raw = json.dumps(body()).encode()
        answer = bare.post("/webhooks/pagerduty", content=raw, headers={"X-PagerDuty-Signature": sign(raw)})
    assert answer.status_code == 401
    assert "webhook_secret_file" in answer.json()["detail"]


def test_an_incident_pagerduty_raised_opens_a_ranked_incident_and_replays_change_nothing(
        client: TestClient) -> None:
    """incident.triggered on the playbook's service: a Backout incident, investigated and ranked like
    an alert's; the same event again (PagerDuty retries) is a duplicate."""
    first = post(client, body())
    assert first.status_code == 202
    assert first.json()["incidents"] == ["INC-1"]
    incident = client.get("/api/incidents/1").json()
    assert incident["playbook"] == "checkout"
    assert "PagerDuty #4211: Checkout error rate above 5%" in incident["title"]
    suspects = client.get("/api/incidents/1/suspects").json()
    assert suspects["status"] == "ranked"
    assert suspects["suspects"][0]["sha"] == "b" * 40
    events = len(timeline(client))
    again = post(client, body())
    assert (again.status_code, again.json()["status"]) == (200, "duplicate")
    assert len(client.get("/api/incidents").json()["incidents"]) == 1
    assert len(timeline(client)) == events


def test_pagerduty_acknowledging_and_resolving_its_incident_does_the_same_here_and_is_not_echoed(
        client: TestClient, app: bootstrap.App, pager: NoPager, clock: Clock) -> None:
    """Acknowledged in PagerDuty: the incident is acknowledged (actor pagerduty), once; resolved:
    resolved; the pager's outbox sends none of it back."""
    post(client, body())
    ack = body("incident.acknowledged", event_id="E2", agent="Ada Lovelace")
    assert post(client, ack).status_code == 202
    assert post(client, ack).json()["status"] == "duplicate"
    incident = client.get("/api/incidents/1").json()
    assert incident["status"] == IncidentStatus.ACKNOWLEDGED.value
    acks = [e for e in timeline(client)
            if e["kind"] == EventKind.INCIDENT_ACKNOWLEDGED.value]
    assert [(e["actor"], e["actor_id"]) for e in acks] == [(Actor.PAGERDUTY.value, "Ada Lovelace")]
    assert post(client, body("incident.resolved", event_id="E3")).status_code == 202
    assert client.get("/api/incidents/1").json()["status"] == IncidentStatus.RESOLVED.value
    report = run_pager(store=app.ctx.store, pager=pager, playbooks=app.ctx.playbooks, now=clock.now)
    assert report.taken >= 2  # the acknowledgement and the resolution, taken as nothing to send
    assert pager.sent == []


def test_the_page_backout_sent_is_followed_on_its_incident_not_opened_again(client: TestClient) -> None:
    """PagerDuty's incident for Backout's own page (key backout:<id>): noted on that incident's
    timeline and its acknowledgement acknowledges it; no second incident."""
    raw_alert = body()
    raw_alert["event"]["data"]["service"]["id"] = "POTHER1"  # no playbook: refused as unknown below
    assert post(client, raw_alert).json()["detail"].startswith("no playbook has pagerduty.service_id POTHER1")
    post(client, body(event_id="E0"))  # INC-1, raised by PagerDuty on checkout
    own = body(event_id="E5", key="backout:1")
    answer = post(client, own)
    assert answer.json()["incidents"] == ["INC-1"]
    post(client, body("incident.acknowledged", event_id="E6", key="backout:1", agent="Grace Hopper"))
    assert len(client.get("/api/incidents").json()["incidents"]) == 1
    texts = [e["text"] for e in timeline(client)
             if e["kind"] == EventKind.PAGER_INCIDENT.value]
    assert texts == ["PagerDuty #4211 triggered in PagerDuty",
                     "PagerDuty #4211 acknowledged in PagerDuty by Grace Hopper"]
    assert client.get("/api/incidents/1").json()["status"] == IncidentStatus.ACKNOWLEDGED.value
