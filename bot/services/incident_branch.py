"""The incident branch as a workflow: `backout/INC-n/incident` in every repository of the playbook,
cut from the watched branch with the rollback applied where it applies cleanly, a draft pull
request back that explains it, "ready" asking the playbook's reviewers. What is pushed to it later
is followed by bot/services/branch_pushes.py; its merge is the mitigation (bot/services/lifecycle.py).

Backout never force-pushes it and never points a controller at it: the controllers keep following
the watched branch, and merging is what deploys. Every step is recorded before and after, keyed
by (incident, repository): run again after a crash and the branch and its pull request are adopted."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.domain.actions import (
    FINISHED,
    Action,
    ActionKind,
    ActionState,
    incident_branch,
    restore_message,
    revert_message,
)
from bot.domain.errors import BackoutError, Conflict, InvalidInput
from bot.domain.models import Actor
from bot.domain.playbooks import Playbook, playbook_named
from bot.domain.ports import Forge, GitRepos, Notifier, RevertResult, Store, Transaction
from bot.domain.text import md
from bot.domain.timeline import EventKind, event
from bot.services import notify
from bot.services.action_records import record_finished, record_started
from bot.services.incidents import IncidentView, get_summary
from bot.services.presenters import branches_dict
from bot.services.pull_requests import open_for_action

OPEN = frozenset({ActionState.PUSHED, ActionState.PR_OPEN})  # a branch people may still push to


@dataclass(frozen=True)
class Rollback:
    """What the incident branch starts with in one repository: a restore to last known good, or a
    revert, pushed as the incident branch by `push` (its result says whether it applied)."""

    what: str  # "restore to last known good 1a2b3c4", "revert of abc1234": how the body and the timeline say it
    push: Callable[[str], RevertResult]  # branch -> what git did


def rollback_for(*, store: Store, git: GitRepos, view: IncidentView, playbook: Playbook, repo: str) -> Rollback | None:
    """Where the repository's incident branch starts: the restore to last known good already made
    for this repository (bot/services/restore.py), else the revert already made there or the
    confident suspect's revert; None (the watched branch's head) when there is neither."""
    incident = view.incident
    mine = [a for a in view.actions if a.repo == repo and a.state not in (ActionState.FAILED, ActionState.CLOSED)]
    restored = next((a for a in mine if a.kind is ActionKind.RESTORE and a.commit_sha), None)
    entry = next((e for e in playbook.repos if e.repo == repo), None)
    if restored is not None and entry is not None:
        included = [str(p) for p in restored.detail.get("included", [])]
        paths = tuple(str(p) for p in restored.detail.get("paths", [])) or (*entry.paths, *included)
        exclude = tuple(p for p in entry.shared_paths if p not in included)
        message = restore_message(incident_ref=incident.ref, service=incident.service, good_sha=restored.commit_sha,
                                  paths=list(paths), undone=[])
        return Rollback(f"restore to last known good {restored.commit_sha[:7]}", lambda branch: git.push_restore(
            repo, good_sha=restored.commit_sha, paths=paths, exclude=exclude, branch=branch, message=message))
    reverted = next((a.commit_sha for a in mine if a.kind is ActionKind.REVERT and a.commit_sha), None)
    best = view.ranking.best if view.ranking.confident else None
    sha = reverted or (best.sha if best is not None and best.repo == repo else None)
    found = store.run(lambda tx: tx.changes.get_many(repo, [sha])) if sha else []
    if not found:
        return None
    change = found[0]
    message = revert_message(incident_ref=incident.ref, incident_title=incident.title, sha=change.sha,
                             subject=change.subject)
    return Rollback(f"revert of {change.short}",
                    lambda branch: git.push_revert(repo, sha=change.sha, branch=branch, message=message))


def open_branches(*, store: Store, git: GitRepos, forge: Forge | None, notifier: Notifier,
                  playbooks: Sequence[Playbook], incident_id: int, actor: Actor, actor_id: str, now: datetime,
                  page_url: str | None = None, on_behalf_of: str = "") -> list[Action]:
    """The incident branch in every repository of the incident's playbook, each with its draft
    pull request on a forge. A repository that fails is recorded and the others still go; the
    first failure is raised at the end, after every repository was tried."""
    view = get_summary(store=store, incident_id=incident_id)
    playbook = playbook_named(playbooks, view.incident.playbook)
    if playbook is None or not playbook.repos:
        raise Conflict(f"{view.incident.ref} has no playbook repository to branch from: the incident branch is "
                       "cut in the repositories its playbook names")
    made: list[Action] = []
    failure: BackoutError | None = None
    for entry in playbook.repos:
        try:
            made.append(open_branch(store=store, git=git, forge=forge, notifier=notifier, view=view,
                                    playbook=playbook, repo=entry.repo, actor=actor, actor_id=actor_id, now=now,
                                    page_url=page_url, reviewers=(), on_behalf_of=on_behalf_of))
        except BackoutError as exc:
            failure = failure or exc
    if failure is not None:
        raise failure
    return made


def open_branch(*, store: Store, git: GitRepos, forge: Forge | None, notifier: Notifier, view: IncidentView,
                playbook: Playbook, repo: str, actor: Actor, actor_id: str, now: datetime, page_url: str | None,
                reviewers: Sequence[str] = (), on_behalf_of: str = "") -> Action:
    """One repository's incident branch (cut, or adopted) and its draft pull request (opened, or adopted)."""
    incident = view.incident
    branch = incident_branch(incident.id or 0)
    started = record_started(store, incident_id=incident.id or 0, kind=ActionKind.INCIDENT_BRANCH, repo=repo,
                             sha="", branch=branch, actor=actor, actor_id=actor_id, now=now, auto=False,
                             on_behalf_of=on_behalf_of)
    action = started if started.state in FINISHED else _cut(store=store, git=git, notifier=notifier,
                                                             view=view, playbook=playbook, action=started, now=now)
    if forge is None or not forge.handles(repo) or action.url or action.state not in OPEN:
        return action
    return open_for_action(store=store, forge=forge, notifier=notifier, action=action, base=git.branch(repo),
                           title=f"{incident.ref}: incident branch for {incident.service}",
                           body=branch_body(view, action=action, base=git.branch(repo), page_url=page_url,
                                            noun=forge.request_noun(repo)),
                           draft=True, reviewers=reviewers, now=now)


def _cut(*, store: Store, git: GitRepos, notifier: Notifier, view: IncidentView, playbook: Playbook,
         action: Action, now: datetime) -> Action:
    """Push the branch: with the rollback applied when it applies cleanly, else from the watched
    branch's head with the conflict described. Never a force-push: a branch there is adopted."""
    repo, branch = action.repo, action.branch
    start = rollback_for(store=store, git=git, view=view, playbook=playbook, repo=repo)
    detail: dict[str, object] = {"base": git.branch(repo), "applied": None, "conflicts": []}
    try:
        if start is not None:
            try:
                result = start.push(branch)
            except Conflict as exc:  # a restore with nothing to restore, a revert with nothing to undo
                detail["skipped"] = f"the {start.what} was not applied: {exc}"
                result = RevertResult(branch=branch, pushed_sha=None)
            if result.waiting is not None:
                raise Conflict(f"the Git host of {repo} does not answer ({result.waiting}); run branch again")
            if result.conflicts:
                detail["conflicts"] = list(result.conflicts)
                detail["tried"] = start.what
            elif result.adopted:
                detail["adopted"] = True  # a run before this one pushed it: what it holds is on the forge
            else:
                detail["applied"] = start.what
                detail["pinned"] = list(result.pinned)
            tip = result.pushed_sha or git.push_branch(repo, branch=branch)
        elif existing := git.remote_branch(repo, branch):
            detail["adopted"] = True
            tip = existing
        else:
            tip = git.push_branch(repo, branch=branch)
    except BackoutError as exc:
        record_finished(store, action, state=ActionState.FAILED, now=now, kind=EventKind.ACTION_FAILED,
                        text=f"Incident branch {branch} on {repo} failed: {exc}. Run branch again to retry.",
                        detail={"error": str(exc)})
        raise
    pushed = record_finished(store, action, state=ActionState.PUSHED, now=now, kind=EventKind.BRANCH_PUSHED,
                             text=f"Incident branch {branch} pushed on {repo} at {tip[:12]}: {_start_text(detail)}",
                             detail={**detail, "pushed_sha": tip, "error": None})
    notify.action_update(notifier=notifier, incident=view.incident, action=pushed, text=_start_text(detail))
    return pushed


def _start_text(detail: dict[str, object]) -> str:
    if detail.get("skipped"):
        return f"cut from {detail.get('base')}'s head: {detail['skipped']}"
    if detail.get("adopted"):
        return "found already pushed (adopted as it is)"
    if detail.get("applied"):
        return f"{detail['applied']} applied cleanly"
    conflicts = detail.get("conflicts") or []
    if conflicts and isinstance(conflicts, list):
        return (f"cut from {detail.get('base')}'s head: the {detail.get('tried')} conflicts in "
                f"{', '.join(str(c) for c in conflicts)}")
    return f"cut from {detail.get('base')}'s head"


def branch_body(view: IncidentView, *, action: Action, base: str, page_url: str | None,
                noun: str = "pull request") -> str:
    """The incident branch's draft: what it starts with, how to work it, what merging does."""
    incident = view.incident
    detail = action.detail
    lines = [f"Backout opened this draft {noun} for **{incident.ref}**: {md(incident.title)} "
             f"(severity {incident.severity.value}, service {md(incident.service)})."]
    if page_url:
        lines.append(f"Incident page: {page_url}")
    lines += ["", "### What it starts with", ""]
    if detail.get("applied"):
        lines.append(f"The {md(str(detail['applied']))}, applied cleanly on `{md(base)}`'s head.")
    elif detail.get("skipped"):
        lines.append(f"`{md(base)}`'s head: {md(str(detail['skipped']))}.")
    elif detail.get("conflicts"):
        lines += [f"`{md(base)}`'s head: the {md(str(detail.get('tried')))} conflicts with later changes in these "
                  "files, so it was not applied:", ""]
        lines += [f"- `{md(str(path))}`" for path in detail.get("conflicts", [])]
    else:
        lines.append(f"`{md(base)}`'s head, unchanged: no restore, revert or confident suspect to roll back in this "
                     "repository.")
    lines += ["", "### How to work it", "",
              "Push the fix to this branch: every commit appears on the incident's timeline with its author, "
              "files and revert-safety flags. When it is ready, say `ready` (Slack) or run "
              f"`backout branch {incident.ref} --ready`: the draft is marked ready and the playbook's reviewers "
              "are asked.",
              "", "### Once merged", "",
              f"The controllers that follow `{md(base)}` apply what this {noun} changes, as for any merge: Backout "
              "records the merge as the mitigation and watches the key metric. Backout never merges, never "
              "force-pushes this branch and never points a controller at it.",
              f"<!-- backout {incident.ref} incident-branch -->"]
    return "\n".join(lines)


def mark_ready(*, store: Store, forge: Forge, notifier: Notifier, playbooks: Sequence[Playbook], incident_id: int,
               actor: Actor, actor_id: str, now: datetime, on_behalf_of: str = "") -> list[Action]:
    """Mark every open incident branch's draft ready for review and ask the playbook's reviewers
    (`actions.reviewers`). Asking again changes nothing on the forge."""
    view = get_summary(store=store, incident_id=incident_id)
    playbook = playbook_named(playbooks, view.incident.playbook)
    reviewers = playbook.actions.reviewers if playbook else ()
    branches = [a for a in view.actions if a.kind is ActionKind.INCIDENT_BRANCH and a.state in OPEN]
    waiting = [a for a in branches if not isinstance(a.detail.get("pr_number"), int)]
    if not branches or waiting:
        raise InvalidInput(f"{view.incident.ref} has no incident branch with a pull request to mark ready"
                           + (f" ({', '.join(a.repo for a in waiting)}: run branch first)" if waiting else
                              ": run branch first"))
    done = []
    for action in branches:
        forge.mark_ready(action.repo, int(action.detail["pr_number"]), reviewers=reviewers)
        done.append(_record_ready(store, action, reviewers=reviewers, actor=actor, actor_id=actor_id, now=now,
                                  on_behalf_of=on_behalf_of))
    notify.incident_update(store=store, notifier=notifier, incident_id=incident_id, kind="branch.ready")
    return done


def _record_ready(store: Store, action: Action, *, reviewers: Sequence[str], actor: Actor, actor_id: str,
                  now: datetime, on_behalf_of: str) -> Action:
    ready = action.model_copy(update={"updated_at": now, "detail": {**action.detail, "ready": True}})

    def work(tx: Transaction) -> Action:
        tx.actions.save(ready)
        asked = f"; reviewers asked: {', '.join(reviewers)}" if reviewers else "; the playbook names no reviewers"
        tx.timeline.append(event(incident_id=action.incident_id, at=now, kind=EventKind.BRANCH_READY, actor=actor,
                                 actor_id=actor_id, on_behalf_of=on_behalf_of,
                                 text=f"{action.request_name.capitalize()} ({action.repo}) marked ready for "
                                      f"review{asked}",
                                 data={"repo": action.repo, "url": action.url, "reviewers": list(reviewers)}))
        return ready

    return store.run(work)


def branch_command(*, store: Store, git: GitRepos, forge: Forge, notifier: Notifier, playbooks: Sequence[Playbook],
                   incident_id: int, ready: bool, actor_id: str, now: datetime,
                   page_url: Callable[[int], str | None], on_behalf_of: str = "") -> dict[str, Any]:
    """`branch` from the CLI or the API: cut (or adopt) the branches, or with `ready` mark them ready."""
    if ready:
        done = mark_ready(store=store, forge=forge, notifier=notifier, playbooks=playbooks,
                          incident_id=incident_id, actor=Actor.USER, actor_id=actor_id, now=now,
                          on_behalf_of=on_behalf_of)
    else:
        done = open_branches(store=store, git=git, forge=forge, notifier=notifier, playbooks=playbooks,
                             incident_id=incident_id, actor=Actor.USER, actor_id=actor_id, now=now,
                             page_url=page_url(incident_id), on_behalf_of=on_behalf_of)
    return branches_dict(done, ready=ready)
