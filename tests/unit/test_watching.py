"""Probes, verification, reminders and auto-resolve, with time passed in and fake ports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.adapters.console import RecordingNotifier
from bot.domain.actions import Action, ActionKind, ActionState
from bot.domain.incidents import IncidentPolicy
from bot.domain.models import Actor, IncidentStatus
from bot.domain.playbooks import Playbook, Reminders
from bot.domain.probes import ProbeChange, ProbeState, ProbeStatus, reminder_due, step
from bot.services.incidents import change_status, get_incident, open_manually
from bot.services.watching import resolve_cleared, run_probe, send_reminders, verify_rollbacks
from tests.fakes.metrics import FakeMetrics
from tests.fakes.store import InMemoryStore

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
QUERY = "checkout_error_ratio"
BOOK = Playbook.model_validate({
    "name": "checkout", "service": "checkout", "match": {"service": "checkout"}, "key_query": QUERY,
    "probes": [{"name": "error-ratio", "query": QUERY, "above": 0.05, "for": "2m", "every": "30s"}],
    "verify": {"stay": "5m", "within": "30m"}, "reminders": {"ack_within": "10m", "every": "10m", "max": 2},
})
PROBE = BOOK.probes[0]


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_a_probe_fires_only_after_holding_for_its_duration() -> None:
    """ok -> pending -> firing after `for`; back to ok when it stops holding."""
    state = ProbeState(key="k")
    state, change = step(state, PROBE, value=0.2, now=at(0))
    assert (state.status, change) == (ProbeStatus.PENDING, ProbeChange.NONE)
    state, change = step(state, PROBE, value=0.2, now=at(1))
    assert state.status is ProbeStatus.PENDING
    state, change = step(state, PROBE, value=0.3, now=at(2))
    assert (state.status, change, state.since) == (ProbeStatus.FIRING, ProbeChange.STARTED, at(0))
    state, change = step(state, PROBE, value=0.01, now=at(3))
    assert (state.status, change) == (ProbeStatus.OK, ProbeChange.STOPPED)


def test_a_dip_resets_the_pending_time() -> None:
    """Holding must be continuous: a healthy sample restarts the `for` clock."""
    state, _ = step(ProbeState(key="k"), PROBE, value=0.2, now=at(0))
    state, _ = step(state, PROBE, value=0.01, now=at(1))
    state, change = step(state, PROBE, value=0.2, now=at(2.5))
    assert (state.status, state.since, change) == (ProbeStatus.PENDING, at(2.5), ProbeChange.NONE)


def test_an_unevaluable_probe_is_neither_healthy_nor_unhealthy() -> None:
    """No data or an error keeps a firing probe firing and a healthy one from firing."""
    firing = ProbeState(key="k", status=ProbeStatus.FIRING, since=at(0), value=0.2)
    state, change = step(firing, PROBE, value=None, error="timeout", now=at(5))
    assert (state.status, change, state.error) == (ProbeStatus.FIRING, ProbeChange.NONE, "timeout")
    state, change = step(ProbeState(key="k"), PROBE, value=None, now=at(5))
    assert (state.status, change) == (ProbeStatus.UNKNOWN, ProbeChange.NONE)


def probe_run(store: InMemoryStore, metrics: FakeMetrics, minutes: float):  # type: ignore[no-untyped-def]
    return run_probe(store=store, metrics=metrics, playbook=BOOK, probe=PROBE, playbooks=[BOOK],
                     policy=IncidentPolicy(), now=at(minutes))


def test_a_firing_probe_opens_an_incident_and_resolves_it() -> None:
    """Through the same ingestion as Alertmanager's: source probe, the playbook's grouping."""
    store, metrics = InMemoryStore(), FakeMetrics()
    metrics.values[QUERY] = 0.2
    assert probe_run(store, metrics, 0).outcome is None
    opened = probe_run(store, metrics, 2).outcome
    assert opened is not None
    [incident] = opened.opened
    assert (incident.service, incident.playbook, incident.started_at) == ("checkout", "checkout", at(0))
    [alert] = store.state.alerts.values()
    assert alert.source == "probe"
    metrics.values[QUERY] = 0.0
    probe_run(store, metrics, 4)
    assert store.state.incidents[1].status is IncidentStatus.RESOLVED


def test_prometheus_down_changes_nothing_and_says_so_once() -> None:
    """A firing probe that cannot be evaluated keeps its incident open, with one timeline note."""
    store, metrics = InMemoryStore(), FakeMetrics()
    metrics.values[QUERY] = 0.2
    probe_run(store, metrics, 0)
    probe_run(store, metrics, 2)
    metrics.down = True
    for minute in (3, 4, 5):
        run = probe_run(store, metrics, minute)
        assert "cannot reach" in run.error
    assert store.state.incidents[1].status is IncidentStatus.OPEN
    kinds = [e.kind for e in store.state.events.values()]
    assert kinds.count("probe.unknown") == 1


def incident_with_revert(store: InMemoryStore) -> int:
    incident = open_manually(store=store, title="5xx", service="checkout", playbook="checkout",
                             actor_id="U1", now=at(0))
    number = incident.id or 0
    store.run(lambda tx: tx.actions.add(Action(
        incident_id=number, kind=ActionKind.REVERT, repo="gitops", commit_sha="a" * 40, state=ActionState.PUSHED,
        branch="b", created_at=at(1), updated_at=at(1))))
    return number


def test_recovery_is_recorded_once_it_stays_healthy() -> None:
    """After a pushed revert: watching starts, a healthy spell shorter than `stay` does not count,
    and the time it became healthy is recorded; the incident's state waits for the revert to be
    applied (tests/unit/test_lifecycle.py)."""
    store, metrics, notes = InMemoryStore(), FakeMetrics(), RecordingNotifier()
    number = incident_with_revert(store)
    metrics.values[QUERY] = 0.2
    verify_rollbacks(store=store, metrics=metrics, notifier=notes, playbooks=[BOOK], now=at(2))
    metrics.values[QUERY] = 0.01
    verify_rollbacks(store=store, metrics=metrics, notifier=notes, playbooks=[BOOK], now=at(3))
    metrics.values[QUERY] = 0.2
    verify_rollbacks(store=store, metrics=metrics, notifier=notes, playbooks=[BOOK], now=at(4))
    metrics.values[QUERY] = 0.01
    for minute in (5, 7, 10):
        verify_rollbacks(store=store, metrics=metrics, notifier=notes, playbooks=[BOOK], now=at(minute))
    view = get_incident(store=store, incident_id=number)
    assert [e.kind for e in view.timeline].count("verify.recovered") == 1
    assert view.incident.status is IncidentStatus.OPEN
    assert view.timeline[-1].data["recovered_at"] == at(5).isoformat()


def test_not_recovered_in_time_is_said(monkeypatch: pytest.MonkeyPatch) -> None:
    """Still unhealthy `within` after the rollback: people are told."""
    store, metrics, notes = InMemoryStore(), FakeMetrics(), RecordingNotifier()
    number = incident_with_revert(store)
    metrics.values[QUERY] = 0.2
    verify_rollbacks(store=store, metrics=metrics, notifier=notes, playbooks=[BOOK], now=at(2))
    verify_rollbacks(store=store, metrics=metrics, notifier=notes, playbooks=[BOOK], now=at(33))
    kinds = [e.kind for e in get_incident(store=store, incident_id=number).timeline]
    assert "verify.not_recovered" in kinds
    assert notes.notices[-1].kind == "verify.not_recovered"


def test_reminders_until_acknowledged_with_a_cap() -> None:
    """After ack_within, then every `every`, at most `max`; none once acknowledged."""
    store, notes = InMemoryStore(), RecordingNotifier()
    open_manually(store=store, title="x", service="checkout", playbook="checkout", actor_id="U1", now=at(0))
    sent = [send_reminders(store=store, notifier=notes, playbooks=[BOOK], now=at(m)) for m in (5, 10, 15, 20, 40)]
    assert sent == [0, 1, 0, 1, 0]
    incident = store.state.incidents[1]
    assert not reminder_due(incident, Reminders(max=5), sent=0, last=None, now=at(5))
    change_status(store=store, incident_id=1, target=IncidentStatus.ACKNOWLEDGED, actor=Actor.USER,
                  actor_id="U1", now=at(41))
    assert not reminder_due(store.state.incidents[1], Reminders(), sent=0, last=None, now=at(60))


def test_clear_for_resolves_after_the_quiet_time() -> None:
    """With clear_for, the incident resolves only after its alerts stayed clear that long."""
    store, metrics, notes = InMemoryStore(), FakeMetrics(), RecordingNotifier()
    policy = IncidentPolicy(clear_for=timedelta(minutes=5))
    metrics.values[QUERY] = 0.2
    for minute in (0, 2):
        run_probe(store=store, metrics=metrics, playbook=BOOK, probe=PROBE, playbooks=[BOOK], policy=policy,
                  now=at(minute))
    metrics.values[QUERY] = 0.0
    run_probe(store=store, metrics=metrics, playbook=BOOK, probe=PROBE, playbooks=[BOOK], policy=policy, now=at(3))
    assert store.state.incidents[1].status is IncidentStatus.OPEN
    assert resolve_cleared(store=store, notifier=notes, policy=policy, now=at(6)) == 0
    assert resolve_cleared(store=store, notifier=notes, policy=policy, now=at(8.5)) == 1
    assert store.state.incidents[1].status is IncidentStatus.RESOLVED


def _alertmanager_alert(status: str = "firing", minutes: float = 0):  # type: ignore[no-untyped-def]
    from bot.domain.models import AlertStatus, Delivery, ReceivedAlert

    state = AlertStatus(status)
    alert = ReceivedAlert(fingerprint="am1", starts_at=at(0), ends_at=at(minutes) if state is AlertStatus.RESOLVED
                          else None, status=state, labels={"alertname": "HighErrorRate", "service": "checkout",
                                                           "severity": "critical"}, annotations={})
    return Delivery(group_key="am-group", status=state, alerts=(alert,))


def test_a_probe_and_an_alert_for_the_same_playbook_make_one_incident() -> None:
    """The alert opens it; the probe firing later joins it, named as the probe, with its severity;
    and a probe firing two minutes after the alert's incident resolved reopens it, not a second one."""
    from bot.services.ingest import ingest_delivery

    store, metrics = InMemoryStore(), FakeMetrics()
    book = BOOK.model_copy(update={"probes": (PROBE.model_copy(update={"severity": "error"}),)})
    ingest_delivery(store=store, delivery=_alertmanager_alert(), playbooks=[book], policy=IncidentPolicy(),
                    now=at(0))
    metrics.values[QUERY] = 0.3
    for minute in (0, 1, 2.5):
        run = run_probe(store=store, metrics=metrics, playbook=book, probe=book.probes[0], playbooks=[book],
                        policy=IncidentPolicy(), now=at(minute))
    assert run.outcome is not None
    assert (run.outcome.opened, run.outcome.reopened) == ([], [])
    view = get_incident(store=store, incident_id=1)
    assert sorted(a.source for a in view.alerts) == ["alertmanager", "probe"]
    joined = [e for e in view.timeline if e.kind == "alert.firing" and e.actor is Actor.PROBE]
    assert joined[0].actor_id == "probe:checkout/error-ratio"
    assert [a.labels["severity"] for a in view.alerts if a.source == "probe"] == ["error"]

    # Both clear: resolved. The probe fires again two minutes later: the same incident reopens.
    metrics.values[QUERY] = 0.0
    run_probe(store=store, metrics=metrics, playbook=book, probe=book.probes[0], playbooks=[book],
              policy=IncidentPolicy(), now=at(4))
    ingest_delivery(store=store, delivery=_alertmanager_alert("resolved", 4), playbooks=[book],
                    policy=IncidentPolicy(), now=at(4))
    assert get_incident(store=store, incident_id=1).incident.status is IncidentStatus.RESOLVED
    metrics.values[QUERY] = 0.4
    for minute in (6, 7, 8.5):
        run = run_probe(store=store, metrics=metrics, playbook=book, probe=book.probes[0], playbooks=[book],
                        policy=IncidentPolicy(), now=at(minute))
    assert run.outcome is not None
    assert [i.id for i in run.outcome.reopened] == [1]
    assert store.run(lambda tx: tx.incidents.list(limit=10))[0].id == 1, "no second incident"


def test_a_probe_alone_carries_the_playbook_severity() -> None:
    """Without `severity` on the probe, the playbook's (default warning)."""
    store, metrics = InMemoryStore(), FakeMetrics()
    metrics.values[QUERY] = 0.3
    for minute in (0, 2.5):
        run_probe(store=store, metrics=metrics, playbook=BOOK, probe=PROBE, playbooks=[BOOK],
                  policy=IncidentPolicy(), now=at(minute))
    incident = get_incident(store=store, incident_id=1).incident
    assert incident.severity.value == "warning"
