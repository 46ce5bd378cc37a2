"""Ingest: turn a delivery of alerts into incidents, idempotently, with a timeline.

An alert's identity is (fingerprint, starts_at) and its status only moves forward, from
firing to resolved: a delivery seen before, from a retry or from the second Alertmanager of
an HA pair, finds every alert already in that state and changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bot.domain.durations import format_duration
from bot.domain.grouping import incident_title, route_alert
from bot.domain.incidents import IncidentPolicy, transition
from bot.domain.models import (
    Actor,
    Alert,
    AlertState,
    AlertStatus,
    Delivery,
    Incident,
    IncidentStatus,
    ReceivedAlert,
    Severity,
    TimelineEvent,
)
from bot.domain.playbooks import Playbook
from bot.domain.ports import Store, Transaction
from bot.domain.timeline import EventKind, event
from bot.services.alert_events import EVENTS_PER_ALERT, counted, one_each
from bot.services.incidents import ANNOUNCE_RESOLVED, INVESTIGATE, ranking_kept

CONTROLLER_ALERTS = frozenset({"flux", "argocd"})  # alerts raised for failed reconciliations


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
    """Record a delivery in one transaction; see the module docstring for idempotency."""
    return ingest_deliveries(store=store, deliveries=[delivery], playbooks=playbooks, policy=policy, now=now)[0]


def ingest_deliveries(
    *,
    store: Store,
    deliveries: Sequence[Delivery],
    playbooks: Sequence[Playbook],
    policy: IncidentPolicy,
    now: datetime,
) -> list[IngestOutcome]:
    """Record several deliveries in one transaction (group commit), in order, with statements
    per batch rather than per delivery: one lookup of every alert the batch names, one lookup
    of each group's incident, one insert of the new alerts and one of the events. The caller
    retries each delivery on its own if the batch fails, so one bad delivery cannot sink the
    others."""

    def work(tx: Transaction) -> list[IngestOutcome]:
        batch = _Batch(tx, deliveries, playbooks=playbooks, policy=policy, now=now)
        outcomes = [_Ingestion(batch, delivery).run() for delivery in deliveries]
        batch.flush()
        return outcomes

    return store.run(work)


class _Batch:
    """What the deliveries of one transaction share: the alerts and incidents they have read
    or changed, and the writes not yet sent. Each read of the database that could see a pending
    write flushes first, so a delivery sees everything the ones before it did."""

    def __init__(self, tx: Transaction, deliveries: Sequence[Delivery], *, playbooks: Sequence[Playbook],
                 policy: IncidentPolicy, now: datetime) -> None:
        self.tx, self.playbooks, self.policy, self.now = tx, playbooks, policy, now
        self.known = tx.alerts.states([(a.fingerprint, a.starts_at) for d in deliveries for a in d.alerts])
        self.incidents: dict[str, Incident | None] = {}  # by group key, as loaded or changed
        self.changed: dict[int, Incident] = {}  # to save
        self.new_alerts: list[Alert] = []  # to insert
        self.events: list[TimelineEvent] = []  # to append

    def incident(self, group_key: str) -> Incident | None:
        if group_key not in self.incidents:
            self.incidents[group_key] = self.tx.incidents.find_latest(group_key)
        return self.incidents[group_key]

    def get_incident(self, incident_id: int) -> Incident | None:
        return self.changed.get(incident_id) or self.tx.incidents.get(incident_id)

    def update(self, incident: Incident) -> Incident:
        assert incident.id is not None
        self.incidents[incident.group_key] = incident
        self.changed[incident.id] = incident
        return incident

    def add_alerts(self, alerts: Sequence[Alert]) -> None:
        self.new_alerts.extend(alerts)
        for alert in alerts:
            self.known[(alert.fingerprint, alert.starts_at)] = AlertState(None, alert.incident_id, alert.status)

    def flush(self) -> None:
        """Send the pending writes: new alerts, changed incidents, events."""
        if self.new_alerts:
            self.tx.alerts.add_many(self.new_alerts)
            self.new_alerts = []
        for incident in self.changed.values():
            self.tx.incidents.save(incident)
        self.changed = {}
        self.tx.timeline.append_many(self.events)
        self.events = []


class _Ingestion:
    """One delivery's unit of work. Firing alerts are placed first, so that a resolution in the
    same delivery sees every alert its incident now has."""

    def __init__(self, batch: _Batch, delivery: Delivery) -> None:
        self.batch, self.tx, self.delivery = batch, batch.tx, delivery
        self.playbooks, self.policy, self.now = batch.playbooks, batch.policy, batch.now
        self.outcome = IngestOutcome()
        sources = {a.source for a in delivery.alerts}
        self.actor = (Actor.PROBE if sources == {"probe"} else
                      Actor.CONTROLLER if sources and sources <= CONTROLLER_ALERTS else Actor.ALERTMANAGER)
        self.actor_id = delivery.group_key if self.actor is not Actor.ALERTMANAGER else ""
        # alerts (as received) by incident and kind, written in order: see _flush_alert_events
        self.alert_events: dict[tuple[int, EventKind], list[ReceivedAlert]] = {}

    def run(self) -> IngestOutcome:
        known = self.batch.known
        new_alerts: list[Alert] = []
        resolutions: list[tuple[AlertState, ReceivedAlert]] = []
        for received in self.delivery.alerts:
            identity = (received.fingerprint, received.starts_at)
            existing = known.get(identity)
            if existing is None:
                alert = self._place(received)
                new_alerts.append(alert)
                known[identity] = AlertState(None, alert.incident_id, alert.status)  # twice in one delivery
            elif existing.status is AlertStatus.FIRING and received.status is AlertStatus.RESOLVED:
                resolutions.append((existing, received))
            else:
                # The same delivery again, or a stale firing copy after the resolution.
                self.outcome.duplicates += 1
        self.batch.add_alerts(new_alerts)
        self.outcome.new_alerts = len(new_alerts)
        self._resolve_all(resolutions)
        self._flush_alert_events()
        self._note_set_aside()
        # The work the 200 promises, recorded with the state it follows from: a crash after the
        # answer leaves it pending for the sweep, never lost.
        for incident in [*self.outcome.opened, *self.outcome.reopened]:
            self.tx.follow_ups.add(incident.id or 0, INVESTIGATE, at=self.now)
        for incident in self.outcome.resolved:
            self.tx.follow_ups.add(incident.id or 0, ANNOUNCE_RESOLVED, at=self.now)
        return self.outcome

    def _note_set_aside(self) -> None:
        """Each alert set aside, on every incident the delivery changed. A repeat of the delivery
        changes none, so the timeline says it once; the webhook's answer says it every time."""
        for incident_id in sorted(self.outcome.touched):
            for aside in self.delivery.set_aside:
                self._append(incident_id, EventKind.ALERT_SET_ASIDE,
                             f"{aside.name} ({aside.fingerprint}) set aside, not stored: {aside.reason}; "
                             "the delivery's other alerts were stored",
                             {"fingerprint": aside.fingerprint, "reason": aside.reason})

    def _incident(self, group_key: str) -> Incident | None:
        return self.batch.incident(group_key)

    def _update(self, incident: Incident) -> Incident:
        return self.batch.update(incident)

    def _place(self, received: ReceivedAlert) -> Alert:
        """A new alert: join its incident (opening or reopening one if need be)."""
        route = route_alert(received, playbooks=self.playbooks, group_key=self.delivery.group_key)
        latest = self._incident(route.group_key)
        if received.status is AlertStatus.RESOLVED:
            # A resolution for an alert never seen firing (it fired while we were down). Keep
            # it, so a late firing copy is recognised, but open nothing for it.
            incident_id = latest.id if latest is not None and latest.active else None
            alert = _new_alert(received, incident_id=incident_id, now=self.now)
            if latest is not None and incident_id is not None:
                self._alert_event(latest, alert, EventKind.ALERT_RESOLVED)
            return alert
        if route.playbook is not None and (latest is None or not latest.active):
            latest = self._sibling(received, route.playbook, route.service) or latest
        incident = self._open_or_join(latest, received, group_key=route.group_key,
                                      service=route.service, playbook=route.playbook)
        assert incident.id is not None
        alert = _new_alert(received, incident_id=incident.id, now=self.now)
        self._alert_event(incident, alert, EventKind.ALERT_FIRING)
        severity = Severity.from_label(received.labels.get("severity"))
        if severity.rank > incident.severity.rank:
            self._update(incident.model_copy(update={"severity": severity}))
            self._event(incident.id, EventKind.SEVERITY_RAISED,
                        f"Severity raised from {incident.severity.value} to {severity.value} "
                        f"by {alert.name}", {"from": incident.severity.value, "to": severity.value})
        return alert

    def _sibling(self, received: ReceivedAlert, playbook: Playbook, service: str) -> Incident | None:
        """One problem, one incident: a playbook's probe, an Alertmanager alert and a failed
        reconciliation for the same service join the active incident another opened. A resolved
        one is a record: only one of its own alerts firing again within the window reopens it."""
        self.batch.flush()  # the incidents and alerts read below may have pending writes
        sibling = self.tx.incidents.latest_of_playbook(playbook.name, service)
        if sibling is None or sibling.id is None:
            return None
        # Asked of the database, not read alert by alert: the sibling may be a fleet-wide group.
        if not sibling.active:
            # Reopened only by one of its own alerts firing again (never a failed reconciliation).
            if received.source in CONTROLLER_ALERTS or not self.policy.may_reopen(sibling, now=self.now) or (
                    not self.tx.alerts.has(sibling.id, fingerprint=received.fingerprint)):
                return None
        elif not self.tx.alerts.sources(sibling.id) - {received.source}:
            return None  # alerts of one kind (two Alertmanager groups, say) keep their own grouping
        self.batch.incidents[sibling.group_key] = sibling
        return sibling

    def _open_or_join(self, latest: Incident | None, received: ReceivedAlert, *, group_key: str,
                      service: str, playbook: Playbook | None) -> Incident:
        """The active incident for the key, a recently resolved one reopened, or a new one."""
        name = received.labels.get("alertname", "alert")
        if latest is not None and latest.active:
            return latest
        # A failed reconciliation is news of a revision, not the same alert again: it opens a new
        # incident that follows the resolved one. Any other alert of the group reopens it.
        if (latest is not None and latest.id is not None and received.source not in CONTROLLER_ALERTS
                and self.policy.may_reopen(latest, now=self.now)):
            return self._reopen(latest, received)
        follows = self._follows(latest, playbook, service)
        incident = self.tx.incidents.add(Incident(
            group_key=group_key,
            title=incident_title(received, service),
            service=service,
            severity=Severity.from_label(received.labels.get("severity")),
            status=IncidentStatus.OPEN,
            playbook=playbook.name if playbook else None,
            started_at=received.starts_at,
            opened_at=self.now,
            follows=follows.id if follows is not None else None,
        ))
        assert incident.id is not None
        self.batch.incidents[group_key] = incident
        which = f"playbook {playbook.name}" if playbook else "no playbook matched"
        after = f"; follows {follows.ref}, resolved at {follows.resolved_at:%H:%M} UTC" if (
            follows is not None and follows.resolved_at is not None) else ""
        self._event(incident.id, EventKind.INCIDENT_OPENED,
                    f"Opened by {name} for service {service} ({which}){after}",
                    {"group_key": group_key, "fingerprint": received.fingerprint,
                     **({"follows": follows.id} if follows is not None else {})})
        self.outcome.opened.append(incident)
        return incident

    def _reopen(self, latest: Incident, received: ReceivedAlert) -> Incident:
        """The same alert group fired again within the window: say truly what fired."""
        assert latest.id is not None
        self.batch.flush()  # the alerts read below may have pending writes
        name = received.labels.get("alertname", "alert")
        seen = self.tx.alerts.has(latest.id, name=name)
        what = f"{name} fired again" if seen else f"{name} fired in its alert group"
        reopened = self._update(transition(latest, IncidentStatus.OPEN, now=self.now))
        self._event(latest.id, EventKind.INCIDENT_REOPENED,
                    f"Reopened: {what} within {format_duration(self.policy.reopen_within)} of the resolution",
                    {"fingerprint": received.fingerprint, "alertname": name})
        kept = ranking_kept(self.tx, latest.id, now=self.now)
        if kept is not None:
            self.batch.events.append(kept)
        self.outcome.reopened.append(reopened)
        return reopened

    def _follows(self, latest: Incident | None, playbook: Playbook | None, service: str) -> Incident | None:
        """The incident, of the same alert group or the same playbook, resolved within the
        reopen window, that a new one comes after."""
        candidates = [latest]
        if playbook is not None:
            self.batch.flush()
            candidates.append(self.tx.incidents.latest_of_playbook(playbook.name, service))
        recent = [i for i in candidates if i is not None and i.id is not None
                  and self.policy.follows(i, now=self.now)]
        return max(recent, key=lambda i: i.id or 0, default=None)

    def _resolve_all(self, resolutions: Sequence[tuple[AlertState, ReceivedAlert]]) -> None:
        """Mark alerts resolved (one batch), then resolve each incident none of whose alerts
        still fires: one count per incident, so a group of 10,000 resolves in linear time."""
        if not resolutions:
            return
        self.batch.flush()  # the counts below see the alerts placed earlier in the batch
        if any(known.id is None for known, _ in resolutions):  # placed earlier in the batch: read their ids
            stored = self.tx.alerts.states([(r.fingerprint, r.starts_at) for _, r in resolutions])
            self.batch.known.update(stored)
            resolutions = [(stored[(r.fingerprint, r.starts_at)], r) for _, r in resolutions]
        changed = self.tx.alerts.resolve_many([(known.id or 0, received.ends_at) for known, received in resolutions])
        self.outcome.resolved_alerts += len(changed)
        self.outcome.duplicates += len(resolutions) - len(changed)  # another replica recorded them first
        touched: dict[int, Incident] = {}
        for known, received in resolutions:
            if known.id not in changed:
                continue
            self.batch.known[(received.fingerprint, received.starts_at)] = known._replace(status=AlertStatus.RESOLVED)
            if known.incident_id is None:
                continue
            incident = touched.get(known.incident_id) or self.batch.get_incident(known.incident_id)
            if incident is None:
                continue
            touched[known.incident_id] = incident
            self._alert_event(incident, received, EventKind.ALERT_RESOLVED)
        for incident_id, incident in touched.items():
            if not (self.policy.auto_resolve and incident.active) or self.policy.clear_for:
                continue  # with clear_for, the scheduler resolves once everything stayed clear
            if self.tx.alerts.count_firing(incident_id):
                continue
            done = self._update(transition(incident, IncidentStatus.RESOLVED, now=self.now))
            self._event(incident_id, EventKind.INCIDENT_RESOLVED,
                        "Resolved: all its alerts resolved", {"reason": "all_alerts_resolved"})
            self.outcome.resolved.append(done)

    def _event(self, incident_id: int, kind: EventKind, text: str, data: dict[str, object]) -> None:
        self._flush_alert_events()  # the alerts' events come before what they led to
        self._append(incident_id, kind, text, data)

    def _append(self, incident_id: int, kind: EventKind, text: str, data: dict[str, object]) -> None:
        self.outcome.touched.add(incident_id)
        self.batch.events.append(event(incident_id=incident_id, at=self.now, kind=kind, actor=self.actor,
                                 actor_id=self.actor_id, text=text, data=data))

    def _alert_event(self, incident: Incident, alert: ReceivedAlert, kind: EventKind) -> None:
        assert incident.id is not None
        self.alert_events.setdefault((incident.id, kind), []).append(alert)

    def _flush_alert_events(self) -> None:
        """The alerts' events (bot/services/alert_events.py): one per alert, one that counts them
        past EVENTS_PER_ALERT, and for a part of a huge delivery, the delivery's one count event."""
        for (incident_id, kind), alerts in self.alert_events.items():
            if self.delivery.part_of:
                self._count_part(incident_id, kind, alerts)
            elif len(alerts) > EVENTS_PER_ALERT:
                self._append(incident_id, kind, *counted(alerts, kind))
            else:
                for text, data in one_each(alerts, kind):
                    self._append(incident_id, kind, text, data)
        self.alert_events.clear()

    def _count_part(self, incident_id: int, kind: EventKind, alerts: Sequence[ReceivedAlert]) -> None:
        """A part's alerts added to its delivery's count event, in the part's transaction: after a
        crash between parts the event counts what was stored, and the delivery sent again (its
        stored alerts now duplicates) completes the same event rather than writing another."""
        self.batch.flush()  # this batch's earlier events first, and the event found below is current
        key = self.delivery.part_of
        before = self.tx.timeline.of_delivery(incident_id, kind.value, key)
        text, data = counted(alerts, kind, delivery=key, before=before)
        self.outcome.touched.add(incident_id)
        if before is None:
            self.tx.timeline.append(event(incident_id=incident_id, at=self.now, kind=kind, actor=self.actor,
                                          actor_id=self.actor_id, text=text, data=data))
        else:
            self.tx.timeline.recount(before.model_copy(update={"text": text, "data": data}))


def _new_alert(received: ReceivedAlert, *, incident_id: int | None, now: datetime) -> Alert:
    return Alert(**received.__dict__, incident_id=incident_id, received_at=now)  # its fields, without a model_dump
