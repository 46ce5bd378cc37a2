"""Pure domain rules: durations, ids, severities, the state machine and playbook matching."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from bot.domain.durations import format_duration, parse_duration
from bot.domain.errors import Conflict, InvalidInput
from bot.domain.incidents import transition
from bot.domain.models import Incident, IncidentStatus, Severity, parse_incident_ref
from bot.domain.playbooks import ActionMode, Playbook, find_playbook

NOW = datetime(2026, 11, 21, 22, 0, tzinfo=UTC)


@pytest.mark.parametrize(("text", "expected"), [
    ("30s", timedelta(seconds=30)), ("5m", timedelta(minutes=5)), ("6h", timedelta(hours=6)),
    ("1h30m", timedelta(minutes=90)), ("2d", timedelta(days=2)), (45, timedelta(seconds=45)),
    ("250ms", timedelta(milliseconds=250)),
])
def test_durations_parse_the_prometheus_way(text: object, expected: timedelta) -> None:
    """Durations accept Prometheus-style units and plain seconds."""
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "5", "5x", "m5", "1h 30m", "-5m", -1, True, None, "9" * 30 + "d"])
def test_bad_durations_are_refused(text: object) -> None:
    """Anything that is not a clean duration is an error, not a guess."""
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_durations_format_back() -> None:
    """Formatting gives the shortest text that parses to the same value."""
    assert format_duration(timedelta(hours=1, minutes=30)) == "1h30m"
    assert parse_duration(format_duration(timedelta(days=1, seconds=5))) == timedelta(days=1, seconds=5)


@pytest.mark.parametrize(("text", "number"), [("7", 7), ("INC-7", 7), ("inc-12", 12), (" 3 ", 3)])
def test_incident_refs(text: str, number: int) -> None:
    """`7` and `INC-7` name the same incident."""
    assert parse_incident_ref(text) == number


@pytest.mark.parametrize("text", ["", "INC-", "INC-0", "7a", "../7", "INC-7; DROP", "INC-2147483648", "9" * 18])
def test_bad_incident_refs(text: str) -> None:
    """Anything else is refused with a clear message."""
    with pytest.raises(InvalidInput, match="not an incident id"):
        parse_incident_ref(text)


def test_severity_from_labels() -> None:
    """Known severities order; aliases map; unknown values are NONE."""
    assert Severity.from_label("CRITICAL") is Severity.CRITICAL
    assert Severity.from_label("page") is Severity.CRITICAL
    assert Severity.from_label("whatever") is Severity.NONE
    assert Severity.CRITICAL.rank > Severity.WARNING.rank > Severity.NONE.rank


def _incident(status: IncidentStatus = IncidentStatus.OPEN) -> Incident:
    return Incident(id=1, group_key="k", title="t", service="s", severity=Severity.CRITICAL,
                    status=status, playbook=None, started_at=NOW, opened_at=NOW)


def test_state_machine_stamps_each_step() -> None:
    """open -> acknowledged -> mitigating -> resolved -> closed, each with its time."""
    incident = _incident()
    steps = [IncidentStatus.ACKNOWLEDGED, IncidentStatus.MITIGATING, IncidentStatus.RESOLVED,
             IncidentStatus.CLOSED]
    for minutes, target in enumerate(steps, start=1):
        incident = transition(incident, target, now=NOW + timedelta(minutes=minutes))
    assert incident.acknowledged_at == NOW + timedelta(minutes=1)
    assert incident.mitigating_at == NOW + timedelta(minutes=2)
    assert incident.resolved_at == NOW + timedelta(minutes=3)
    assert incident.closed_at == NOW + timedelta(minutes=4)


@pytest.mark.parametrize(("start", "target"), [
    (IncidentStatus.CLOSED, IncidentStatus.OPEN),
    (IncidentStatus.RESOLVED, IncidentStatus.ACKNOWLEDGED),
    (IncidentStatus.MITIGATED, IncidentStatus.MITIGATING),
    (IncidentStatus.VERIFIED, IncidentStatus.MITIGATED),
    (IncidentStatus.OPEN, IncidentStatus.VERIFIED),
    (IncidentStatus.OPEN, IncidentStatus.CLOSED),
])
def test_state_machine_refuses_going_backwards(start: IncidentStatus, target: IncidentStatus) -> None:
    """Transitions that make no sense raise Conflict naming both states."""
    with pytest.raises(Conflict, match=f"is {start.value}"):
        transition(_incident(start), target, now=NOW)


def test_mitigating_without_ack_counts_as_acknowledged() -> None:
    """Starting a rollback is an acknowledgement too."""
    assert transition(_incident(), IncidentStatus.MITIGATING, now=NOW).acknowledged_at == NOW


def _playbook(name: str, **match: str) -> Playbook:
    return Playbook(name=name, service=name, match=match)


def test_playbook_matchers_are_anchored_regexes() -> None:
    """`checkout` does not match `checkout-canary`; alternatives do match."""
    playbook = _playbook("c", service="checkout", severity="critical|warning")
    assert playbook.matches({"service": "checkout", "severity": "warning"})
    assert not playbook.matches({"service": "checkout-canary", "severity": "warning"})
    assert not playbook.matches({"service": "checkout"})


def test_most_specific_playbook_wins() -> None:
    """Of several matching playbooks, the one with more matchers is chosen."""
    broad = _playbook("broad", service="checkout")
    narrow = _playbook("narrow", service="checkout", alertname="HighErrorRate")
    labels = {"service": "checkout", "alertname": "HighErrorRate"}
    assert find_playbook([broad, narrow], labels) is narrow
    assert find_playbook([broad, narrow], {"service": "checkout"}) is broad
    assert find_playbook([broad, narrow], {"service": "other"}) is None


def test_playbook_refuses_unknown_keys_and_bad_values() -> None:
    """extra="forbid", regexes compiled, one threshold per probe."""
    with pytest.raises(ValidationError, match="Extra inputs"):
        Playbook.model_validate({"name": "x", "service": "x", "match": {"a": "b"}, "typo": 1})
    with pytest.raises(ValidationError, match="regular expression"):
        Playbook.model_validate({"name": "x", "service": "x", "match": {"a": "("}})
    with pytest.raises(ValidationError, match="exactly one"):
        Playbook.model_validate({"name": "x", "service": "x", "match": {"a": "b"},
                                 "probes": [{"name": "p", "query": "up", "above": 1, "below": 2}]})


def test_yaml_false_reads_as_off() -> None:
    """A bare `off` in YAML arrives as False and still means the mode `off`."""
    playbook = Playbook.model_validate(
        {"name": "x", "service": "x", "match": {"a": "b"}, "actions": {"on_open": False}}
    )
    assert playbook.actions.on_open is ActionMode.OFF
