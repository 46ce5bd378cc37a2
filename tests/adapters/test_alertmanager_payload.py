"""Every captured Alertmanager delivery parses, and maps to our types as documented."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.adapters.alertmanager.payload import AmPayload, to_delivery
from bot.domain.models import AlertStatus
from tests.conftest import delivery, payload, payload_names


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
