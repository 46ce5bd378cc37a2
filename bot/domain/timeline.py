"""Timeline event kinds and the helper that makes events."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from bot.domain.models import Actor, TimelineEvent


class EventKind(StrEnum):
    INCIDENT_OPENED = "incident.opened"
    INCIDENT_REOPENED = "incident.reopened"
    INCIDENT_ACKNOWLEDGED = "incident.acknowledged"
    INCIDENT_MITIGATING = "incident.mitigating"
    INCIDENT_MITIGATED = "incident.mitigated"
    INCIDENT_VERIFIED = "incident.verified"
    INCIDENT_RESOLVED = "incident.resolved"
    INCIDENT_CLOSED = "incident.closed"
    SEVERITY_RAISED = "incident.severity_raised"
    SEVERITY_LOWERED = "incident.severity_lowered"
    ROLE_ASSIGNED = "incident.role"  # the lead, or a playbook's role, given to someone
    STATUS_UPDATE = "incident.update"  # a status update for the channel (a `note` stays on the timeline)
    UPDATE_REMINDER = "incident.update_reminder"  # no status update for the `reminders` interval
    ROOM_DECLARED = "room.declared"  # a channel of its own is wanted: by a person, or by severity
    ROOM_CREATED = "room.created"
    ROOM_INVITED = "room.invited"
    ROOM_FAILED = "room.failed"  # Slack refused a step (a missing scope, say): what to fix
    ROOM_ARCHIVED = "room.archived"
    ROOM_UNARCHIVED = "room.unarchived"  # the incident was reopened after its channel was archived
    ALERT_FIRING = "alert.firing"
    ALERT_RESOLVED = "alert.resolved"
    ALERT_SET_ASIDE = "alert.set_aside"  # an alert of the delivery not stored: its start time is out of range
    NOTE = "note"
    SUSPECTS_RANKED = "suspects.ranked"
    RANKING_KEPT = "suspects.kept"  # the ranking a reopened incident had at its resolution
    ONSET_FOUND = "suspects.onset"  # when the problem began (timing counts from it), and which source said so
    CHANGES_REFRESH_FAILED = "changes.refresh_failed"
    CHANGES_FROM_MIRROR = "changes.from_mirror"  # ranked without waiting on a Git host: fetching, or not answering
    ACTION_PROPOSED = "action.proposed"
    ACTION_STARTED = "action.started"
    ACTION_SKIPPED = "action.skipped"
    ACTION_FAILED = "action.failed"
    REVERT_PUSHED = "revert.pushed"
    REVERT_WAITING = "revert.waiting"
    REVERT_CONFLICTED = "revert.conflicted"
    RESTORE_PUSHED = "restore.pushed"  # the service's paths put back to last known good, on a branch
    RESTORE_WAITING = "restore.waiting"
    BRANCH_PUSHED = "branch.pushed"
    BRANCH_COMMIT = "branch.commit"  # a commit pushed to the incident branch (forge webhook or polling)
    BRANCH_READY = "branch.ready"  # the incident branch's draft marked ready for review, reviewers asked
    BRANCH_REMINDER = "branch.reminder"  # resolved while an incident branch is still open
    POSTMORTEM_PUSHED = "postmortem.pushed"
    FREEZE_PUSHED = "freeze.pushed"  # automation paused in Git for the service, on a branch
    UNFREEZE_PUSHED = "unfreeze.pushed"  # what the freeze added, taken out again, on a branch
    FREEZE_EXPIRED = "freeze.expired"  # a merged freeze past its expiry, its unfreeze not merged
    PR_OPENED = "pr.opened"
    PR_MERGED = "pr.merged"
    PR_CLOSED = "pr.closed"
    PR_CHECKS = "pr.checks"
    AUTOMERGE_ANNOUNCED = "automerge.announced"  # the veto window opened: when Backout merges, how to hold
    AUTOMERGE_HELD = "automerge.held"  # someone who may roll back pressed Hold: Backout will not merge
    AUTOMERGE_DECLINED = "automerge.declined"  # not merged by Backout (not eligible, or the forge said no)
    AUTOMERGE_RETRY = "automerge.retry"  # the forge did not answer the merge: the next run reads it again
    CHAT_COMMAND = "chat.command"
    INCIDENT_REMINDER = "incident.reminder"
    PROBE_UNKNOWN = "probe.unknown"
    VERIFY_STARTED = "verify.started"
    VERIFY_RECOVERED = "verify.recovered"
    VERIFY_FAILED = "verify.not_recovered"
    PLAN_PROPOSED = "plan.proposed"
    PLAN_STEP_RECOVERED = "plan.step_recovered"
    PLAN_STEP_NOT_RECOVERED = "plan.step_not_recovered"
    CHAT_REFUSED = "chat.refused"
    CHAT_PINNED = "chat.pinned"  # a message marked in the incident's channel, at its own time
    CHAT_UNPINNED = "chat.unpinned"  # its last mark removed: the correction that hides that entry
    CHAT_REPINNED = "chat.repinned"  # marked again after that: the entry shows again
    VERDICT = "verdict.recorded"
    AUTHOR_NOTIFIED = "author.notified"
    RECONCILE_FAILED = "gitops.reconcile_failed"
    RECONCILE_RECOVERED = "gitops.reconcile_recovered"
    DRIFT_DETECTED = "gitops.drift"  # an out-of-band change (or its correction) to the service's objects
    DRIFT_SYNCED = "gitops.drift_synced"  # a person had Backout sync a drift from Git (Argo CD's API)
    ROLLBACK_FORCED = "rollback.forced"  # a person overrode an excluded change (reverted, ruled out, weak)
    INCIDENT_PAGED = "incident.paged"  # Backout paged the on-call through PagerDuty (not acknowledged in time)
    PAGER_INCIDENT = "pagerduty.incident"  # PagerDuty's own incident for it triggered, acknowledged or resolved
    PAGER_FAILED = "pagerduty.failed"  # PagerDuty refused what Backout sent: it will not be sent again


def event(
    *,
    incident_id: int,
    at: datetime,
    kind: EventKind,
    actor: Actor,
    text: str,
    actor_id: str = "",
    data: dict[str, Any] | None = None,
    on_behalf_of: str = "",
) -> TimelineEvent:
    """A new timeline event (not yet stored); `on_behalf_of`: whom the actor said it acted for."""
    return TimelineEvent(
        incident_id=incident_id,
        at=at,
        kind=kind.value,
        actor=actor,
        actor_id=actor_id,
        text=text,
        data={**(data or {}), **({"on_behalf_of": on_behalf_of} if on_behalf_of else {})},
    )
