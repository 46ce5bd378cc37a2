"""Paging in: PagerDuty's incident events (webhooks v3) open or follow a Backout incident, so teams
paged by PagerDuty also get suspects, and its acknowledgements and resolutions reach the timeline.

An incident PagerDuty raised on a playbook's `pagerduty.service_id` becomes an alert (source
`pagerduty`) delivered like Alertmanager's: it opens an incident that is investigated and ranked,
or joins the active one of the playbook; its resolution resolves the alert (idempotent by the
alert's identity). An incident Backout paged (key `backout:<id>`) is followed on its incident's
timeline. An acknowledgement in PagerDuty acknowledges the Backout incident, as actor `pagerduty`,
which the outbox never sends back."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from bot.domain.grouping import PLAYBOOK_LABEL
from bot.domain.incidents import transition
from bot.domain.models import (
    Actor,
    AlertStatus,
    Delivery,
    Incident,
    IncidentStatus,
    ReceivedAlert,
)
from bot.domain.paging import PagerIncidentEvent, PagerIncidentKind, incident_of_key
from bot.domain.playbooks import Playbook
from bot.domain.ports import Notifier, Store, Transaction
from bot.domain.timeline import EventKind, event
from bot.services import notify
from bot.services.paging import PAGER_SOURCE

_SEVERITY = {"high": "critical", "low": "warning"}
_VERB = {PagerIncidentKind.TRIGGERED: "triggered", PagerIncidentKind.ACKNOWLEDGED: "acknowledged",
         PagerIncidentKind.RESOLVED: "resolved"}


@dataclass(frozen=True)
class InboundReport:
    """What a PagerDuty event did: a delivery to ingest (opening, joining or resolving), or a change
    recorded on an incident, or nothing (and why)."""

    detail: str
    delivery: Delivery | None = None
    incident_id: int | None = None
    duplicate: bool = False


def playbook_for_service(playbooks: Sequence[Playbook], service_id: str) -> Playbook | None:
    return next((p for p in playbooks if p.pagerduty.service_id == service_id), None)


def record_pager_event(*, store: Store, notifier: Notifier, playbooks: Sequence[Playbook],
                       event_: PagerIncidentEvent) -> InboundReport:
    """Record one PagerDuty incident event; see the module docstring. Idempotent: by PagerDuty's
    event id for what is recorded here, by the alert's identity for what goes to ingest."""
    own = incident_of_key(event_.incident_key)
    if own is not None:
        report = store.run(lambda tx: _follow_own(tx, own, event_))
    else:
        playbook = playbook_for_service(playbooks, event_.service_id)
        if playbook is None:
            return InboundReport(f"no playbook has pagerduty.service_id {event_.service_id}: ignored")
        if event_.kind is not PagerIncidentKind.ACKNOWLEDGED:
            return InboundReport(f"{event_.ref} {_VERB[event_.kind]}", delivery=pager_delivery(event_, playbook))
        report = store.run(lambda tx: _acknowledge_raised(tx, event_))
    if report.incident_id is not None and not report.duplicate:
        notify.incident_update(store=store, notifier=notifier, incident_id=report.incident_id,
                               kind=EventKind.PAGER_INCIDENT.value)
    return report


def pager_delivery(event_: PagerIncidentEvent, playbook: Playbook) -> Delivery:
    """A PagerDuty incident as an alert of the playbook: firing until PagerDuty resolves it."""
    resolved = event_.kind is PagerIncidentKind.RESOLVED
    status = AlertStatus.RESOLVED if resolved else AlertStatus.FIRING
    labels = {"alertname": "PagerDuty", "service": playbook.service, PLAYBOOK_LABEL: playbook.name,
              "severity": _SEVERITY.get(event_.urgency, "critical"), "pagerduty_incident": event_.incident_id}
    alert = ReceivedAlert(
        fingerprint=_fingerprint(event_.incident_id), starts_at=event_.created_at,
        ends_at=event_.occurred_at if resolved else None, status=status, labels=labels,
        annotations={"summary": f"{event_.ref}: {event_.title}"[:300], "pagerduty_url": event_.html_url},
        generator_url=event_.html_url, source=PAGER_SOURCE)
    return Delivery(group_key=f"pagerduty:{event_.incident_id}", status=status, alerts=(alert,))


def _follow_own(tx: Transaction, incident_id: int, event_: PagerIncidentEvent) -> InboundReport:
    """PagerDuty's incident for the page Backout sent: on the incident's timeline."""
    incident = tx.incidents.get(incident_id)
    if incident is None:
        return InboundReport(f"{event_.ref} names INC-{incident_id}, which does not exist: ignored")
    if not tx.pager.first_delivery(event_.event_id, at=event_.occurred_at):
        return InboundReport(f"{event_.ref}: seen before", incident_id=incident_id, duplicate=True)
    _note(tx, incident, event_)
    if event_.kind is PagerIncidentKind.ACKNOWLEDGED:
        _acknowledge(tx, incident, event_)
    return InboundReport(f"{event_.ref} {_VERB[event_.kind]} on {incident.ref}", incident_id=incident_id)


def _acknowledge_raised(tx: Transaction, event_: PagerIncidentEvent) -> InboundReport:
    """PagerDuty's own incident acknowledged: the Backout incident its alert joined is too."""
    known = tx.alerts.states([(_fingerprint(event_.incident_id), event_.created_at)])
    state = next(iter(known.values()), None)
    incident = tx.incidents.get(state.incident_id) if state is not None and state.incident_id else None
    if incident is None or incident.id is None:
        return InboundReport(f"{event_.ref} acknowledged: no Backout incident has it (its trigger never "
                             "arrived): ignored")
    if not tx.pager.first_delivery(event_.event_id, at=event_.occurred_at):
        return InboundReport(f"{event_.ref}: seen before", incident_id=incident.id, duplicate=True)
    _note(tx, incident, event_)
    _acknowledge(tx, incident, event_)
    return InboundReport(f"{event_.ref} acknowledged on {incident.ref}", incident_id=incident.id)


def _note(tx: Transaction, incident: Incident, event_: PagerIncidentEvent) -> None:
    assert incident.id is not None
    by = f" by {event_.agent}" if event_.agent else ""
    tx.timeline.append(event(
        incident_id=incident.id, at=event_.occurred_at, kind=EventKind.PAGER_INCIDENT, actor=Actor.PAGERDUTY,
        actor_id=event_.agent, text=f"{event_.ref} {_VERB[event_.kind]} in PagerDuty{by}",
        data={"pagerduty_incident": event_.incident_id, "event": event_.kind.value, "url": event_.html_url}))


def _acknowledge(tx: Transaction, incident: Incident, event_: PagerIncidentEvent) -> None:
    """Someone took the page: an open incident is acknowledged (one further along stays)."""
    if incident.status is not IncidentStatus.OPEN or incident.id is None:
        return
    tx.incidents.save(transition(incident, IncidentStatus.ACKNOWLEDGED, now=event_.occurred_at))
    who = event_.agent or "PagerDuty"
    tx.timeline.append(event(
        incident_id=incident.id, at=event_.occurred_at, kind=EventKind.INCIDENT_ACKNOWLEDGED, actor=Actor.PAGERDUTY,
        actor_id=event_.agent, text=f"Acknowledged by {who} in PagerDuty ({event_.ref})",
        data={"pagerduty_incident": event_.incident_id}))


def _fingerprint(pagerduty_incident: str) -> str:
    return hashlib.sha256(f"pagerduty\x1f{pagerduty_incident}".encode()).hexdigest()[:16]
