"""Incident commands and queries used by the CLI, the HTTP API and (later) chat."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bot.domain.actions import Action, ActionKind, ActionState
from bot.domain.changes import Change
from bot.domain.errors import Conflict, NotFound
from bot.domain.incidents import EVENT_FOR, person_transition
from bot.domain.models import Actor, Alert, AlertCounts, Incident, IncidentStatus, Severity, TimelineEvent, acting
from bot.domain.ports import Store, Transaction
from bot.domain.rooms import LEAD
from bot.domain.suspects import Ranking, Suspect, pending
from bot.domain.timeline import EventKind, event
from bot.domain.verdicts import Verdict

INVESTIGATE, ANNOUNCE_RESOLVED = "investigate", "announce_resolved"  # follow-up kinds
SUMMARY_ALERTS = 20  # alerts a summary reads: more than a card or a notice lists


@dataclass(frozen=True)
class IncidentView:
    """An incident with everything known about it, for display and export."""

    incident: Incident
    alerts: list[Alert]  # every alert, or in a summary (`get_summary`) the first SUMMARY_ALERTS, firing first
    timeline: list[TimelineEvent]
    ranking: Ranking
    actions: list[Action]
    verdicts: list[Verdict] = field(default_factory=list)
    roles: dict[str, str] = field(default_factory=dict)  # role -> who holds it (the lead first)
    alert_counts: AlertCounts | None = None  # a summary's counts of every alert; else counted from `alerts`

    @property
    def counts(self) -> AlertCounts:
        """Every alert of the incident counted, the summary's included."""
        return self.alert_counts if self.alert_counts is not None else AlertCounts.of(self.alerts)

    def version(self) -> str:
        """A digest of everything shown of the incident: its state, alerts, timeline, suspects,
        actions and verdicts. It changes when any of them does, whichever code path wrote it, so
        a page or chart rendered from the view can be kept per version."""
        digest = hashlib.sha256(f"{self.counts},{len(self.alerts)},{len(self.timeline)},{len(self.actions)},"
                                f"{len(self.verdicts)}".encode())
        for part in (self.incident, self.ranking, *self.alerts, *self.timeline, *self.actions, *self.verdicts):
            digest.update(b"\x1e" + part.model_dump_json().encode())
        return digest.hexdigest()[:32]


def list_incidents(
    *, store: Store, status: IncidentStatus | None = None, limit: int = 100
) -> list[Incident]:
    """Newest first, optionally only one status."""
    return store.read(lambda tx: tx.incidents.list(status=status, limit=limit))


def get_incident(*, store: Store, incident_id: int) -> IncidentView:
    """The incident with every alert and its timeline, for a page or an export; NotFound if there
    is none. What is announced or shown in chat reads `get_summary`."""
    return store.read(lambda tx: _view(tx, incident_id, first_alerts=None))


def get_summary(*, store: Store, incident_id: int) -> IncidentView:
    """The incident as a card, a notice or a pull request shows it: its alerts counted and only the
    first SUMMARY_ALERTS read (firing first), so a fleet-wide group of 20,000 costs what a small one
    does; NotFound if there is none."""
    return store.read(lambda tx: _view(tx, incident_id, first_alerts=SUMMARY_ALERTS))


def _view(tx: Transaction, incident_id: int, *, first_alerts: int | None) -> IncidentView:
    incident = require(tx, incident_id)
    if first_alerts is None:
        alerts, counts = tx.alerts.for_incident(incident_id), None
    else:
        counts, alerts = tx.alerts.summary(incident_id, first=first_alerts)
    return IncidentView(
        incident=incident,
        alerts=alerts,
        alert_counts=counts,
        timeline=tx.timeline.for_incident(incident_id),
        ranking=tx.rankings.get(incident_id) or pending(),
        actions=tx.actions.for_incident(incident_id),
        verdicts=tx.verdicts.for_incident(incident_id),
        roles=_lead_first(tx.roles.for_incident(incident_id)),
    )


def _lead_first(roles: dict[str, str]) -> dict[str, str]:
    return dict(sorted(roles.items(), key=lambda item: (item[0] != LEAD, item[0])))


def get_ranking(*, store: Store, incident_id: int) -> Ranking:
    """The incident's suspects; `pending` until the first ranking is stored."""

    def work(tx: Transaction) -> Ranking:
        require(tx, incident_id)
        return tx.rankings.get(incident_id) or pending()

    return store.run(work)


def save_suspects(*, store: Store, incident_id: int, ranking: Ranking, suspects: Sequence[Suspect]) -> Ranking:
    """The ranking with its suspects annotated (warnings, code behind an image bump), stored when
    anything changed."""
    if tuple(suspects) == ranking.suspects:
        return ranking
    annotated = ranking.model_copy(update={"suspects": tuple(suspects)})
    store.run(lambda tx: tx.rankings.save(incident_id, annotated))
    return annotated


def find_changes(store: Store, repo: str | None, sha: str) -> list[Change]:
    """The stored changes whose sha starts with `sha` (in `repo`, or in any repository)."""
    return store.run(lambda tx: tx.changes.find(repo, sha))


def find_suspects(store: Store, suspects: Sequence[Suspect]) -> list[Change | None]:
    """Each suspect's stored change (None if gone), in one transaction."""
    def work(tx: Transaction) -> list[Change | None]:
        return [next(iter(tx.changes.find(s.repo, s.sha)), None) for s in suspects]

    return store.run(work)


def get_timeline(*, store: Store, incident_id: int) -> list[TimelineEvent]:
    """The incident's timeline in order."""

    def work(tx: Transaction) -> list[TimelineEvent]:
        require(tx, incident_id)
        return tx.timeline.for_incident(incident_id)

    return store.run(work)


@dataclass(frozen=True)
class CommandResult:
    incident: Incident
    changed: bool
    message: str


def change_status(
    *,
    store: Store,
    incident_id: int,
    target: IncidentStatus,
    actor: Actor,
    actor_id: str,
    now: datetime,
    note: str = "",
    on_behalf_of: str = "",
) -> CommandResult:
    """Acknowledge, resolve, reopen or close, as a person asks (the states Backout drives are
    not theirs to set). Asking for the status it already has is a no-op. `on_behalf_of`: whom
    the actor says it acts for."""

    def work(tx: Transaction) -> CommandResult:
        incident = require(tx, incident_id)
        if incident.status is target:
            return CommandResult(incident, False, f"{incident.ref} is already {target.value}")
        updated = person_transition(incident, target, now=now)
        tx.incidents.save(updated)
        who = acting(actor_id or actor.value, on_behalf_of)
        verb = "Reopened" if target is IncidentStatus.OPEN else target.value.capitalize()
        text = f"{verb} by {who}" + (f": {note}" if note else "")
        data: dict[str, object] = {"note": note} if note else {}
        if target is IncidentStatus.OPEN:
            data["by"] = who
        tx.timeline.append(event(
            incident_id=incident_id, at=now, kind=EVENT_FOR[target], actor=actor,
            actor_id=actor_id, text=text, data=data, on_behalf_of=on_behalf_of,
        ))
        if target is IncidentStatus.ACKNOWLEDGED and actor is Actor.USER:  # the person leads, not the token
            _first_lead(tx, incident_id, user=on_behalf_of or actor_id, actor_id=actor_id, now=now,
                        on_behalf_of=on_behalf_of)
        if target is IncidentStatus.RESOLVED:
            tx.timeline.append_many(open_branch_reminders(tx, incident_id, now=now))
        if target is IncidentStatus.OPEN:
            kept = ranking_kept(tx, incident_id, now=now)
            if kept is not None:
                tx.timeline.append(kept)
            tx.follow_ups.add(incident_id, INVESTIGATE, at=now)  # ranked again, as an alert's reopen is
        return CommandResult(updated, True, f"{updated.ref} is now {target.value}")

    return store.run(work)


def _first_lead(tx: Transaction, incident_id: int, *, user: str, actor_id: str, now: datetime,
                on_behalf_of: str) -> None:
    """The first person to acknowledge leads, unless someone was made lead before."""
    if not user or LEAD in tx.roles.for_incident(incident_id):
        return
    tx.roles.assign(incident_id, LEAD, user, at=now, by=acting(actor_id, on_behalf_of))
    tx.timeline.append(event(incident_id=incident_id, at=now, kind=EventKind.ROLE_ASSIGNED, actor=Actor.USER,
                             actor_id=actor_id, on_behalf_of=on_behalf_of,
                             text=f"{LEAD}: {user}, the first to acknowledge",
                             data={"role": LEAD, "user": user, "was": None}))
    tx.rooms.request_invites(incident_id)  # the lead belongs in the channel


def open_branch_reminders(tx: Transaction, incident_id: int, *, now: datetime) -> list[TimelineEvent]:
    """At resolve: a reminder for each incident branch still open (bot/services/incident_branch.py)."""
    reminders = []
    for action in tx.actions.for_incident(incident_id):
        if action.kind is not ActionKind.INCIDENT_BRANCH or action.state not in (ActionState.PUSHED,
                                                                                ActionState.PR_OPEN):
            continue
        where = action.url or f"{action.branch} on {action.repo}"
        reminders.append(event(
            incident_id=incident_id, at=now, kind=EventKind.BRANCH_REMINDER, actor=Actor.BACKOUT,
            text=f"Resolved while the incident branch is still open: {where}. Merge the fix, or close it so it "
                 "does not linger.", data={"repo": action.repo, "branch": action.branch, "url": action.url}))
    return reminders


def ranking_kept(tx: Transaction, incident_id: int, *, now: datetime) -> TimelineEvent | None:
    """On a reopen: the ranking as the resolution left it, on the timeline, so a later ranking
    never hides what people acted on."""
    ranking = tx.rankings.get(incident_id)
    if ranking is None or not ranking.suspects:
        return None
    top = [f"{s.short} {s.score:.2f} {s.subject[:80]}" for s in ranking.suspects[:3]]
    return event(incident_id=incident_id, at=now, kind=EventKind.RANKING_KEPT, actor=Actor.BACKOUT,
                 text=f"The ranking at the resolution, kept: {ranking.reason} Top: " + "; ".join(top),
                 data={"confident": ranking.confident,
                       "suspects": [{"sha": s.sha, "score": s.score} for s in ranking.suspects[:5]]})


def add_note(
    *, store: Store, incident_id: int, text: str, actor: Actor, actor_id: str, now: datetime,
    on_behalf_of: str = "",
) -> TimelineEvent:
    """Append a free-text note to the timeline."""
    if not text.strip():
        raise Conflict("a note needs some text")

    def work(tx: Transaction) -> TimelineEvent:
        require(tx, incident_id)
        return tx.timeline.append(event(
            incident_id=incident_id, at=now, kind=EventKind.NOTE, actor=actor,
            actor_id=actor_id, text=text.strip()[:4000], on_behalf_of=on_behalf_of,
        ))

    return store.run(work)


def require(tx: Transaction, incident_id: int) -> Incident:
    incident = tx.incidents.get(incident_id)
    if incident is None:
        raise NotFound(f"INC-{incident_id} does not exist")
    return incident


def open_manually(*, store: Store, title: str, service: str, playbook: str | None, actor_id: str,
                  now: datetime) -> Incident:
    """Declare an incident by hand (no alert); it groups with nothing else."""
    text = " ".join(title.split())[:200]
    if not text:
        raise Conflict("an incident needs a title")

    def work(tx: Transaction) -> Incident:
        incident = tx.incidents.add(Incident(
            group_key=f"manual:{uuid.uuid4()}", title=text, service=service or "unknown",
            severity=Severity.NONE, status=IncidentStatus.OPEN, playbook=playbook,
            started_at=now, opened_at=now))
        tx.timeline.append(event(
            incident_id=incident.id or 0, at=now, kind=EventKind.INCIDENT_OPENED, actor=Actor.USER,
            actor_id=actor_id, text=f"Declared by {actor_id}: {text}", data={"manual": True}))
        return incident

    return store.run(work)
