"""Watching: health probes, verification after a rollback, reminders and auto-resolve.

Each function is one scheduled job's work, with time passed in; the scheduler calls them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qs, urlparse

from bot.domain.actions import undoing
from bot.domain.automerge import window_state
from bot.domain.durations import format_duration
from bot.domain.errors import BackoutError
from bot.domain.incidents import IncidentPolicy, transition
from bot.domain.models import Actor, Alert, AlertStatus, Delivery, IncidentStatus, TimelineEvent
from bot.domain.playbooks import Playbook, Probe, Reminders, Verify, playbook_named
from bot.domain.ports import MetricsQuery, Notifier, Store, Transaction, Verification
from bot.domain.probes import ProbeChange, ProbeState, ProbeStatus, probe_alert, probe_key, reminder_due, step
from bot.domain.timeline import EventKind, event
from bot.services import notify
from bot.services.incidents import get_summary, get_timeline
from bot.services.ingest import IngestOutcome, ingest_delivery

# A verification built from an alert rule's expression: healthy when it returns no series.
ALERT_EXPR = "alert-expr:"


@dataclass(frozen=True)
class ProbeRun:
    state: ProbeState
    change: ProbeChange
    outcome: IngestOutcome | None = None
    error: str = ""


def run_probe(*, store: Store, metrics: MetricsQuery, playbook: Playbook, probe: Probe,
              playbooks: Sequence[Playbook], policy: IncidentPolicy, now: datetime) -> ProbeRun:
    """Evaluate one probe; a probe that starts or stops holding opens or resolves its alert through
    the same ingestion as Alertmanager's. One that cannot be evaluated changes nothing."""
    key = probe_key(playbook, probe)
    before = store.run(lambda tx: tx.watch.probe_state(key)) or ProbeState(key=key)
    try:
        value, error = metrics.value(probe.query), ""
        if value is None:
            error = "the query returned no data"
    except BackoutError as exc:
        value, error = None, str(exc)
    after, change = step(before, probe, value=value, error=error, now=now)
    if (after.status, after.since, after.error) != (before.status, before.since, before.error):
        store.run(lambda tx: tx.watch.save_probe_state(after))  # a steady probe writes nothing
    outcome = None
    if change is ProbeChange.STARTED:
        alert = probe_alert(playbook, probe, after, status=AlertStatus.FIRING, now=now)
        outcome = ingest_delivery(store=store, delivery=Delivery(group_key=f"probe:{key}", status=AlertStatus.FIRING,
                                                                  alerts=(alert,)),
                                  playbooks=playbooks, policy=policy, now=now)
    elif change is ProbeChange.STOPPED:
        alert = probe_alert(playbook, probe, before, status=AlertStatus.RESOLVED, now=now)
        outcome = ingest_delivery(store=store, delivery=Delivery(group_key=f"probe:{key}",
                                                                  status=AlertStatus.RESOLVED, alerts=(alert,)),
                                  playbooks=playbooks, policy=policy, now=now)
    elif value is None and not before.error and before.status is ProbeStatus.FIRING:
        _note_unevaluable(store, key=key, probe=probe, error=error, now=now)
    return ProbeRun(state=after, change=change, outcome=outcome, error=error)


def _note_unevaluable(store: Store, *, key: str, probe: Probe, error: str, now: datetime) -> None:
    """On the incident a firing probe belongs to: it cannot be evaluated (said once per outage)."""

    def work(tx: Transaction) -> None:
        incident = next((i for i in tx.incidents.list(active=True, limit=200)
                         if i.group_key.startswith("playbook:") and any(
                             a.labels.get("probe") == probe.name and a.status is AlertStatus.FIRING
                             for a in tx.alerts.for_incident(i.id or 0))), None)
        if incident is not None and incident.id is not None:
            tx.timeline.append(event(
                incident_id=incident.id, at=now, kind=EventKind.PROBE_UNKNOWN, actor=Actor.SCHEDULER,
                text=f"Probe {key} cannot be evaluated ({error}); taken as neither healthy nor unhealthy"))

    store.run(work)


def verify_rollbacks(*, store: Store, metrics: MetricsQuery, notifier: Notifier, playbooks: Sequence[Playbook],
                     now: datetime) -> int:
    """Start watching incidents whose revert was pushed or merged; record recovery (and the time
    to mitigate) once the key metric stays healthy, or say when it has not recovered in time."""
    _start_verifications(store, playbooks, now)
    changed = 0
    for verification in store.run(lambda tx: tx.watch.watching()):
        incident = get_summary(store=store, incident_id=verification.incident_id).incident
        playbook = playbook_named(playbooks, incident.playbook) if incident else None
        healthy = _healthy(metrics, verification, playbook)
        updated = _advance(verification, healthy=healthy, playbook=playbook, now=now)
        if updated == verification:
            continue
        changed += 1
        _record_verification(store, notifier, updated, now=now)
    return changed


def _start_verifications(store: Store, playbooks: Sequence[Playbook], now: datetime) -> None:
    def work(tx: Transaction) -> None:
        for incident in tx.incidents.list(limit=200):
            if incident.id is None or tx.watch.verification(incident.id) is not None:
                continue
            actions = tx.actions.for_incident(incident.id)
            if not any(undoing(a) for a in actions):
                continue
            playbook = playbook_named(playbooks, incident.playbook)
            check = playbook.health_check() if playbook else None
            query = check[0] if check else _alert_expr(tx.alerts.for_incident(incident.id))
            if query is None:
                continue
            tx.watch.save_verification(Verification(incident_id=incident.id, query=query, started_at=now))
            shown = query.removeprefix(ALERT_EXPR)
            tx.timeline.append(event(incident_id=incident.id, at=now, kind=EventKind.VERIFY_STARTED,
                                     actor=Actor.SCHEDULER, text=f"Watching for recovery: {shown[:300]}"))

    store.run(work)


def _alert_expr(alerts: Sequence[Alert]) -> str | None:
    """The alert rule's expression from an alert's generatorURL (`g0.expr`), if there is one."""
    for alert in alerts:
        url = alert.generator_url
        expr = parse_qs(urlparse(url).query).get("g0.expr", [""])[0] if url else ""
        if expr:
            return ALERT_EXPR + expr
    return None


def _healthy(metrics: MetricsQuery, verification: Verification, playbook: Playbook | None) -> bool | None:
    """True, False, or None when it cannot be told (never taken for either)."""
    try:
        if verification.query.startswith(ALERT_EXPR):
            return metrics.value(verification.query.removeprefix(ALERT_EXPR)) is None
        check = playbook.health_check() if playbook else None
        value = metrics.value(verification.query)
    except BackoutError:
        return None
    if check is None or value is None:
        return None
    return check[1](value)


def _advance(v: Verification, *, healthy: bool | None, playbook: Playbook | None, now: datetime) -> Verification:
    policy = playbook.verify if playbook else Verify()
    stay, within = policy.stay, policy.within
    if healthy is True:
        since = v.healthy_since or now
        if now - since >= stay:
            return Verification(v.incident_id, v.query, v.started_at, since, "recovered")
        return Verification(v.incident_id, v.query, v.started_at, since, "watching")
    if healthy is False and now - v.started_at >= within:
        return Verification(v.incident_id, v.query, v.started_at, None, "not_recovered")
    if healthy is False:
        return Verification(v.incident_id, v.query, v.started_at, None, "watching")
    return v


def _record_verification(store: Store, notifier: Notifier, v: Verification, *, now: datetime) -> None:
    def work(tx: Transaction) -> bool:
        tx.watch.save_verification(v)
        if v.outcome == "recovered" and v.healthy_since is not None:
            took = v.healthy_since - v.started_at
            tx.timeline.append(event(
                incident_id=v.incident_id, at=now, kind=EventKind.VERIFY_RECOVERED, actor=Actor.SCHEDULER,
                text=f"Recovered: healthy since {v.healthy_since:%H:%M:%S} UTC, {took} after the rollback",
                data={"recovered_at": v.healthy_since.isoformat()}))
            # Verified follows once the revert is applied (bot/services/lifecycle.py). One already
            # resolved (its alerts cleared first) still records when it was mitigated.
            incident = tx.incidents.get(v.incident_id)
            if incident is not None and not incident.active and incident.mitigated_at is None:
                tx.incidents.save(incident.model_copy(update={"mitigated_at": v.healthy_since}))
            return True
        if v.outcome == "not_recovered":
            automatic = any(window_state(a) == "merged" for a in tx.actions.for_incident(v.incident_id))
            tx.timeline.append(event(
                incident_id=v.incident_id, at=now, kind=EventKind.VERIFY_FAILED, actor=Actor.SCHEDULER,
                text=f"Not recovered {now - v.started_at} after the rollback: look again at the suspects"
                     + (". Backout merged it by itself and does nothing more by itself: the next step is yours"
                        if automatic else ""), data={"automatic": automatic}))
            return True
        return False

    if store.run(work):
        notify.incident_update(store=store, notifier=notifier, incident_id=v.incident_id,
                               kind=f"verify.{v.outcome}")


def send_reminders(*, store: Store, notifier: Notifier, playbooks: Sequence[Playbook], now: datetime) -> int:
    """Remind the channel of open incidents nobody has acknowledged."""
    sent = 0
    for incident in store.run(lambda tx: tx.incidents.list(status=IncidentStatus.OPEN, limit=500)):
        if incident.id is None:
            continue
        playbook = playbook_named(playbooks, incident.playbook)
        policy = playbook.reminders if playbook else Reminders()
        events = get_timeline(store=store, incident_id=incident.id)
        reminders = [e for e in events if e.kind == EventKind.INCIDENT_REMINDER]
        if not reminder_due(incident, policy, sent=len(reminders), last=reminders[-1].at if reminders else None,
                            now=now):
            continue
        minutes = int((now - incident.opened_at).total_seconds() // 60)
        reminder = event(incident_id=incident.id, at=now, kind=EventKind.INCIDENT_REMINDER, actor=Actor.SCHEDULER,
                         text=f"Reminder {len(reminders) + 1}/{policy.max}: open for {minutes} min and not "
                              "acknowledged")
        _append(store, reminder)
        notify.incident_update(store=store, notifier=notifier, incident_id=incident.id, kind="incident.reminder")
        sent += 1
    return sent


def _append(store: Store, item: TimelineEvent) -> None:
    store.run(lambda tx: tx.timeline.append(item))


def resolve_cleared(*, store: Store, notifier: Notifier, policy: IncidentPolicy, now: datetime) -> int:
    """With `incidents.clear_for`, resolve incidents whose alerts (probes included) all stayed clear."""
    if not policy.auto_resolve or not policy.clear_for:
        return 0

    def work(tx: Transaction) -> list[int]:
        resolved = []
        for incident in tx.incidents.list(active=True, limit=500):
            counts, _ = tx.alerts.summary(incident.id or 0, first=0)  # counted, not read: a group may be huge
            last = counts.cleared_at
            if last is None or counts.firing or now - last < policy.clear_for:
                continue
            tx.incidents.save(transition(incident, IncidentStatus.RESOLVED, now=now))
            tx.timeline.append(event(
                incident_id=incident.id or 0, at=now, kind=EventKind.INCIDENT_RESOLVED, actor=Actor.SCHEDULER,
                text=f"Resolved: all its alerts and probes clear for {format_duration(policy.clear_for)}",
                data={"reason": "clear_for"}))
            resolved.append(incident.id or 0)
        return resolved

    done = store.run(work)
    for incident_id in done:
        notify.incident_update(store=store, notifier=notifier, incident_id=incident_id, kind="incident.resolved")
    return len(done)

