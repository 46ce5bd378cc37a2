"""Rollback targets: the best suspect by default, and the override a person needs to roll back a
change the ranking excluded (reverted, ruled out by a responder, below the evidence floor)."""

from __future__ import annotations

from datetime import datetime

from bot.domain.changes import Change
from bot.domain.errors import Conflict
from bot.domain.models import Actor, acting
from bot.domain.ports import Transaction
from bot.domain.suspects import Ranking, Suspect
from bot.domain.timeline import EventKind, event

OVERRIDE_HINT = "roll it back anyway with --force on the CLI, \"force\": true in the API"


def default_target(ranking: Ranking | None, incident_id: int) -> Suspect:
    """The best suspect; a Conflict naming why each listed suspect is no target when there is none."""
    if ranking is None or not ranking.suspects:
        raise Conflict(f"INC-{incident_id} has no suspect to roll back; name the commit to revert")
    best = ranking.best
    if best is None:
        why = "; ".join(f"{s.short} {ranking.excluded(s)}" for s in ranking.suspects[:3])
        raise Conflict(f"INC-{incident_id} has no rollback target: {why}. To roll one back anyway, name "
                       "its commit and confirm the override (CLI: --commit SHA --force; API: \"commit\" and "
                       "\"force\": true; Slack: /incident rollback ID SHA, then confirm twice)")
    return best


def excluded(tx: Transaction, incident_id: int, sha: str) -> str | None:
    """Why the ranking excludes this change as a rollback target ("ruled out by alice at 03:12
    UTC", "already reverted by 1a2b3c4", "scores 0.04, below the 0.20 evidence floor"), or None.
    A change that is not among the suspects was chosen by hand and is not excluded."""
    ranking = tx.rankings.get(incident_id)
    if ranking is None:
        return None
    return next((ranking.excluded(s) for s in ranking.suspects if s.sha == sha), None)


def require_override(tx: Transaction, *, incident_id: int, change: Change, force: bool, actor: Actor,
                     actor_id: str, now: datetime, on_behalf_of: str = "") -> None:
    """Refuse an excluded change without `force`; with it, the timeline says it was forced and why."""
    why = excluded(tx, incident_id, change.sha)
    if why is None:
        return
    if not force:
        raise Conflict(f"{change.short} is not a rollback target: {why}; {OVERRIDE_HINT}")
    tx.timeline.append(event(
        incident_id=incident_id, at=now, kind=EventKind.ROLLBACK_FORCED, actor=actor, actor_id=actor_id,
        on_behalf_of=on_behalf_of,
        text=f"{acting(actor_id or actor.value, on_behalf_of)} forced the rollback of {change.short}, which was "
             f"no rollback target: {why}",
        data={"sha": change.sha, "repo": change.repo, "excluded": why}))
