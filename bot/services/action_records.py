"""Recording actions: each revert or incident branch stored with its timeline event, before and after
the work, so a retry finds what was done."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bot.domain.actions import (
    FINISHED,
    Action,
    ActionKind,
    ActionState,
    revert_branch,
)
from bot.domain.changes import Change
from bot.domain.incidents import refuse
from bot.domain.models import Actor, Incident
from bot.domain.ports import Store, Transaction
from bot.domain.timeline import EventKind, event
from bot.services.incidents import require

_REFUSED = {ActionKind.REVERT: "be rolled back", ActionKind.RESTORE: "be restored", ActionKind.FREEZE: "be frozen"}


def record_proposed(store: Store, *, incident_id: int, change: Change, score: float, now: datetime) -> Action:
    """Record a revert the open policy proposes (once per change), with its timeline event."""

    def work(tx: Transaction) -> Action:
        existing = tx.actions.get(incident_id, ActionKind.REVERT, change.sha)
        if existing is not None:
            return existing
        action = tx.actions.add(Action(
            incident_id=incident_id, kind=ActionKind.REVERT, repo=change.repo, commit_sha=change.sha,
            state=ActionState.PROPOSED, branch=revert_branch(incident_id, change.sha), auto=True,
            actor_id="policy:propose", created_at=now, updated_at=now))
        tx.timeline.append(event(
            incident_id=incident_id, at=now, kind=EventKind.ACTION_PROPOSED, actor=Actor.BACKOUT,
            text=(f"Proposed: revert {change.short} ({change.subject[:80]}), score {score:.2f}. "
                  f"Run `backout rollback INC-{incident_id}` to make it."),
            data={"sha": change.sha, "repo": change.repo}))
        return action

    return store.run(work)


def record_started(store: Store, *, incident_id: int, kind: ActionKind, repo: str, sha: str, branch: str,
           actor: Actor, actor_id: str, now: datetime, auto: bool,
           warnings: Sequence[str] = (), on_behalf_of: str = "", any_state: bool = False) -> Action:
    """Record the action as started (or return it if already finished), with a timeline event;
    `on_behalf_of` (whom the actor acts for) is kept in its detail. `any_state`: allowed on a
    resolved incident too (an unfreeze cleans up after it)."""

    def work(tx: Transaction) -> Action:
        incident: Incident = require(tx, incident_id)
        if not any_state:
            refuse(incident, _REFUSED.get(kind, "get an incident branch"))
        existing = tx.actions.get(incident_id, kind, sha, repo=repo)
        if existing is not None and existing.state in FINISHED:
            return existing
        if existing is None:
            action = tx.actions.add(Action(
                incident_id=incident_id, kind=kind, repo=repo, commit_sha=sha, state=ActionState.STARTED,
                branch=branch, auto=auto, actor_id=actor_id, created_at=now, updated_at=now,
                detail=({"warnings": list(warnings)} if warnings else {}) | _for(on_behalf_of)))
        else:
            # whoever makes it owns it: a person running a proposed revert makes it theirs, not automatic
            kept = {key: value for key, value in existing.detail.items() if key != "on_behalf_of"}
            mine = {"actor_id": actor_id, "detail": kept | _for(on_behalf_of)} if actor_id else {}
            action = existing.model_copy(update={"state": ActionState.STARTED, "updated_at": now, "auto": auto,
                                                 **mine})
            tx.actions.save(action)
        what = {ActionKind.REVERT: f"revert of {sha[:7]}", ActionKind.RESTORE: f"restore to {sha[:7]}",
                ActionKind.FREEZE: "freeze of automation", ActionKind.UNFREEZE: "unfreeze of automation"}.get(
            kind, "incident branch")
        caution = f". Revert safety: {'; '.join(warnings)}" if warnings else ""
        tx.timeline.append(event(
            incident_id=incident.id or incident_id, at=now, kind=EventKind.ACTION_STARTED, actor=actor,
            actor_id=actor_id, on_behalf_of=on_behalf_of, text=f"Started the {what} on {repo} as {branch}{caution}",
            data={"kind": kind.value, "sha": sha, "branch": branch, "warnings": list(warnings)}))
        return action

    return store.run(work)


def _for(on_behalf_of: str) -> dict[str, object]:
    return {"on_behalf_of": on_behalf_of} if on_behalf_of else {}


def record_finished(store: Store, action: Action, *, state: ActionState, now: datetime, kind: EventKind,
            text: str, detail: dict[str, object]) -> Action:
    """Record how the action ended, with its timeline event, in one transaction."""
    finished = action.model_copy(update={"state": state, "updated_at": now,
                                         "detail": {**action.detail, **detail}})

    def work(tx: Transaction) -> Action:
        tx.actions.save(finished)
        tx.timeline.append(event(incident_id=action.incident_id, at=now, kind=kind, actor=Actor.BACKOUT,
                                 text=text, data={"branch": action.branch, **detail}))
        return finished

    return store.run(work)
