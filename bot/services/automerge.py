"""Guarded automatic recovery (docs/automerge.md): the one exception to "Backout never merges".

A playbook with `actions.merge: confident` lets Backout merge its own revert or restore pull
request when the suspect is confident, the change has no revert-safety flag, the forge says it can
merge as is, and nobody who may roll back pressed Hold during the veto window announced in chat
(`actions.merge_after`). The window is stored with the action and a scheduled job (the leader's)
merges what is due, so a restart neither loses nor repeats a merge; verification then runs as
after a person's merge, and Backout does nothing more by itself when the metric does not recover.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.domain.actions import Action, ActionState
from bot.domain.automerge import (
    ACTIVE,
    MAX_ATTEMPTS,
    MERGEABLE_KINDS,
    MergeMode,
    announcement,
    describe,
    due_at,
    holdable,
    ineligible,
    moved,
    started,
    window,
    window_state,
)
from bot.domain.errors import BackoutError, Conflict, TransientError
from bot.domain.models import Actor, acting, format_incident_ref
from bot.domain.playbooks import Playbook, playbook_named
from bot.domain.ports import Forge, MergeState, Merging, Notifier, Store, Transaction
from bot.domain.suspects import Ranking
from bot.domain.timeline import EventKind, event
from bot.services import lifecycle, notify
from bot.services.incidents import require

BY = "policy:merge"  # the actor id of Backout's own merges on the timeline


@dataclass(frozen=True)
class HoldResult:
    message: str
    changed: bool


def follow_automatic_merges(*, store: Store, forge: Forge, merging: Merging | None, notifier: Notifier,
                            playbooks: Sequence[Playbook], now: datetime) -> int:
    """The scheduled job: open the veto window of each new eligible pull request (or say once why
    Backout will not merge it), and merge those whose window has passed. Returns how many moved."""
    moved_count = 0
    for action in store.run(lambda tx: tx.actions.with_state(ActionState.PR_OPEN)):
        if action.kind.value not in MERGEABLE_KINDS or not forge.handles(action.repo):
            continue
        state, due = window_state(action), due_at(action)
        if not state:
            moved_count += _open_window(store=store, notifier=notifier, playbooks=playbooks, action=action,
                                        merging=merging, now=now)
        elif state == "merging" or (state in ACTIVE and due is not None and now >= due):
            moved_count += _merge_due(store=store, notifier=notifier, playbooks=playbooks, action=action,
                                      merging=merging, now=now)
    for action in store.run(lambda tx: tx.actions.with_state(ActionState.PR_OPEN)):
        if window_state(action) and window_state(action) != window(action).get("told"):
            _tell_pull_request(store, forge, action)
    return moved_count


def hold(*, store: Store, notifier: Notifier, incident_id: int, actor: Actor, actor_id: str, now: datetime,
         on_behalf_of: str = "") -> HoldResult:
    """Stop the automatic merge waiting on this incident (the caller checked the permission to
    roll back). Conflict when none is waiting; holding twice changes nothing."""
    who = acting(actor_id, on_behalf_of)
    ref = format_incident_ref(incident_id)

    def work(tx: Transaction) -> HoldResult:
        require(tx, incident_id)
        windows = [tx.actions.locked(a.id or 0) or a for a in tx.actions.for_incident(incident_id)
                   if window_state(a) not in ("", "declined")]
        waiting = [a for a in windows if holdable(a)]
        if not waiting:
            held = next((a for a in windows if window_state(a) == "held"), None)
            if held is not None:
                return HoldResult(f"{ref}: already held by {window(held).get('held_by')}", False)
            if windows:
                raise Conflict(f"{ref}: too late to hold: Backout's merge is {window_state(windows[-1])}")
            raise Conflict(f"{ref} has no automatic merge waiting: nothing to hold")
        for action in waiting:
            tx.actions.save(action.model_copy(update={"updated_at": now, "detail": moved(
                action, "held", held_by=who, held_at=now.isoformat())}))
        names = ", ".join(a.request_name for a in waiting)
        tx.timeline.append(event(
            incident_id=incident_id, at=now, kind=EventKind.AUTOMERGE_HELD, actor=actor, actor_id=actor_id,
            on_behalf_of=on_behalf_of, data={"requests": [a.url for a in waiting]},
            text=f"Held by {who}: Backout will not merge {names} by itself. Review it and merge by hand when "
                 "you agree."))
        return HoldResult(f"{ref}: held; Backout will not merge {names} by itself.", True)

    result = store.run(work)
    if result.changed:
        notify.incident_update(store=store, notifier=notifier, incident_id=incident_id, kind="automerge.held")
    return result


Then = Callable[[Transaction, Action], None]


def _move(store: Store, action: Action, *, expect: Collection[str], state: str, now: datetime | None,
          then: Then | None = None, **fields: Any) -> Action | None:
    """Move the action's window from one of the `expect`ed states to `state` (with `fields`), its row
    locked: None, and nothing written, when a Hold or another run moved it first."""

    def work(tx: Transaction) -> Action | None:
        current = tx.actions.locked(action.id or 0)
        if current is None or current.state is not ActionState.PR_OPEN or window_state(current) not in expect:
            return None
        changes: dict[str, Any] = {"detail": moved(current, state, **fields)}
        if now is not None:
            changes["updated_at"] = now
        updated = current.model_copy(update=changes)
        tx.actions.save(updated)
        if then is not None:
            then(tx, updated)
        return updated

    return store.run(work)


@dataclass(frozen=True)
class _Seen:
    """What the rule is judged on, read in one transaction."""

    playbook: Playbook | None
    ranking: Ranking | None
    merged_before: bool  # Backout already merged one of the incident's pull requests by itself
    active: bool  # the incident is not resolved or closed
    action: Action  # as stored now

    def ineligible(self) -> str | None:
        if not self.active:
            return "the incident is no longer active"
        return ineligible(self.action, self.ranking, merged_before=self.merged_before)


def _context(store: Store, playbooks: Sequence[Playbook], action: Action) -> _Seen:
    def work(tx: Transaction) -> _Seen:
        incident = require(tx, action.incident_id)
        actions = tx.actions.for_incident(action.incident_id)
        return _Seen(playbook=playbook_named(playbooks, incident.playbook), ranking=tx.rankings.get(incident.id or 0),
                     merged_before=any(window_state(a) == "merged" for a in actions if a.id != action.id),
                     active=incident.active, action=next((a for a in actions if a.id == action.id), action))

    return store.run(work)


def _open_window(*, store: Store, notifier: Notifier, playbooks: Sequence[Playbook], action: Action,
                 merging: Merging | None, now: datetime) -> int:
    seen = _context(store, playbooks, action)
    playbook, current = seen.playbook, seen.action
    if playbook is None or playbook.actions.merge is MergeMode.OFF or window_state(current):
        return 0
    reason = seen.ineligible()
    if reason is None and merging is None:
        reason = f"the forge of {current.repo} offers no merge Backout can make"
    if reason is not None:
        return _decline(store, notifier, current, now=now, state="declined", reason=reason, expect=("",))
    wait = playbook.actions.merge_after
    opened = started(now=now, wait=wait, playbook=playbook.name)
    text = announcement(request=current.request_name, what=describe(current), due=now + wait,
                        incident_ref=format_incident_ref(current.incident_id))

    def announce(tx: Transaction, updated: Action) -> None:
        tx.timeline.append(event(incident_id=updated.incident_id, at=now, kind=EventKind.AUTOMERGE_ANNOUNCED,
                                 actor=Actor.BACKOUT, actor_id=BY, text=text,
                                 data={"due_at": opened["due_at"], "rule": opened["rule"], "url": updated.url}))

    if _move(store, current, expect=("",), state="waiting", now=now, then=announce, **opened) is None:
        return 0
    notify.incident_update(store=store, notifier=notifier, incident_id=current.incident_id,
                           kind="automerge.announced")
    return 1


def _merge_due(*, store: Store, notifier: Notifier, playbooks: Sequence[Playbook], action: Action,
               merging: Merging | None, now: datetime) -> int:
    seen = _context(store, playbooks, action)
    current = seen.action
    state = window_state(current)
    if current.state is not ActionState.PR_OPEN or state not in ACTIVE:
        return 0  # held, or finished by another run, since the list was read
    if state == "waiting" and (reason := seen.ineligible()):
        return _decline(store, notifier, current, now=now, state="refused", reason=f"{reason} when it was due")
    number = current.detail.get("pr_number")
    if merging is None or not isinstance(number, int):
        return _decline(store, notifier, current, now=now, state="refused", reason="its forge offers no merge")
    try:
        forge_says = merging.merge_state(current.repo, number)
    except BackoutError as exc:
        return _retry(store, notifier, current, now=now, error=str(exc))
    if forge_says.state == "merged":
        # waiting: a person merged it (the pull request follower records that); merging: the
        # merge call of an interrupted run went through
        return _record_merged(store, notifier, current, forge_says, now=now) if state == "merging" else 0
    if refusal := _not_mergeable(current, forge_says):
        return _decline(store, notifier, current, now=now, state="refused", reason=refusal)
    attempts = int(window(current).get("attempts") or 0) + 1
    # Recorded before the call, under the row lock: a Hold that came first wins, and a crash after
    # the call is read back from the forge at the next run, never repeated blindly.
    calling = _move(store, current, expect=ACTIVE, state="merging", now=now, attempts=attempts)
    if calling is None:
        return 0
    try:
        merged = merging.merge(current.repo, number, sha=forge_says.head_sha, message=_message(calling))
    except TransientError as exc:
        return _retry(store, notifier, calling, now=now, error=str(exc))
    except BackoutError as exc:
        return _decline(store, notifier, calling, now=now, state="refused",
                        reason=f"the forge refused the merge: {exc}")
    if merged.state != "merged":
        return _decline(store, notifier, calling, now=now, state="refused",
                        reason=f"the forge did not merge it ({merged.why})")
    return _record_merged(store, notifier, calling, forge_says, now=now)


def _tell_pull_request(store: Store, forge: Forge, action: Action) -> None:
    """Keep Backout's comment on the pull request saying what it will do by itself (a forge that
    does not answer is asked again at the next run; the timeline and chat have it meanwhile)."""
    record, number = window(action), action.detail.get("pr_number")
    if not isinstance(number, int):
        return
    ref = format_incident_ref(action.incident_id)
    state, due = window_state(action), due_at(action)
    if state in ACTIVE and due is not None:
        text = announcement(request=f"this {action.request_noun}", what=describe(action), due=due,
                            incident_ref=ref)
    elif state == "held":
        text = f"Held by {record.get('held_by')}: Backout will not merge this {action.request_noun} by itself."
    else:
        text = f"Backout will not merge this {action.request_noun} by itself: {record.get('reason')}."
    marker = f"<!-- backout {ref} automatic merge -->"
    try:
        comment_id = forge.comment(action.repo, number, body=f"{text}\n\n{marker}", marker=marker,
                                   comment_id=record.get("comment_id"))
    except BackoutError:
        return
    _move(store, action, expect=(state,), state=state, now=None, told=state, comment_id=comment_id)


def _not_mergeable(action: Action, forge_says: MergeState) -> str | None:
    if forge_says.state != "open":
        return f"the {action.request_noun} is {forge_says.state}"
    if not forge_says.clean:
        return f"the forge says {forge_says.why}, not that it can merge as is"
    pushed = action.detail.get("pushed_sha")
    if isinstance(pushed, str) and pushed and forge_says.head_sha and forge_says.head_sha != pushed:
        return f"its branch moved to {forge_says.head_sha[:7]}: it has commits Backout did not push"
    return None


def _message(action: Action) -> str:
    ref = format_incident_ref(action.incident_id)
    return (f"Merge {action.branch} ({ref}): {describe(action)}\n\n"
            f"Merged by Backout by itself under {window(action).get('rule')}.\n\nBackout-Incident: {ref}\n")


def _record_merged(store: Store, notifier: Notifier, action: Action, forge_says: MergeState, *, now: datetime) -> int:
    rule = str(window(action).get("rule"))

    def work(tx: Transaction) -> int:
        current = tx.actions.locked(action.id or 0)
        if current is None or current.state is not ActionState.PR_OPEN or window_state(current) != "merging":
            return 0  # recorded already (another run), or a person's merge the follower recorded
        merged = current.model_copy(update={"state": ActionState.MERGED, "updated_at": now, "detail": moved(
            current, "merged", merged_at=now.isoformat())})
        tx.actions.save(merged)
        tx.timeline.append(event(
            incident_id=action.incident_id, at=now, kind=EventKind.PR_MERGED, actor=Actor.BACKOUT, actor_id=BY,
            text=(f"Merged by Backout by itself ({current.request_name}), under the rule {rule}; the forge said "
                  f"{forge_says.why}. Verification follows as after any merge; if the metric does not recover, "
                  "Backout says so and does nothing more by itself."),
            data={"url": current.url, "merged_by": "backout", "action": current.kind.value, "automatic": True,
                  "rule": rule, "forge": forge_says.why}))
        lifecycle.request_merged(tx, merged, now=now)
        return 1

    done = store.run(work)
    if done:
        notify.incident_update(store=store, notifier=notifier, incident_id=action.incident_id, kind="pr.merged")
    return done


def _decline(store: Store, notifier: Notifier, action: Action, *, now: datetime, state: str, reason: str,
             expect: Collection[str] = ACTIVE) -> int:
    text = (f"Backout will not merge {action.request_name} by itself: {reason}. Review it and merge by hand "
            "when you agree." if state == "declined" else
            f"Backout did not merge {action.request_name} by itself: {reason}. It does nothing more by itself: "
            "review it and merge by hand when you agree.")

    def say(tx: Transaction, updated: Action) -> None:
        tx.timeline.append(event(incident_id=updated.incident_id, at=now, kind=EventKind.AUTOMERGE_DECLINED,
                                 actor=Actor.BACKOUT, actor_id=BY, text=text,
                                 data={"reason": reason, "url": updated.url, "state": state}))

    if _move(store, action, expect=expect, state=state, now=now, then=say, reason=reason) is None:
        return 0
    notify.incident_update(store=store, notifier=notifier, incident_id=action.incident_id, kind=f"automerge.{state}")
    return 1


def _retry(store: Store, notifier: Notifier, action: Action, *, now: datetime, error: str) -> int:
    """The forge did not answer: the next run reads it again (said once), up to MAX_ATTEMPTS runs."""
    failures = int(window(action).get("failures") or 0) + 1
    if failures >= MAX_ATTEMPTS:
        return _decline(store, notifier, action, now=now, state="refused",
                        reason=f"the forge did not answer {failures} times ({error})")

    def say_once(tx: Transaction, updated: Action) -> None:
        if failures == 1:
            tx.timeline.append(event(
                incident_id=updated.incident_id, at=now, kind=EventKind.AUTOMERGE_RETRY, actor=Actor.BACKOUT,
                actor_id=BY, data={"error": error},
                text=f"The forge did not answer about {updated.request_name} ({error}); Backout reads it again at "
                     "its next run before merging, and never merges twice."))

    _move(store, action, expect=(window_state(action),), state=window_state(action), now=now, then=say_once,
          failures=failures)
    return 0
