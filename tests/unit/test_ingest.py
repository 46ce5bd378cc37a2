"""Ingestion on plain data: grouping, idempotency, resolution and reopening, with the fake store."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.config import load_playbooks
from bot.domain.incidents import IncidentPolicy
from bot.domain.models import AlertStatus, Delivery, IncidentStatus, ReceivedAlert
from bot.domain.playbooks import Playbook
from bot.services.ingest import ingest_delivery
from tests.conftest import PLAYBOOKS, Clock, delivery
from tests.fakes.store import InMemoryStore


@pytest.fixture
def store() -> InMemoryStore:
    return InMemoryStore()


@pytest.fixture
def playbooks() -> list[Playbook]:
    return load_playbooks(PLAYBOOKS)


def feed(store: InMemoryStore, playbooks: list[Playbook], clock: Clock, *prefixes: str,
         policy: IncidentPolicy | None = None) -> None:
    for prefix in prefixes:
        ingest_delivery(store=store, delivery=delivery(prefix), playbooks=playbooks,
                        policy=policy or IncidentPolicy(), now=clock())


def statuses(store: InMemoryStore) -> dict[str, str]:
    return {i.title.split(":")[0]: i.status.value for i in store.state.incidents.values()}


def test_two_alerts_of_one_group_open_one_incident(store, playbooks, clock) -> None:
    """Fixture 01 carries two alerts of one group: one incident, two alerts, playbook applied."""
    feed(store, playbooks, clock, "01")
    [incident] = store.state.incidents.values()
    assert incident.status is IncidentStatus.OPEN
    assert incident.service == "checkout"
    assert incident.playbook == "checkout"
    assert incident.severity.value == "critical"
    assert len(store.state.alerts) == 2
    kinds = [e.kind for e in store.state.events.values()]
    assert kinds == ["incident.opened", "alert.firing", "alert.firing"]


def test_partial_resolutions_resolve_the_incident_once_all_alerts_are_resolved(
    store, playbooks, clock
) -> None:
    """01, 02, 04 in order: 02 resolves one alert, 04 carries only the last one."""
    feed(store, playbooks, clock, "01", "02")
    [incident] = store.state.incidents.values()
    assert incident.status is IncidentStatus.OPEN
    feed(store, playbooks, clock, "04")
    [incident] = store.state.incidents.values()
    assert incident.status is IncidentStatus.RESOLVED
    assert {a.status for a in store.state.alerts.values()} == {AlertStatus.RESOLVED}


def test_the_same_delivery_again_changes_nothing(store, playbooks, clock) -> None:
    """A retried or HA-duplicated delivery is recognised by alert identity and status."""
    feed(store, playbooks, clock, "01")
    before = (dict(store.state.incidents), dict(store.state.alerts), dict(store.state.events))
    feed(store, playbooks, clock, "01", "01")
    assert (store.state.incidents, store.state.alerts, store.state.events) == before


def test_a_stale_firing_copy_after_resolution_does_not_reopen(store, playbooks, clock) -> None:
    """Firing 01 delivered again after 04 resolved its group: the alerts stay resolved."""
    feed(store, playbooks, clock, "01", "02", "04")
    events = len(store.state.events)
    feed(store, playbooks, clock, "01", "02")
    assert statuses(store) == {"HighErrorRate on checkout": "resolved"}
    assert len(store.state.events) == events


def test_every_fixture_in_order_and_repeated_gives_the_same_state(store, playbooks, clock) -> None:
    """Replaying all captured deliveries twice ends where replaying them once ends."""
    order = ["01", "02", "03", "04", "05", "06", "07", "08", "09", "10"]
    feed(store, playbooks, clock, *order)
    once = (dict(store.state.incidents), dict(store.state.alerts), len(store.state.events))
    feed(store, playbooks, clock, *order)
    assert (store.state.incidents, store.state.alerts, len(store.state.events)) == once
    assert statuses(store) == {
        "HighErrorRate on checkout": "resolved",
        "DeployCanaryFailed on payments": "resolved",
        "Test400 on x": "open",
        "Test503 on y": "resolved",
        "AlwaysFiring on checkout": "resolved",
    }


def test_alert_matching_no_playbook_groups_by_alertmanager_key(store, playbooks, clock) -> None:
    """Without a playbook the service comes from the label and the key from Alertmanager."""
    feed(store, playbooks, clock, "05")
    [incident] = store.state.incidents.values()
    assert incident.playbook is None
    assert incident.service == "x"
    assert incident.group_key.startswith("alertmanager:{}:")


def _alert(fingerprint: str, status: AlertStatus, clock: Clock, **labels: str) -> ReceivedAlert:
    return ReceivedAlert(
        fingerprint=fingerprint, starts_at=clock.now - timedelta(minutes=1),
        ends_at=clock.now if status is AlertStatus.RESOLVED else None, status=status,
        labels={"alertname": "Boom", **labels}, annotations={},
    )


def _deliver(store: InMemoryStore, clock: Clock, *alerts: ReceivedAlert,
             policy: IncidentPolicy | None = None) -> None:
    ingest_delivery(
        store=store,
        delivery=Delivery(group_key="{}:{alertname=\"Boom\"}", status=alerts[0].status,
                          alerts=alerts),
        playbooks=[], policy=policy or IncidentPolicy(), now=clock(),
    )


def test_no_service_label_means_unknown_service(store, clock) -> None:
    """An alert with no service label and no playbook still opens an incident."""
    _deliver(store, clock, _alert("a1", AlertStatus.FIRING, clock))
    [incident] = store.state.incidents.values()
    assert incident.service == "unknown"


def test_firing_again_within_the_window_reopens(store, clock) -> None:
    """A new alert episode soon after resolution reopens the same incident."""
    _deliver(store, clock, _alert("a1", AlertStatus.FIRING, clock))
    _deliver(store, clock, _alert("a1", AlertStatus.RESOLVED, clock))
    clock.now += timedelta(minutes=10)
    _deliver(store, clock, _alert("a1", AlertStatus.FIRING, clock))
    [incident] = store.state.incidents.values()
    assert incident.status is IncidentStatus.OPEN
    assert incident.resolved_at is None
    assert "incident.reopened" in [e.kind for e in store.state.events.values()]


def test_firing_again_after_the_window_opens_a_new_incident(store, clock) -> None:
    """Past `reopen_within` the new episode is a new incident."""
    policy = IncidentPolicy(reopen_within=timedelta(minutes=5))
    _deliver(store, clock, _alert("a1", AlertStatus.FIRING, clock), policy=policy)
    _deliver(store, clock, _alert("a1", AlertStatus.RESOLVED, clock), policy=policy)
    clock.now += timedelta(minutes=6)
    _deliver(store, clock, _alert("a1", AlertStatus.FIRING, clock), policy=policy)
    assert [i.status.value for i in store.state.incidents.values()] == ["resolved", "open"]


def test_auto_resolve_off_keeps_the_incident_open(store, clock) -> None:
    """With auto_resolve false, resolved alerts are recorded but a person resolves."""
    policy = IncidentPolicy(auto_resolve=False)
    _deliver(store, clock, _alert("a1", AlertStatus.FIRING, clock), policy=policy)
    _deliver(store, clock, _alert("a1", AlertStatus.RESOLVED, clock), policy=policy)
    [incident] = store.state.incidents.values()
    assert incident.status is IncidentStatus.OPEN
    [alert] = store.state.alerts.values()
    assert alert.status is AlertStatus.RESOLVED


def test_a_resolution_never_seen_firing_opens_nothing_and_blocks_a_late_copy(store, clock) -> None:
    """A lone resolved alert is kept so its late firing copy is recognised as stale."""
    _deliver(store, clock, _alert("a1", AlertStatus.RESOLVED, clock))
    _deliver(store, clock, _alert("a1", AlertStatus.FIRING, clock))
    assert store.state.incidents == {}


def test_a_more_severe_alert_raises_the_incident_severity(store, clock) -> None:
    """Severity is the highest of the incident's alerts, with a timeline event."""
    _deliver(store, clock, _alert("a1", AlertStatus.FIRING, clock, severity="warning"))
    _deliver(store, clock, _alert("a2", AlertStatus.FIRING, clock, severity="critical"))
    [incident] = store.state.incidents.values()
    assert incident.severity.value == "critical"
    assert "incident.severity_raised" in [e.kind for e in store.state.events.values()]


def test_acknowledged_incident_still_resolves_when_alerts_clear(store, clock) -> None:
    """Auto-resolution applies from any active state."""
    from bot.domain.models import Actor
    from bot.services.incidents import change_status

    _deliver(store, clock, _alert("a1", AlertStatus.FIRING, clock))
    change_status(store=store, incident_id=1, target=IncidentStatus.ACKNOWLEDGED,
                  actor=Actor.USER, actor_id="U1", now=clock())
    _deliver(store, clock, _alert("a1", AlertStatus.RESOLVED, clock))
    assert store.state.incidents[1].status is IncidentStatus.RESOLVED
    assert store.state.incidents[1].acknowledged_at == clock.now


def test_a_big_group_resolves_with_one_count_and_one_event_per_incident(store, clock) -> None:  # type: ignore[no-untyped-def]
    """10,000 alerts resolved at once: firing counted once (not per alert), one event that counts them."""
    from bot.domain.models import AlertStatus, Delivery, ReceivedAlert
    from bot.services.ingest import ingest_delivery

    def group(status: AlertStatus) -> Delivery:
        return Delivery(group_key="big", status=status, alerts=tuple(ReceivedAlert(
            fingerprint=f"f{i}", starts_at=clock.now, ends_at=None if status is AlertStatus.FIRING else clock.now,
            status=status, labels={"alertname": "NodeDown", "service": "fleet"}, annotations={})
            for i in range(10_000)))

    ingest_delivery(store=store, delivery=group(AlertStatus.FIRING), playbooks=[], policy=IncidentPolicy(),
                    now=clock.now)
    counted: list[int] = []
    original = type(store.run(lambda tx: tx.alerts)).count_firing

    def counting(self, incident_id: int) -> int:  # type: ignore[no-untyped-def]
        counted.append(incident_id)
        return original(self, incident_id)

    type(store.run(lambda tx: tx.alerts)).count_firing = counting  # type: ignore[method-assign]
    try:
        outcome = ingest_delivery(store=store, delivery=group(AlertStatus.RESOLVED), playbooks=[],
                                  policy=IncidentPolicy(), now=clock.now)
    finally:
        type(store.run(lambda tx: tx.alerts)).count_firing = original  # type: ignore[method-assign]
    assert (outcome.resolved_alerts, len(outcome.resolved)) == (10_000, 1)
    assert counted == [1]
    texts = [e.text for e in store.run(lambda tx: tx.timeline.for_incident(1))]
    assert texts[-2:] == ["10000 alerts resolved: NodeDown", "Resolved: all its alerts resolved"]
    assert texts[1] == "10000 alerts firing: NodeDown"
