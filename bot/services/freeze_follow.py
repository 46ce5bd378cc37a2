"""After a freeze: the unfreeze opened once the fix is verified, reminders while it is open, a
freeze past its expiry reported once, and the list `backout freeze --list` prints."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from bot.domain.actions import Action, ActionKind, ActionState
from bot.domain.errors import BackoutError
from bot.domain.models import Actor, format_incident_ref
from bot.domain.playbooks import Playbook, playbook_named
from bot.domain.ports import Forge, GitRepos, Notice, Notifier, Store, Transaction
from bot.domain.timeline import EventKind, event
from bot.services.freeze import unfreeze
from bot.services.incidents import get_summary

_LIVE = (ActionState.PUSHED, ActionState.PR_OPEN, ActionState.MERGED)


@dataclass(frozen=True)
class FreezeRow:
    """One freeze as listed: where, its state, its expiry, and its unfreeze's state."""

    incident_ref: str
    repo: str
    state: str
    url: str | None
    expires_at: datetime | None
    expired: bool
    unfreeze: str | None  # the unfreeze's state, when there is one


def list_freezes(*, store: Store, now: datetime) -> list[FreezeRow]:
    """Every freeze pushed, open or merged, oldest first, with whether it is past its expiry."""
    def work(tx: Transaction) -> list[FreezeRow]:
        rows = []
        for action in sorted(_of_kind(tx, ActionKind.FREEZE), key=lambda a: a.created_at):
            undo = _unfreeze_of(tx, action)
            expires = _expires(action)
            released = undo is not None and undo.state is ActionState.MERGED
            rows.append(FreezeRow(
                incident_ref=format_incident_ref(action.incident_id), repo=action.repo, state=action.state.value,
                url=action.url, expires_at=expires, unfreeze=undo.state.value if undo else None,
                expired=expires is not None and expires <= now and not released))
        return rows

    return store.run(work)


def follow_freezes(*, store: Store, git: GitRepos, notifier: Notifier, forge: Forge | None,
                   playbooks: Sequence[Playbook], now: datetime,
                   page_url: Callable[[int], str | None] = lambda _: None) -> int:
    """Open the unfreeze of each merged freeze whose incident is verified; report each freeze past
    its expiry once; remind of each open unfreeze every `reminders.every` of its playbook."""
    changed = 0
    for action in store.run(lambda tx: _of_kind(tx, ActionKind.FREEZE)):
        undo = store.run(partial(_unfreeze_of, freeze=action))
        incident = get_summary(store=store, incident_id=action.incident_id).incident
        if undo is None and action.state is ActionState.MERGED and incident.verified_at is not None:
            try:
                unfreeze(store=store, git=git, notifier=notifier, forge=forge, playbooks=playbooks,
                         incident_id=action.incident_id, actor=Actor.SCHEDULER, actor_id="freeze:verified",
                         now=now, page_url=page_url(action.incident_id), repo=action.repo)
                changed += 1
            except BackoutError:
                pass  # recorded on the timeline; the next round tries again
        changed += _report_expiry(store, notifier, action, undo, now)
    for action in store.run(lambda tx: _of_kind(tx, ActionKind.UNFREEZE)):
        changed += _remind(store, notifier, playbooks, action, now)
    return changed


def _of_kind(tx: Transaction, kind: ActionKind) -> list[Action]:
    return [a for state in _LIVE for a in tx.actions.with_state(state) if a.kind is kind]


def _unfreeze_of(tx: Transaction, freeze: Action) -> Action | None:
    return tx.actions.get(freeze.incident_id, ActionKind.UNFREEZE, freeze.commit_sha)


def _expires(action: Action) -> datetime | None:
    text = action.detail.get("expires_at")
    return datetime.fromisoformat(text) if isinstance(text, str) else None


def _report_expiry(store: Store, notifier: Notifier, action: Action, undo: Action | None, now: datetime) -> int:
    expires = _expires(action)
    if (expires is None or expires > now or action.detail.get("expiry_reported")
            or action.state is ActionState.PR_OPEN or (undo is not None and undo.state is ActionState.MERGED)):
        return 0
    ref = format_incident_ref(action.incident_id)
    text = (f"The freeze of {action.repo} for {ref} expired at {expires:%Y-%m-%d %H:%M} UTC and automation is "
            f"still paused: merge the unfreeze ({undo.url or undo.branch if undo else f'`backout unfreeze {ref}`'}) "
            "or freeze again on purpose")
    reported = action.model_copy(update={"detail": {**action.detail, "expiry_reported": True}, "updated_at": now})

    def work(tx: Transaction) -> None:
        tx.actions.save(reported)
        tx.timeline.append(event(incident_id=action.incident_id, at=now, kind=EventKind.FREEZE_EXPIRED,
                                 actor=Actor.SCHEDULER, text=text,
                                 data={"repo": action.repo, "expires_at": expires.isoformat()}))

    store.run(work)
    notifier.notify(Notice(incident_id=action.incident_id, kind="freeze.expired", title=f"{ref} freeze expired",
                           lines=(text,)))
    return 1


def _remind(store: Store, notifier: Notifier, playbooks: Sequence[Playbook], action: Action, now: datetime) -> int:
    if action.state is not ActionState.PR_OPEN:
        return 0
    incident = get_summary(store=store, incident_id=action.incident_id).incident
    playbook = playbook_named(playbooks, incident.playbook)
    every = playbook.reminders.every if playbook else Playbook.model_fields["reminders"].default.every
    last = action.detail.get("reminded_at")
    since = datetime.fromisoformat(last) if isinstance(last, str) else action.updated_at
    if now - since < every:
        return 0
    store.run(lambda tx: tx.actions.save(action.model_copy(update={
        "detail": {**action.detail, "reminded_at": now.isoformat()}})))
    notifier.notify(Notice(incident_id=action.incident_id, kind="freeze.reminder",
                           title=f"{incident.ref}: automation is still frozen",
                           lines=(f"Merge the unfreeze {action.request_name} ({action.url}) so image automation "
                                  "and automated sync resume for the service.",)))
    return 1
