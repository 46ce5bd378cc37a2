"""Restoring to last known good: one pull request (`backout/INC-n/restore-<sha7>`) whose single
commit, made with real git on the watched branch's head, puts the service's own paths back to
their content at the last known good revision. Idempotent on (incident, restore, good revision),
recorded before and after the push as reverts are, so a crash at any step is finished by the next
attempt, which adopts the branch and the pull request it finds."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.domain.actions import FINISHED, Action, ActionKind, ActionState, restore_branch, restore_message
from bot.domain.changes import Change, matches_any
from bot.domain.errors import BackoutError, Conflict, InvalidInput
from bot.domain.good import GoodRevision
from bot.domain.incidents import refuse
from bot.domain.models import Actor
from bot.domain.playbooks import Playbook, PlaybookRepo, playbook_named
from bot.domain.ports import Forge, GitRepos, Notifier, RevertResult, Store
from bot.domain.timeline import EventKind
from bot.services import notify
from bot.services.act import ActionResult, revert_safety
from bot.services.action_records import record_finished, record_started
from bot.services.good import gitops_repos, last_known_good
from bot.services.incidents import get_summary
from bot.services.pull_requests import open_for_action
from bot.services.restore_body import Undone, restore_body

UNDONE_LIMIT = 200  # commits read between the good revision and the head: the body says when there are more


@dataclass(frozen=True)
class RestorePlan:
    """What a restore will do, shown before it is made (CLI prompt, API) and used to make it."""

    incident_id: int
    incident_ref: str
    playbook: str
    service: str
    repo: str
    good: GoodRevision
    branch: str
    paths: tuple[str, ...]  # restored
    exclude: tuple[str, ...]  # shared paths left as they are at head
    included: tuple[str, ...]  # shared paths the responder named, restored too
    undone: tuple[Undone, ...]
    undone_more: bool = False  # more commits after the good revision than UNDONE_LIMIT: the list is cut


def plan_restore(*, store: Store, git: GitRepos, playbooks: Sequence[Playbook], incident_id: int, now: datetime,
                 include: Sequence[str] = (), repo: str | None = None) -> RestorePlan:
    """The restore of the incident's service to its last known good revision: which repository,
    which paths (shared ones only when named in `include`), which commits it undoes."""
    view = get_summary(store=store, incident_id=incident_id)
    refuse(view.incident, "be restored")
    playbook = playbook_named(playbooks, view.incident.playbook)
    if playbook is None:
        raise InvalidInput(f"{view.incident.ref} has no playbook: Backout does not know the service's paths, "
                           "so it cannot restore them")
    entry = _entry(playbook, repo)
    answer = last_known_good(store=store, playbook=playbook, now=now, repo=entry.repo)[0]
    if answer.good is None:
        raise Conflict(f"no last known good revision of {playbook.service} in {entry.repo}: {answer.reason}")
    included = tuple(include)
    unknown = [p for p in included if p not in entry.shared_paths and matches_any(p, entry.shared_paths) is None]
    if unknown:
        raise InvalidInput(f"--include names shared paths of the playbook ({', '.join(entry.shared_paths) or 'none'}); "
                           f"not shared: {', '.join(unknown)}")
    paths = (*entry.paths, *included)
    exclude = tuple(p for p in entry.shared_paths if p not in included)
    undone, more = _undone(store, git, repo=entry.repo, good=answer.good.sha, paths=paths, exclude=exclude)
    return RestorePlan(
        incident_id=incident_id, incident_ref=view.incident.ref, playbook=playbook.name, service=playbook.service,
        repo=entry.repo,
        good=answer.good, branch=restore_branch(incident_id, answer.good.sha), paths=paths, exclude=exclude,
        included=included, undone=tuple(undone), undone_more=more)


def _entry(playbook: Playbook, repo: str | None) -> PlaybookRepo:
    repos = gitops_repos(playbook)
    name = repo or next(iter(repos), None)
    found = next((e for e in playbook.repos if e.repo == name and name in repos), None)
    if found is None:
        raise InvalidInput(f"the {playbook.name} playbook has no GitOps repository "
                           f"{name or ''}: its GitOps repositories are {', '.join(repos) or 'none'}")
    return found


def _undone(store: Store, git: GitRepos, *, repo: str, good: str, paths: tuple[str, ...],
            exclude: tuple[str, ...]) -> tuple[list[Undone], bool]:
    """The commits after `good` up to the watched branch's last fetched head that touched the
    restored paths, newest first; True when there were more than UNDONE_LIMIT commits to read."""
    head = store.run(lambda tx: tx.changes.head(repo))
    if head is None or head == good:
        return [], False
    changes = git.log_between(repo, old=good, new=head, limit=UNDONE_LIMIT + 1)
    return ([Undone(sha=c.sha, author=c.author, subject=c.subject, warnings=revert_safety(git, c))
             for c in changes[:UNDONE_LIMIT] if _touches(c, paths, exclude)], len(changes) > UNDONE_LIMIT)


def _touches(change: Change, paths: tuple[str, ...], exclude: tuple[str, ...]) -> bool:
    return any(matches_any(p, paths) is not None and matches_any(p, exclude) is None for p in change.paths)


def restore(*, store: Store, git: GitRepos, notifier: Notifier, plan: RestorePlan, actor: Actor, actor_id: str,
            now: datetime, forge: Forge | None = None, reviewers: Sequence[str] = (),
            page_url: str | None = None, on_behalf_of: str = "") -> ActionResult:
    """Push the restore branch and, on a forge, open its pull request (or adopt what a crash left).
    `on_behalf_of`: whom the actor (an API token's name) acts for."""
    warnings = tuple(sorted({w for u in plan.undone for w in u.warnings}))
    started = record_started(store, incident_id=plan.incident_id, kind=ActionKind.RESTORE, repo=plan.repo,
                             sha=plan.good.sha, branch=plan.branch, actor=actor, actor_id=actor_id, now=now,
                             auto=False, warnings=warnings, on_behalf_of=on_behalf_of)
    if started.state in FINISHED:
        current, message = started, f"already done: {started.state.value} {plan.branch}"
    else:
        current, message = _push(store=store, git=git, notifier=notifier, plan=plan, action=started, now=now)
    if forge is None or not forge.handles(plan.repo) or current.state is not ActionState.PUSHED or current.url:
        return ActionResult(current, message)
    view = get_summary(store=store, incident_id=plan.incident_id)
    current = open_for_action(
        store=store, forge=forge, notifier=notifier, action=current, base=git.branch(plan.repo),
        title=f"Restore {plan.service} to last known good {plan.good.short} ({plan.incident_ref})",
        body=restore_body(view, plan=plan, pinned=current.detail.get("pinned", []),
                          unpinned=current.detail.get("unpinned", []), page_url=page_url,
                          noun=forge.request_noun(plan.repo)),
        draft=False, reviewers=reviewers, now=now)
    return ActionResult(current, message + f"; {current.request_noun} {current.url}")


def _push(*, store: Store, git: GitRepos, notifier: Notifier, plan: RestorePlan, action: Action,
          now: datetime) -> tuple[Action, str]:
    incident = get_summary(store=store, incident_id=plan.incident_id).incident
    message = restore_message(incident_ref=plan.incident_ref, service=plan.service, good_sha=plan.good.sha,
                              paths=list(plan.paths), undone=[(u.sha, u.author, u.subject) for u in plan.undone])
    try:
        result = git.push_restore(plan.repo, good_sha=plan.good.sha, paths=plan.paths, exclude=plan.exclude,
                                  branch=plan.branch, message=message)
    except BackoutError as exc:
        failed = record_finished(store, action, state=ActionState.FAILED, now=now, kind=EventKind.ACTION_FAILED,
                                 text=f"Restore of {plan.service} to {plan.good.short} failed: {exc}. Run the "
                                      "restore again to retry.", detail={"error": str(exc)})
        notify.action_update(notifier=notifier, incident=incident, action=failed, text=str(exc))
        raise
    detail = _detail(plan, result)
    if result.waiting is not None:
        waiting = record_finished(
            store, action, state=ActionState.WAITING, now=now, kind=EventKind.RESTORE_WAITING,
            text=(f"The Git host of {plan.repo} does not answer ({result.waiting}). The restore of "
                  f"{plan.service} to {plan.good.short} is prepared as {(result.prepared_sha or '')[:7]}; "
                  "Backout pushes it and opens the pull request as soon as the host answers."), detail=detail)
        notify.action_update(notifier=notifier, incident=incident, action=waiting,
                             text=f"Git host unreachable: prepared, pushed when it answers ({result.waiting})")
        return waiting, f"the Git host does not answer: restore prepared, pushed when it answers ({result.waiting})"
    how = "found already pushed (adopted)" if result.adopted else "pushed"
    pins = "".join(f" Pinned against image automation: {pin}." for pin in result.pinned)
    pins += "".join(f" Not pinned: {note}." for note in result.unpinned)
    pushed = record_finished(
        store, action, state=ActionState.PUSHED, now=now, kind=EventKind.RESTORE_PUSHED,
        text=(f"Restore of {plan.service} to last known good {plan.good.short} {how} as branch {plan.branch}, "
              f"undoing {len(plan.undone)} commit(s) on {', '.join(plan.paths)}.{pins}"), detail=detail)
    notify.action_update(notifier=notifier, incident=incident, action=pushed, text=how)
    return pushed, f"restore branch {plan.branch} {how} ({(result.pushed_sha or '')[:12]})"


def _detail(plan: RestorePlan, result: RevertResult) -> dict[str, object]:
    """What a retry and the pull request's body need: the paths, the commits undone, the pins."""
    return {"pushed_sha": result.pushed_sha, "adopted": result.adopted, "prepared_sha": result.prepared_sha,
            "waiting": result.waiting, "pinned": list(result.pinned), "unpinned": list(result.unpinned),
            "paths": list(plan.paths), "included": list(plan.included), "undone": [u.sha for u in plan.undone]}


def push_waiting_restores(*, store: Store, git: GitRepos, notifier: Notifier, playbooks: Sequence[Playbook],
                          now: datetime, forge: Forge | None = None,
                          page_url: Callable[[int], str | None] = lambda _: None) -> int:
    """Retry the restores prepared while the Git host was down, with the shared paths named then."""
    done = 0
    for action in store.run(lambda tx: tx.actions.with_state(ActionState.WAITING)):
        if action.kind is not ActionKind.RESTORE:
            continue
        try:
            git.remote_branch(action.repo, action.branch)  # does the host answer yet? (one ls-remote)
            plan = plan_restore(store=store, git=git, playbooks=playbooks, incident_id=action.incident_id, now=now,
                                include=action.detail.get("included", []), repo=action.repo)
            if plan.good.sha != action.commit_sha:
                continue  # the last known good moved on: a person decides on a new restore
            incident = get_summary(store=store, incident_id=action.incident_id).incident
            playbook = playbook_named(playbooks, incident.playbook)
            result = restore(store=store, git=git, notifier=notifier, plan=plan, actor=Actor.SCHEDULER,
                             actor_id="git-retry", now=now, forge=forge, page_url=page_url(action.incident_id),
                             reviewers=playbook.actions.reviewers if playbook else ())
        except BackoutError:
            continue  # still down, or recorded on the timeline; the next round tries again
        done += result.action.state is not ActionState.WAITING
    return done
