"""Ingest: turn a delivery of alerts into incidents, idempotently, with a timeline."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bot.domain.grouping import Route, incident_title, route_alert
from bot.domain.incidents import IncidentPolicy, transition
from bot.domain.models import (
    Actor,
    Alert,
    AlertStatus,
    Delivery,
    Incident,
    IncidentStatus,
    ReceivedAlert,
    Severity,
)
from bot.domain.playbooks import Playbook
from bot.domain.ports import Store, Transaction
from bot.domain.timeline import EventKind, event


@dataclass
class IngestOutcome:
    """What one delivery changed. All zero for a duplicate."""

    new_alerts: int = 0
    resolved_alerts: int = 0
    duplicates: int = 0
    opened: list[Incident] = field(default_factory=list)
    reopened: list[Incident] = field(default_factory=list)
    resolved: list[Incident] = field(default_factory=list)
    touched: set[int] = field(default_factory=set)


def ingest_delivery(
    *,
    store: Store,
    delivery: Delivery,
    playbooks: Sequence[Playbook],
    policy: IncidentPolicy,
    now: datetime,
) -> IngestOutcome:
    """Record a delivery. Idempotent: an alert is (fingerprint, starts_at) and only moves forward."""

    def work(tx: Transaction) -> IngestOutcome:
        outcome = IngestOutcome()
        for received in delivery.alerts:
            _ingest_alert(tx, received, delivery=delivery, playbooks=playbooks,
                          policy=policy, now=now, outcome=outcome)
        return outcome

    return store.run(work)


def _ingest_alert(
    tx: Transaction,
    received: ReceivedAlert,
    *,
    delivery: Delivery,
    playbooks: Sequence[Playbook],
    policy: IncidentPolicy,
    now: datetime,
    outcome: IngestOutcome,
) -> None:
    known = tx.alerts.get(received.fingerprint, received.starts_at)
    if known is not None:
        if known.status is AlertStatus.FIRING and received.status is AlertStatus.RESOLVED:
            _resolve_alert(tx, known, received, policy=policy, now=now, outcome=outcome)
        else:
            # The same delivery again, or a stale firing after the resolution: nothing moves back.
            outcome.duplicates += 1
        return

    route = route_alert(received, playbooks=playbooks, group_key=delivery.group_key)
    if received.status is AlertStatus.RESOLVED:
        # A resolution for an alert never seen firing (e.g. it fired while we were down).
        # Keep it, so a late firing copy is recognised, but open nothing.
        latest = tx.incidents.find_latest(route.group_key)
        incident_id = latest.id if latest is not None and latest.active else None
        alert = tx.alerts.add(_new_alert(received, incident_id=incident_id, now=now))
        outcome.new_alerts += 1
        if latest is not None and incident_id is not None:
            _record_alert_event(tx, latest, alert, kind=EventKind.ALERT_RESOLVED, now=now)
            outcome.touched.add(incident_id)
        return

    incident = _incident_for(tx, route, received, policy=policy, now=now, outcome=outcome)
    assert incident.id is not None
    alert = tx.alerts.add(_new_alert(received, incident_id=incident.id, now=now))
    outcome.new_alerts += 1
    outcome.touched.add(incident.id)
    _record_alert_event(tx, incident, alert, kind=EventKind.ALERT_FIRING, now=now)
    severity = Severity.from_label(received.labels.get("severity"))
    if severity.rank > incident.severity.rank:
        tx.incidents.save(incident.model_copy(update={"severity": severity}))
        tx.timeline.append(event(
            incident_id=incident.id, at=now, kind=EventKind.SEVERITY_RAISED,
            actor=Actor.ALERTMANAGER,
            text=f"Severity raised from {incident.severity.value} to {severity.value} by {alert.name}",
            data={"from": incident.severity.value, "to": severity.value},
        ))


def _incident_for(
    tx: Transaction,
    route: Route,
    received: ReceivedAlert,
    *,
    policy: IncidentPolicy,
    now: datetime,
    outcome: IngestOutcome,
) -> Incident:
    """The active incident for the route, a recently resolved one reopened, or a new one."""
    latest = tx.incidents.find_latest(route.group_key)
    if latest is not None and latest.active:
        return latest
    name = received.labels.get("alertname", "alert")
    if latest is not None and latest.id is not None and policy.may_reopen(latest, now=now):
        reopened = transition(latest, IncidentStatus.OPEN, now=now)
        tx.incidents.save(reopened)
        tx.timeline.append(event(
            incident_id=latest.id, at=now, kind=EventKind.INCIDENT_REOPENED,
            actor=Actor.ALERTMANAGER,
            text=f"Reopened: {name} fired again within {policy.reopen_within} of the resolution",
            data={"fingerprint": received.fingerprint},
        ))
        outcome.reopened.append(reopened)
        return reopened
    incident = tx.incidents.add(Incident(
        group_key=route.group_key,
        title=incident_title(received, route.service),
        service=route.service,
        severity=Severity.from_label(received.labels.get("severity")),
        status=IncidentStatus.OPEN,
        playbook=route.playbook.name if route.playbook else None,
        started_at=received.starts_at,
        opened_at=now,
    ))
    assert incident.id is not None
    playbook_text = f" (playbook {route.playbook.name})" if route.playbook else " (no playbook matched)"
    tx.timeline.append(event(
        incident_id=incident.id, at=now, kind=EventKind.INCIDENT_OPENED, actor=Actor.ALERTMANAGER,
        text=f"Opened by {name} for service {route.service}{playbook_text}",
        data={"group_key": route.group_key, "fingerprint": received.fingerprint},
    ))
    outcome.opened.append(incident)
    return incident


def _resolve_alert(
    tx: Transaction,
    known: Alert,
    received: ReceivedAlert,
    *,
    policy: IncidentPolicy,
    now: datetime,
    outcome: IngestOutcome,
) -> None:
    resolved = known.model_copy(update={"status": AlertStatus.RESOLVED, "ends_at": received.ends_at})
    tx.alerts.save(resolved)
    outcome.resolved_alerts += 1
    if known.incident_id is None:
        return
    incident = tx.incidents.get(known.incident_id)
    if incident is None:
        return
    outcome.touched.add(known.incident_id)
    _record_alert_event(tx, incident, resolved, kind=EventKind.ALERT_RESOLVED, now=now)
    if not (policy.auto_resolve and incident.active):
        return
    alerts = tx.alerts.for_incident(known.incident_id)
    if any(alert.status is AlertStatus.FIRING for alert in alerts):
        return
    done = transition(incident, IncidentStatus.RESOLVED, now=now)
    tx.incidents.save(done)
    tx.timeline.append(event(
        incident_id=known.incident_id, at=now, kind=EventKind.INCIDENT_RESOLVED,
        actor=Actor.ALERTMANAGER, text=f"Resolved: all {len(alerts)} alert(s) resolved",
        data={"reason": "all_alerts_resolved"},
    ))
    outcome.resolved.append(done)


def _new_alert(received: ReceivedAlert, *, incident_id: int | None, now: datetime) -> Alert:
    return Alert(
        incident_id=incident_id,
        fingerprint=received.fingerprint,
        starts_at=received.starts_at,
        ends_at=received.ends_at,
        status=received.status,
        labels=received.labels,
        annotations=received.annotations,
        generator_url=received.generator_url,
        source=received.source,
        received_at=now,
    )


def _record_alert_event(
    tx: Transaction, incident: Incident, alert: Alert, *, kind: EventKind, now: datetime
) -> None:
    assert incident.id is not None
    verb = "firing" if kind is EventKind.ALERT_FIRING else "resolved"
    instance = alert.labels.get("instance")
    where = f" ({instance})" if instance else ""
    tx.timeline.append(event(
        incident_id=incident.id, at=now, kind=kind, actor=Actor.ALERTMANAGER,
        text=f"{alert.name}{where} {verb}",
        data={"fingerprint": alert.fingerprint, "starts_at": alert.starts_at.isoformat(),
              "ends_at": alert.ends_at.isoformat() if alert.ends_at else None},
    ))
