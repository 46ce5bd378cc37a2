"""Reading needs a credential: bearer tokens for the API, signed expiring links for the pages."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from bot import bootstrap
from bot.config import ApiSettings, ServerSettings, Settings
from tests.conftest import AUTH, Clock, payload_bytes

TOKEN = "read-token-abcdefghijklmnop"
OTHER = "second-token-abcdefghijklmnop"


@pytest.fixture
def app(build: Callable[..., bootstrap.App], make_settings: Callable[..., Settings]) -> bootstrap.App:
    built = build(make_settings(api=ApiSettings(tokens=[TOKEN, OTHER], link_secret="k" * 32),
                                server=ServerSettings(public_url="https://backout.example")))
    with TestClient(built.http) as client:
        client.post("/webhooks/alertmanager", content=payload_bytes("01"), headers=AUTH)
    return built


@pytest.mark.parametrize("path", ["/api/incidents", "/api/incidents/INC-1", "/api/incidents/INC-1/suspects",
                                  "/api/incidents/INC-1/timeline", "/api/incidents/INC-1/export",
                                  "/api/incidents/INC-1/export?format=markdown", "/incidents/INC-1",
                                  "/api/report/accuracy", "/incidents", "/api/incidents/INC-1/chart.png",
                                  "/api/incidents/INC-1/export?format=png"])
def test_every_read_needs_a_token_and_a_refusal_tells_nothing(app: bootstrap.App, path: str) -> None:
    """401 without or with a wrong token (saying what is missing, no incident data); 200 with either token."""
    with TestClient(app.http) as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
            refused = client.get(path, headers=headers)
            assert refused.status_code == 401
            assert set(refused.json()) == {"error", "detail"}
            assert "checkout" not in refused.text
        for token in (TOKEN, OTHER):
            assert client.get(path, headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_health_readiness_and_metrics_stay_open(app: bootstrap.App) -> None:
    """Probes and Prometheus need no token (unless api.metrics_public is false)."""
    with TestClient(app.http) as client:
        for path in ("/healthz", "/readyz", "/metrics"):
            assert client.get(path).status_code == 200


def test_metrics_can_be_closed(build: Callable[..., bootstrap.App], make_settings: Callable[..., Settings]) -> None:
    """api.metrics_public: false puts /metrics behind the token too."""
    closed = build(make_settings(api=ApiSettings(tokens=[TOKEN], metrics_public=False)))
    with TestClient(closed.http) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_posted_links_open_their_page_until_they_expire(app: bootstrap.App, clock: Clock) -> None:
    """The page link carries a signed token: it opens that incident's page only, and only for 30 days."""
    link = app.ctx.signed_page_url(1)
    assert link is not None
    assert link.startswith("https://backout.example/incidents/INC-1?t=")
    query = link.split("/incidents/INC-1", 1)[1]
    with TestClient(app.http) as client:
        assert client.get(f"/incidents/INC-1{query}").status_code == 200
        assert client.get(f"/incidents/INC-2{query}").status_code == 401, "a link opens its own incident only"
        assert client.get(f"/api/incidents/INC-1{query}").status_code == 401, "a link is not an API token"
        forged = query[:-4] + "0000"
        assert client.get(f"/incidents/INC-1{forged}").status_code == 401
        clock.now += timedelta(days=31)
        expired = client.get(f"/incidents/INC-1{query}")
        assert expired.status_code == 401
        assert "expired" in expired.json()["detail"]


def test_no_token_configured_refuses_reads_with_the_reason(
    build: Callable[..., bootstrap.App], make_settings: Callable[..., Settings]
) -> None:
    """The default (bearer) with no token: reads are refused and the answer names the setting."""
    bare = build(make_settings(api=ApiSettings()))
    with TestClient(bare.http) as client:
        answer = client.get("/api/incidents")
    assert answer.status_code == 401
    assert "api.tokens" in answer.json()["detail"]


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/api/incidents/INC-1/ack", {}), ("POST", "/api/incidents/INC-1/resolve", {"note": "x"}),
    ("POST", "/api/incidents/INC-1/notes", {"text": "x"}), ("GET", "/api/incidents/INC-1/rollback", None),
    ("POST", "/api/incidents/INC-1/rollback", {"commit": "a" * 40}),
])
def test_every_write_needs_a_token_and_changes_nothing_without(app: bootstrap.App, method: str, path: str,
                                                               body: dict[str, str] | None) -> None:
    with TestClient(app.http) as client:
        before = client.get("/api/incidents/1/timeline", headers={"Authorization": f"Bearer {TOKEN}"}).json()
        refused = client.request(method, path, json=body)
        assert refused.status_code == 401
        after = client.get("/api/incidents/1/timeline", headers={"Authorization": f"Bearer {TOKEN}"}).json()
        assert after == before


def test_a_rollback_is_confirmed_with_the_full_sha_the_plan_showed(app: bootstrap.App) -> None:
    """A sha prefix, a missing commit or an unknown field: 422 before anything runs."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with TestClient(app.http) as client:
        for body in ({}, {"commit": "abc1234"}, {"commit": "a" * 40, "yes": True}):
            answer = client.post("/api/incidents/INC-1/rollback", json=body, headers=headers)
            assert answer.status_code == 422, body
        assert client.post("/api/incidents/INC-1/notes", json={"text": ""}, headers=headers).status_code == 422
        acked = client.post("/api/incidents/INC-1/ack", json={"by": "cli:alice"}, headers=headers)
        assert acked.json()["changed"] is True
        assert client.post("/api/incidents/INC-1/ack", headers=headers).json()["changed"] is False
        acked_event, lead = client.get("/api/incidents/1/timeline", headers=headers).json()["timeline"][-2:]
        assert (acked_event["kind"], acked_event["actor_id"], acked_event["who"]) == (
            "incident.acknowledged", "token-1", "token-1 on behalf of cli:alice")
        assert (lead["kind"], lead["text"]) == ("incident.role", "lead: cli:alice, the first to acknowledge")


def test_the_index_lists_incidents_with_links_that_open_their_pages(app: bootstrap.App) -> None:
    """GET / points at /incidents; the index (behind the token) links each incident's page with
    a signed link that opens it in a browser without a token."""
    import re

    with TestClient(app.http) as client:
        home = client.get("/")
        assert home.status_code == 200
        assert 'href="/incidents"' in home.text
        index = client.get("/incidents", headers={"Authorization": f"Bearer {TOKEN}"})
        assert index.status_code == 200
        assert "default-src 'none'" in index.headers["content-security-policy"]
        assert "HighErrorRate on checkout" in index.text
        [link] = re.findall(r'href="(/incidents/INC-1\?t=[^"]+)"', index.text)
        assert client.get(link.replace("&amp;", "&")).status_code == 200
