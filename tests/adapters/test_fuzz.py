"""Fuzzing the HTTP interface and the payload parser: whatever arrives, never a 5xx.

Schemathesis reads the app's own OpenAPI document (the webhook body is described there) and
sends what it generates from it, valid and not; Hypothesis throws arbitrary JSON-like values
at the payload parser. Both runs are bounded so the suite stays fast."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from starlette.testclient import TestClient

from bot import bootstrap
from bot.adapters.alertmanager.payload import parse_delivery
from bot.config import (
    ApiSettings,
    ArgoCDSettings,
    FluxSettings,
    GithubSettings,
    GitlabSettings,
    PagerDutySettings,
    Settings,
    SlackSettings,
    StorageSettings,
)
from bot.entrypoints.serving import serve_in_thread
from tests.adapters.hostile import Credentials, Hostile, requests
from tests.conftest import AUTH, TOKEN, payload_bytes
from tests.fakes.slack import FakeSlack
from tests.integration.processes import Postgres

API_TOKEN = "fuzz-api-token-0123456789"
CREDENTIALS = Credentials(api_token=API_TOKEN, alertmanager_token=TOKEN, flux_key="flux-key-0123456789",
                          argocd_token="argo-token-0123456789", slack_secret="s" * 32,
                          pagerduty_secret="pd-secret-0123456789", github_secret="gh-secret-0123456789",
                          gitlab_token="gl-token-0123456789")


@pytest.fixture
def http_app(build: Callable[..., bootstrap.App], make_settings: Callable[..., Settings]) -> Iterator[Any]:
    app = build(make_settings(api=ApiSettings(tokens=[API_TOKEN])))
    with TestClient(app.http):  # runs the app's lifespan (the ingest writer)
        yield app.http


def test_no_request_the_schema_allows_or_not_gets_a_server_error(http_app: Any) -> None:
    """Every operation in the OpenAPI document, generated bodies, paths and queries (schemathesis'
    strategies, driven by Hypothesis here): the answer is never a 5xx."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", http_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert any(op.path == "/webhooks/alertmanager" for op in operations)
    strategies = [op.as_strategy(generation_mode=mode) for op in operations for mode in schemathesis.GenerationMode]

    @given(case=st.one_of(strategies))
    @settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "300")), deadline=None,
              suppress_health_check=list(HealthCheck), database=None)
    def check(case: Any) -> None:
        token = AUTH if case.path == "/webhooks/alertmanager" else {"Authorization": f"Bearer {API_TOKEN}"}
        response = case.call(headers=token)
        assert response.status_code < 500, (case.method, case.path, response.text[:300])

    check()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
alerts = st.fixed_dictionaries({
    "status": st.sampled_from(["firing", "resolved", "x"]),
    "labels": st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=5),
    "annotations": st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=3),
    "startsAt": st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()) | st.text(max_size=30),
    "endsAt": st.just("0001-01-01T00:00:00Z") | st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    "fingerprint": st.text(min_size=1, max_size=20),
}, optional={"generatorURL": st.text(max_size=30), "extra": json_values})
payloads = st.fixed_dictionaries({
    "version": st.sampled_from(["4", "3"]), "groupKey": st.text(max_size=20),
    "status": st.sampled_from(["firing", "resolved"]), "alerts": st.lists(alerts, max_size=4),
}, optional={"receiver": st.text(max_size=10), "commonLabels": json_values, "truncatedAlerts": json_values})


@given(payloads | json_values)
@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "300")), deadline=None)
def test_the_parser_refuses_or_accepts_but_never_crashes(raw: Any) -> None:
    """Arbitrary JSON: a ValidationError (a 422) or a delivery whose text every database can store."""
    try:
        delivery = parse_delivery(json.dumps(raw).encode())
    except ValidationError:
        return
    for alert in delivery.alerts:
        for text in [*alert.labels, *alert.labels.values(), *alert.annotations.values()]:
            assert "\x00" not in text
            text.encode("utf-8")
        assert alert.starts_at.tzinfo is not None


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[Postgres]:
    server = Postgres().start()  # skips (fails under CI) without the server binaries
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=[pytest.mark.integration, pytest.mark.postgres])])
def storage(request: pytest.FixtureRequest, tmp_path: Any) -> StorageSettings:
    if request.param == "sqlite":
        return StorageSettings(url=f"sqlite:///{tmp_path / 'hostile.db'}")
    server: Postgres = request.getfixturevalue("postgres_server")
    return StorageSettings(url=server.url)


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack().serving() as fake:
        yield fake


def test_no_hostile_request_gets_a_server_error(
    build: Callable[..., bootstrap.App], make_settings: Callable[..., Settings], storage: StorageSettings,
    slack: FakeSlack,
) -> None:
    """Every hostile body, header and query of `hostile.py` against every route, on SQLite and on a real
    PostgreSQL: a 4xx or an answer; never a 5xx (Alertmanager and Flux retry those or drop the rest)."""
    settings = make_settings(
        storage=storage, api=ApiSettings(tokens=[API_TOKEN]),
        flux=FluxSettings(hmac_key=CREDENTIALS.flux_key), argocd=ArgoCDSettings(token=CREDENTIALS.argocd_token),
        pagerduty=PagerDutySettings(webhook_secret=CREDENTIALS.pagerduty_secret),
        github=GithubSettings(webhook_secret=CREDENTIALS.github_secret),
        gitlab=GitlabSettings(webhook_token=CREDENTIALS.gitlab_token),
        chat={"kind": "slack"}, slack=SlackSettings(mode="http", bot_token="xoxb-test", channel="#incidents",
                                                    signing_secret=CREDENTIALS.slack_secret,
                                                    api_url=f"{slack.base_url}/api/"))
    if storage.url.startswith("postgresql"):
        bootstrap.upgrade_database(settings)
    with serve_in_thread(build(settings).http) as url, httpx.Client(
            base_url=url, timeout=60, limits=httpx.Limits(max_keepalive_connections=0)) as client:
        opened = client.post("/webhooks/alertmanager", content=payload_bytes("01"), headers=AUTH)
        assert opened.json()["incidents"] == ["INC-1"], opened.text
        sent = requests(CREDENTIALS)
        failures = [f"{case.name}: {answer}" for case in sent if (answer := _server_error(case, client))]
        timeline = client.get("/api/incidents/INC-1/timeline", headers={"Authorization": f"Bearer {API_TOKEN}"})
        # Stored, with NUL shown as U+2400: nothing half-stored and nothing lost.
        assert "nul\u2400inside" in timeline.content.decode(), timeline.text[:300]
    assert not failures, f"{len(failures)} of {len(sent)} got a 5xx or not the status expected:\n" + "\n".join(failures)


def _server_error(case: Hostile, client: httpx.Client) -> str | None:
    """What went wrong with the answer to `case`, or None for the status it expects, else a 4xx or a success."""
    try:
        answer = case.send(client)
    except httpx.TransportError as exc:
        return f"no answer: {exc!r}"
    wrong = answer.status_code >= 500 or (case.expect is not None and answer.status_code != case.expect)
    return f"{answer.status_code} {answer.text[:120]}" if wrong else None
