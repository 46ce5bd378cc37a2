"""The review in Git: for each incident that resolves, a pull request that adds its post-mortem
draft (Markdown) and chart to a folder of a repository, so the review happens where the change
history lives. Once per incident, recorded as an action like a revert: a crash between the push
and the pull request is finished by the next run, which adopts the branch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from bot.domain.actions import Action, ActionKind, ActionState
from bot.domain.errors import BackoutError
from bot.domain.models import Actor, IncidentStatus, format_incident_ref
from bot.domain.ports import Forge, GitRepos, Notifier, Store, Transaction
from bot.domain.timeline import EventKind, event
from bot.services.incidents import IncidentView, get_incident
from bot.services.pull_requests import open_for_action

log = structlog.get_logger(__name__)
# (the incident, the chart's file name) -> (the Markdown draft naming that chart, the chart PNG)
Render = Callable[[IncidentView, str], tuple[bytes, bytes]]


@dataclass(frozen=True)
class PostmortemPolicy:
    repo: str  # a repository from the config's `repos`
    path: str = "postmortems"  # the folder in it
    branch_prefix: str = "backout/postmortem"
    within: timedelta = timedelta(days=1)  # incidents resolved this recently (not the whole history)


def open_postmortems(*, store: Store, git: GitRepos, forge: Forge | None, notifier: Notifier,
                     policy: PostmortemPolicy, render: Render, now: datetime, limit: int = 20) -> int:
    """Propose the draft of each incident resolved within `policy.within` that has none yet; the
    number proposed. One incident's failure, whatever it is (an outside system, or data its chart or
    draft cannot be made from), is recorded on its timeline and tried again next run; the others go on."""
    due = store.run(lambda tx: [i.id for i in tx.incidents.list(status=IncidentStatus.RESOLVED, limit=200)
                                if i.id is not None and i.resolved_at and i.resolved_at >= now - policy.within
                                and not _done(tx, i.id)])
    proposed = 0
    for incident_id in due[:limit]:
        try:
            proposed += _propose(store=store, git=git, forge=forge, notifier=notifier, policy=policy,
                                 render=render, incident_id=incident_id, now=now)
        except BackoutError as exc:
            _failed(store, incident_id, policy, str(exc), now)
        except Exception as exc:  # a bug or bad data in one incident: the next incident's draft still goes
            log.exception("postmortem.unexpected", incident=incident_id)
            _failed(store, incident_id, policy, f"{type(exc).__name__}: {_summary(exc)} (a Backout bug or bad "
                    "data in this incident: see the server log, event postmortem.unexpected)", now)
    return proposed


def _summary(exc: Exception) -> str:
    """The exception's first line, bounded: the timeline is no place for a traceback."""
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else "no message")[:200]


def _done(tx: Transaction, incident_id: int) -> bool:
    """Proposed: its pull request is open, or it is pushed to a repository without a forge."""
    found = tx.actions.get(incident_id, ActionKind.POSTMORTEM, "")
    return found is not None and (found.url is not None or bool(found.detail.get("no_forge")))


def _propose(*, store: Store, git: GitRepos, forge: Forge | None, notifier: Notifier, policy: PostmortemPolicy,
             render: Render, incident_id: int, now: datetime) -> int:
    view = get_incident(store=store, incident_id=incident_id)
    incident = view.incident
    action = store.run(lambda tx: _action(tx, incident_id, policy, now))
    branch = action.branch
    if action.state is not ActionState.PUSHED:
        name = f"{incident.started_at:%Y-%m-%d}-{incident.ref}"
        folder = policy.path.strip("/")
        markdown, chart = render(view, f"{name}.png")  # the draft names the chart beside it
        files = {f"{folder}/{name}.md": markdown, f"{folder}/{name}.png": chart}
        sha = git.push_files(policy.repo, branch=branch, files=files,
                             message=f"Post-mortem draft for {incident.ref}: {incident.title[:150]}")
        on_forge = forge is not None and forge.handles(policy.repo)
        action = action.model_copy(update={"state": ActionState.PUSHED, "updated_at": now, "detail": {
            **action.detail, "sha": sha, "files": sorted(files), **({} if on_forge else {"no_forge": True})}})

        def pushed(tx: Transaction) -> None:
            tx.actions.save(action)
            tx.timeline.append(event(
                incident_id=incident_id, at=now, kind=EventKind.POSTMORTEM_PUSHED, actor=Actor.BACKOUT,
                text=f"Post-mortem draft pushed to {policy.repo} as {branch}: {', '.join(sorted(files))}",
                data={"branch": branch, "files": sorted(files)}))

        store.run(pushed)
    if forge is not None and forge.handles(policy.repo) and not action.url:
        open_for_action(store=store, forge=forge, notifier=notifier, action=action, base=git.branch(policy.repo),
                        title=f"Post-mortem: {incident.ref} {incident.title[:150]}",
                        body=(f"The post-mortem draft of {incident.ref}, generated by Backout when it resolved: "
                              "fill in the impact, the root cause, the contributing factors and the action "
                              "items, and review it like any change."),
                        draft=False, reviewers=(), now=now, announce_failure=False)  # _failed says it, once
    return 1


def _action(tx: Transaction, incident_id: int, policy: PostmortemPolicy, now: datetime) -> Action:
    """The incident's post-mortem action, added (started) the first time."""
    found = tx.actions.get(incident_id, ActionKind.POSTMORTEM, "")
    if found is not None:
        return found
    branch = f"{policy.branch_prefix.rstrip('/')}/{format_incident_ref(incident_id)}"
    return tx.actions.add(Action(incident_id=incident_id, kind=ActionKind.POSTMORTEM, repo=policy.repo,
                                 state=ActionState.STARTED, branch=branch, actor_id="backout",
                                 created_at=now, updated_at=now))


def _failed(store: Store, incident_id: int, policy: PostmortemPolicy, reason: str, now: datetime) -> None:
    """On the timeline once per distinct reason (the next runs try again without repeating it)."""
    log.warning("postmortem.failed", incident=incident_id, error=reason)

    def work(tx: Transaction) -> None:
        action = _action(tx, incident_id, policy, now)  # one failing before it was made keeps its reason too
        if action.detail.get("error") == reason:
            return
        tx.actions.save(action.model_copy(update={"updated_at": now, "detail": {**action.detail, "error": reason}}))
        tx.timeline.append(event(
            incident_id=incident_id, at=now, kind=EventKind.ACTION_FAILED, actor=Actor.BACKOUT,
            text=f"The post-mortem draft could not be proposed to {policy.repo}: {reason}. Backout tries again "
                 "at its next run.", data={"kind": ActionKind.POSTMORTEM.value, "error": reason}))

    store.run(work)
