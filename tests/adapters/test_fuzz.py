"""Fuzzing the HTTP interface and the payload parser: whatever arrives, never a 5xx.

Schemathesis reads the app's own OpenAPI document (the webhook body is described there) and
sends what it generates from it, valid and not; Hypothesis throws arbitrary JSON-like values
at the payload parser. Both runs are bounded so the suite stays fast."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from starlette.testclient import TestClient

from bot import bootstrap
from bot.adapters.alertmanager.payload import parse_delivery
from bot.config import ApiSettings, Settings
from tests.conftest import AUTH

API_TOKEN = "fuzz-api-token-0123456789"


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
