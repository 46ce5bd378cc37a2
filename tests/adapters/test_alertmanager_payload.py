"""Every captured Alertmanager delivery parses, and maps to our types as documented."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from bot.adapters.alertmanager.payload import AmPayload, parse_delivery, parse_large_delivery, to_delivery
from bot.domain.models import AlertStatus, Delivery
from tests.conftest import delivery, payload, payload_bytes, payload_names


@pytest.mark.parametrize("name", payload_names())
def test_every_fixture_parses(name: str) -> None:
    """Each real payload validates and keeps every alert."""
    body = payload(name[:2])
    mapped = to_delivery(AmPayload.model_validate(body))
    assert len(mapped.alerts) == len(body["alerts"])
    assert mapped.group_key == body["groupKey"]


def test_zero_end_time_means_still_firing_and_nanoseconds_are_kept_to_micro() -> None:
    """`0001-01-01T00:00:00Z` becomes None; nanosecond start times parse in UTC."""
    first = delivery("01").alerts[0]
    assert first.ends_at is None
    assert first.starts_at == datetime(2026, 11, 21, 22, 20, 22, 313008, tzinfo=UTC)


def test_resolved_alert_keeps_its_end_time() -> None:
    """A resolved alert carries endsAt."""
    [alert] = delivery("04").alerts
    assert alert.status is AlertStatus.RESOLVED
    assert alert.ends_at == datetime(2026, 11, 21, 22, 21, 14, tzinfo=UTC)


def test_untrusted_annotations_are_kept_verbatim() -> None:
    """Mrkdwn and URLs in annotations are data: kept as they are, to be escaped when shown."""
    annotations = delivery("01").alerts[0].annotations
    assert annotations["description"] == "*bold* <!channel> <https://evil.example|click>"
    assert annotations["runbook_url"] == "http://169.254.169.254/latest/meta-data/"


def test_newer_fields_are_ignored_but_unknown_versions_are_not() -> None:
    """Forward compatible on extra fields, strict on the version."""
    body = payload("01") | {"someNewField": 1}
    AmPayload.model_validate(body)
    with pytest.raises(ValueError, match="version"):
        AmPayload.model_validate(payload("01") | {"version": "5"})


def test_parsed_from_bytes_nul_is_shown_everywhere_and_an_escaped_backslash_is_not_nul() -> None:
    """NUL in a key, a value, the group key: U+2400. The six characters `\\u0000` written with
    an escaped backslash are text, kept as they are."""
    body = payload("01")
    body["groupKey"] = "g\x00"
    body["alerts"][0]["labels"]["k\x00"] = "v\x00"
    body["alerts"][1]["annotations"]["summary"] = "\\u0000 is how JSON writes NUL"
    parsed = parse_delivery(json.dumps(body).encode())
    assert parsed.group_key == "g\u2400"
    assert parsed.alerts[0].labels["k\u2400"] == "v\u2400"
    assert parsed.alerts[1].annotations["summary"] == "\\u0000 is how JSON writes NUL"
    assert parsed == parse_delivery(json.dumps(body, ensure_ascii=False).encode())


@pytest.mark.parametrize("text", ["\\ud800", "\\udc00", "x\\ud83dy"])
def test_a_lone_surrogate_is_not_json(text: str) -> None:
    """JSON may spell half a character; it is not text either database can store: refused."""
    body = json.dumps(payload("01")).replace('"checkout"', f'"{text}"', 1).encode()
    with pytest.raises(ValidationError) as caught:
        parse_delivery(body)
    assert caught.value.errors()[0]["type"] == "json_invalid"


LARGE_CASES = [
    *[payload_bytes(name[:2]) for name in payload_names()],
    b'{"version": "4", "groupKey": "g", "status": "firing", "alerts": []}',
    b'{"version": "4", "groupKey": "g", "status": "firing", "alerts": "no"}',
    b'{"version": "4", "groupKey": "g", "status": "firing"}',
    b'{"version": "4", "groupKey": "g", "status": "firing", "alerts": [], }',
    b'{"version": "4", "groupKey": "g", "status": "firing", "alerts": [{"status": "firing"}]}',
    b'{"version": "4", "groupKey": "g", "status": "firing", "alerts": [NaN]}',
    b'{"version": "4", "groupKey": "g\\ud800", "status": "firing", "alerts": []}',
    b'{"version": "4", "groupKey": "g", "status": "firing", "alerts": []} x',
    b'[1, 2]',
    b'',
]


@pytest.mark.parametrize("body", LARGE_CASES)
def test_a_large_body_parses_as_a_small_one_does(body: bytes) -> None:
    """Alert by alert or in one call: the same delivery, or the same error."""
    def outcome(parse: Callable[[bytes], Delivery]) -> Any:
        try:
            return parse(body)
        except ValidationError as exc:
            return [(e["type"], e["loc"]) for e in exc.errors()]

    assert outcome(parse_large_delivery) == outcome(parse_delivery)
