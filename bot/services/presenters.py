"""Plain-dict shapes of domain objects for the HTTP API and `--json` output (one shape for both)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from bot.domain.actions import Action, ActionState
from bot.domain.durations import format_duration
from bot.domain.good import LastGood
from bot.domain.models import Alert, Incident, TimelineEvent
from bot.domain.plan import Plan
from bot.domain.suspects import Ranking
from bot.services.act import ActionResult, RollbackPlan
from bot.services.drift import suspect_drift
from bot.services.freeze import FreezeResult
from bot.services.freeze_follow import FreezeRow
from bot.services.incidents import CommandResult, IncidentView
from bot.services.restore import RestorePlan


def incident_dict(incident: Incident) -> dict[str, Any]:
    return {"ref": incident.ref, **incident.model_dump(mode="json")}


def alert_dict(alert: Alert) -> dict[str, Any]:
    return alert.model_dump(mode="json", exclude={"incident_id"})


def event_dict(event: TimelineEvent) -> dict[str, Any]:
    """The event as stored, and `who` as people read it ("ci-bot on behalf of the-cto")."""
    return event.model_dump(mode="json", exclude={"incident_id"}) | {"who": event.who}


def ranking_dict(ranking: Ranking) -> dict[str, Any]:
    """The suspects answer as DESIGN.md section 5 gives it (in score order). `best`: the default
    rollback target; a suspect's `excluded` says why it is none (rolling it back needs force)."""
    best = ranking.best
    return {
        "status": ranking.status.value,
        "confident": ranking.confident,
        "reason": ranking.reason,
        "ranked_at": ranking.ranked_at.isoformat() if ranking.ranked_at else None,
        "best": best.sha if best else None,
        "floor": ranking.floor,
        "suspects": [
            {"sha": s.sha, "repo": s.repo, "subject": s.subject, "author": s.author,
             "applied_at": s.applied_at.isoformat(), "applied_source": s.applied_source.value,
             "score": s.score, "reasons": list(s.reasons), "pr_number": s.pr_number,
             "pr_ref": s.request, "warnings": list(s.warnings),
             "applied_by": s.applied_by, "failed": s.failed,
             "code": [c.model_dump(mode="json") for c in s.code], "code_note": s.code_note,
             "hydrated": s.hydrated, "excluded": ranking.excluded(s), "drift": suspect_drift(s)}
            for s in ranking.suspects
        ],
    }


def steps_plan_dict(plan: Plan) -> dict[str, Any]:
    """The incident's rollback plan (`GET /api/incidents/{id}/plan`): the steps in the order to take
    them, each with why it is there, its verification and its state; `current` is the step to act on."""
    current = plan.current
    return {
        "confident": plan.confident, "reason": plan.reason, "line": plan.line(),
        "proposed_at": plan.proposed_at.isoformat() if plan.proposed_at else None,
        "current": current.number if current else None,
        "restore_next": plan.restore_next,  # the most recent change did not recover: restoring is a step now
        "verify": {"query": plan.check.query, "healthy": plan.check.healthy,
                   "stay_seconds": plan.check.stay.total_seconds(),
                   "within_seconds": plan.check.within.total_seconds(), "text": plan.check.describe()},
        "steps": [{**step.model_dump(mode="json"), "short": step.short} for step in plan.steps],
    }


def action_dict(action: Action) -> dict[str, Any]:
    return action.model_dump(mode="json", exclude={"incident_id"}) | {"who": action.who}


def branches_dict(actions: Sequence[Action], *, ready: bool) -> dict[str, Any]:
    """What `branch` (or `branch --ready`) did: each repository's incident branch and its pull request."""
    said = "ready for review" if ready else "incident branch"
    lines = [f"{a.repo}: {a.branch} {said}" + (f" {a.url}" if a.url else " (no forge: open its pull request by hand)")
             for a in actions]
    return {"branches": [action_dict(a) for a in actions], "ready": ready, "message": "\n".join(lines)}


def incident_view_dict(view: IncidentView) -> dict[str, Any]:
    return {
        **incident_dict(view.incident),
        "roles": dict(view.roles),  # role -> who holds it, the lead first
        "alerts": [alert_dict(alert) for alert in view.alerts],
        "suspects": ranking_dict(view.ranking),
        "actions": [action_dict(action) for action in view.actions],
        "timeline": [event_dict(event) for event in view.timeline],
    }


def plan_dict(plan: RollbackPlan) -> dict[str, Any]:
    """What a rollback will revert and why: the API's answer before the confirmation."""
    change = plan.change
    return {
        "incident": plan.incident_ref, "repo": change.repo, "sha": change.sha, "short": change.short,
        "subject": change.subject, "author": change.author, "committed_at": change.committed_at.isoformat(),
        "branch": plan.branch, "reasons": list(plan.reasons), "warnings": list(plan.warnings),
        "files": list(plan.files), "diff": plan.diff, "excluded": plan.excluded,
    }


def rollback_dict(result: ActionResult) -> dict[str, Any]:
    """What a rollback did. `conflicted`: the revert did not apply, and the incident branch
    (`incident_branch`) was pushed instead for a person to finish by hand."""
    return {
        "message": result.message,
        "conflicted": result.action.state is ActionState.CONFLICTED,
        "action": action_dict(result.action),
        "incident_branch": action_dict(result.branch_action) if result.branch_action else None,
    }


def status_dict(result: CommandResult) -> dict[str, Any]:
    return {"ref": result.incident.ref, "status": result.incident.status.value, "changed": result.changed,
            "message": result.message}


def good_dict(answer: LastGood) -> dict[str, Any]:
    """A service's last known good in one repository: the revision and why it counts, or why there is none."""
    good = answer.good
    return {
        "service": answer.service, "repo": answer.repo, "good_after": format_duration(answer.good_after),
        "current": answer.current, "reason": answer.reason,
        "good": None if good is None else {
            "sha": good.sha, "short": good.short, "subject": good.subject, "author": good.author,
            "since": good.since.isoformat(), "until": good.until.isoformat() if good.until else None,
            "reasons": list(good.reasons)},
    }


def restore_plan_dict(plan: RestorePlan) -> dict[str, Any]:
    """What a restore will do: the API's answer before the confirmation (POST it back with `good`)."""
    good = plan.good
    return {
        "incident": plan.incident_ref, "service": plan.service, "repo": plan.repo, "branch": plan.branch,
        "good": good.sha, "short": good.short, "subject": good.subject, "author": good.author,
        "reasons": list(good.reasons), "paths": list(plan.paths), "shared_left_alone": list(plan.exclude),
        "included": list(plan.included),
        "undone": [{"sha": u.sha, "short": u.sha[:7], "author": u.author, "subject": u.subject,
                    "warnings": list(u.warnings)} for u in plan.undone],
    }


def freeze_dict(result: FreezeResult) -> dict[str, Any]:
    """What a freeze or unfreeze did: its actions (one per repository) and what it did not do, and why."""
    return {"message": result.message, "actions": [action_dict(a) for a in result.actions],
            "notes": list(result.notes)}


def freeze_rows_dict(rows: Sequence[FreezeRow]) -> dict[str, Any]:
    """`backout freeze --list`, `GET /api/freezes`: every freeze and whether it is past its expiry."""
    return {"freezes": [{**asdict(row), "expires_at": row.expires_at.isoformat() if row.expires_at else None}
                        for row in rows]}
