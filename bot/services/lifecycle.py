"""The incident's life after a rollback, as Backout sees it (docs/lifecycle.md): mitigating while
the revert's pull request is open, mitigated once the revert is applied, verified once the key
metric recovered. Each step is a transition on the timeline; the scheduler, the pull request
follower and the controller webhook drive them, with time passed in."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.domain.actions import CHANGING, Action, ActionKind, ActionState
from bot.domain.changes import CONTROLLER_SOURCES, reverted_by
from bot.domain.durations import format_duration
from bot.domain.incidents import EVENT_FOR, can_transition, transition
from bot.domain.models import Actor, Incident, IncidentStatus
from bot.domain.playbooks import Playbook, playbook_named
from bot.domain.ports import Notifier, Store, Transaction
from bot.domain.timeline import event
from bot.services import notify
from bot.services.applied import deploying_objects
from bot.services.watching import ALERT_EXPR

S = IncidentStatus
# Reverts whose pull request may yet be merged, or already was.
UNDER_WAY = frozenset({ActionState.PR_OPEN, ActionState.MERGED, ActionState.PUSHED})


def move(tx: Transaction, incident: Incident, target: IncidentStatus, *, now: datetime, text: str,
         data: dict[str, object] | None = None) -> Incident | None:
    """Take one step of the life when the machine allows it, on the timeline; None otherwise."""
    if incident.id is None or not can_transition(incident.status, target):
        return None
    moved = transition(incident, target, now=now)
    tx.incidents.save(moved)
    tx.timeline.append(event(incident_id=incident.id, at=now, kind=EVENT_FOR[target], actor=Actor.BACKOUT,
                             text=text, data=data or {}))
    return moved


def request_opened(tx: Transaction, action: Action, *, now: datetime) -> None:
    """A revert's pull request is open: the incident is being mitigated."""
    incident = tx.incidents.get(action.incident_id)
    if action.kind in CHANGING and incident is not None and incident.status in (S.OPEN, S.ACKNOWLEDGED):
        what = (f"the restore to last known good {action.commit_sha[:7]}" if action.kind is ActionKind.RESTORE
                else f"the revert of {action.commit_sha[:7]}")
        move(tx, incident, S.MITIGATING, now=now, data={"url": action.url},
             text=f"Mitigating: {what} is proposed in {action.request_name}")


def request_merged(tx: Transaction, action: Action, *, now: datetime) -> None:
    """A revert's (or an incident branch's) pull request merged: still mitigating until it is applied."""
    incident = tx.incidents.get(action.incident_id)
    what = "incident branch's fix" if action.kind is ActionKind.INCIDENT_BRANCH else action.kind.value
    if incident is not None and incident.status in (S.OPEN, S.ACKNOWLEDGED):
        move(tx, incident, S.MITIGATING, now=now, data={"url": action.url},
             text=f"Mitigating: the {what} in {action.request_name} is merged and will be applied")


def request_closed(tx: Transaction, action: Action, *, now: datetime) -> None:
    """A revert's pull request closed without merging: no mitigation is under way any more,
    unless another revert is."""
    incident = tx.incidents.get(action.incident_id)
    if incident is None or incident.status is not S.MITIGATING:
        return
    others = [a for a in tx.actions.for_incident(action.incident_id)
              if a.id != action.id and a.kind in CHANGING and a.state in UNDER_WAY]
    if not others:
        move(tx, incident, S.ACKNOWLEDGED, now=now,
             text=f"Acknowledged again: {action.request_name} was closed without merging; nothing is mitigating")


@dataclass(frozen=True)
class Applied:
    """When a revert took effect, and how Backout knows."""

    at: datetime
    how: str
    source: str


def applied(tx: Transaction, incident: Incident, playbook: Playbook | None, *, now: datetime) -> Applied | None:
    """The revert's application: a controller object that deploys the service (or, when Backout
    cannot tell which, any) applied the commit that reverts the incident's suspect; without
    controller events for its repository, its merge plus the playbook's `sync_delay`. None while
    neither is so."""
    delay = playbook.suspects.sync_delay if playbook else None
    for action in tx.actions.for_incident(incident.id or 0):
        if action.kind in (ActionKind.RESTORE, ActionKind.INCIDENT_BRANCH) and action.state is ActionState.MERGED:
            found = _merge_applied(tx, playbook, action, delay=delay, now=now)
            if found is not None:
                return found
        if action.kind is not ActionKind.REVERT or not action.commit_sha:
            continue
        revert = reverted_by(action.commit_sha, tx.changes.reverts([action.repo], until=now))
        by_object = _by_controller(tx, playbook, action.repo, revert.by_sha, now=now) if revert else None
        if by_object is not None:
            return by_object
        merged = action.updated_at if action.state is ActionState.MERGED else (revert.at if revert else None)
        if merged is None or delay is None or _controlled(tx, playbook, now=now):
            continue
        if now >= merged + delay:
            return Applied(merged + delay, f"the revert merged at {merged:%H:%M} UTC and the sync delay "
                           f"({format_duration(delay)}) has passed; no controller reports on {action.repo}",
                           "sync_delay")
    return None


def _merge_applied(tx: Transaction, playbook: Playbook | None, action: Action, *, delay: timedelta | None,
                   now: datetime) -> Applied | None:
    """A merged restore (or incident branch) took effect when an object that deploys the service
    applied a revision after the merge (the merge's own commit, or a later one that holds it);
    without controller events, at its merge plus the playbook's `sync_delay`."""
    named = "the restore" if action.kind is ActionKind.RESTORE else "the incident branch"
    what = f"{named} to {action.commit_sha[:7]}" if action.kind is ActionKind.RESTORE else named
    merged = action.updated_at
    chosen = deploying_objects(tx, playbook) if playbook is not None else None
    after = [r for r in tx.gitops.applied([action.repo], since=merged, until=now)
             if r.applied_at >= merged and (chosen is None or r.object_id in chosen)]
    if after:
        first = min(after, key=lambda r: r.applied_at)
        return Applied(first.applied_at, f"{first.label} applied {first.sha[:7]}, the first revision after "
                       f"{what} merged", first.object_id.partition(":")[0])
    if delay is None or _controlled(tx, playbook, now=now) or now < merged + delay:
        return None
    return Applied(merged + delay, f"{named} merged at {merged:%H:%M} UTC and the sync delay "
                   f"({format_duration(delay)}) has passed; no controller reports on {action.repo}", "sync_delay")


def _by_controller(tx: Transaction, playbook: Playbook | None, repo: str, sha: str, *,
                   now: datetime) -> Applied | None:
    """The first time an object that deploys the service applied the revert (each object's own
    time, kept even when the controller reported it before the change log had the commit)."""
    chosen = deploying_objects(tx, playbook) if playbook is not None else None
    found = [r for r in tx.gitops.applied([repo], since=now, until=now, shas=[sha])
             if r.sha == sha and r.applied_at <= now and (chosen is None or r.object_id in chosen)]
    if found:
        first = min(found, key=lambda r: r.applied_at)
        controller = first.object_id.partition(":")[0]
        return Applied(first.applied_at, f"{first.label} applied the revert {sha[:7]}", controller)
    change = next(iter(tx.changes.get_many(repo, [sha])), None)
    if change is not None and change.applied_source in CONTROLLER_SOURCES and change.applied_at and chosen is None:
        who = change.applied_by or change.applied_source.value
        return Applied(change.applied_at, f"{who} applied the revert {change.short}", change.applied_source.value)
    return None


def _controlled(tx: Transaction, playbook: Playbook | None, *, now: datetime) -> bool:
    """Whether a controller reports what it applies of the playbook's repositories: an object was
    seen applying them, or a recent change has a controller's applied time. A playbook that names
    objects no controller ever reported falls back to merged plus `sync_delay`."""
    if playbook is None:
        return False
    repos = [entry.repo for entry in playbook.repos]
    if tx.gitops.objects(repos):
        return True
    recent = tx.changes.applied_between(repos, now - playbook.suspects.lookback, now)
    return any(c.applied_source in CONTROLLER_SOURCES for c in recent)


def advance(*, store: Store, notifier: Notifier, playbooks: Sequence[Playbook], now: datetime) -> int:
    """Move each incident whose revert is applied to mitigated, and each mitigated one whose key
    metric recovered to verified (none without a key query); tell people. Returns how many moved."""

    def work(tx: Transaction) -> list[tuple[int, str]]:
        moved: list[tuple[int, str]] = []
        for incident in tx.incidents.list(active=True, limit=500):
            playbook = playbook_named(playbooks, incident.playbook)
            if incident.status in (S.OPEN, S.ACKNOWLEDGED, S.MITIGATING):
                found = applied(tx, incident, playbook, now=now)
                if found is None:
                    continue
                after = move(tx, incident, S.MITIGATED, now=found.at, text=f"Mitigated: {found.how}",
                             data={"applied_at": found.at.isoformat(), "source": found.source})
                if after is None:
                    continue
                incident = after
                moved.append((incident.id or 0, S.MITIGATED.value))
            verification = tx.watch.verification(incident.id or 0)
            # Verified needs the key metric (an alert's own expression is no key query) healthy
            # since the revert took effect: a recovery before it says nothing of the revert.
            if (incident.status is S.MITIGATED and verification is not None and verification.outcome == "recovered"
                    and playbook is not None and playbook.health_check() is not None
                    and not verification.query.startswith(ALERT_EXPR)
                    and incident.mitigated_at is not None and verification.healthy_since is not None
                    and verification.healthy_since >= incident.mitigated_at):
                since = verification.healthy_since
                shown = verification.query.removeprefix(ALERT_EXPR)
                if move(tx, incident, S.VERIFIED, now=now,
                        text=f"Verified: the key metric ({shown[:200]}) is healthy since {since:%H:%M:%S} UTC",
                        data={"healthy_since": since.isoformat()}):
                    moved.append((incident.id or 0, S.VERIFIED.value))
        return moved

    moved = store.run(work)
    for incident_id, status in moved:
        notify.incident_update(store=store, notifier=notifier, incident_id=incident_id, kind=f"incident.{status}")
    return len(moved)
