"""What happens on Backout's branches after they are pushed: commits people push to an incident
branch go on the timeline (author, message, files, revert-safety flags), and a Backout pull
request merged or closed moves the incident's life. Fed by the forge webhooks (bot/entrypoints/
http_forges.py) and, for forges without one, by polling the branches (the scheduler)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from bot.domain.actions import Action, ActionKind, ActionState, incident_of_branch
from bot.domain.changes import Change
from bot.domain.errors import BackoutError
from bot.domain.forge_events import BranchPush, PushedCommit, RequestChanged
from bot.domain.models import Actor, TimelineEvent
from bot.domain.ports import GitRepos, Notifier, Store, Transaction
from bot.domain.safety import revert_warnings
from bot.domain.timeline import EventKind, event
from bot.services import notify
from bot.services.pull_requests import record_closed, record_merge

MAX_KEPT = 500  # commits remembered per branch (what the post-mortem lists); older ones stay on the timeline
OPEN = (ActionState.PUSHED, ActionState.PR_OPEN)


def record_push(*, store: Store, notifier: Notifier, repo: str, push: BranchPush, now: datetime) -> int:
    """Each new commit of a push to an incident branch on the timeline, once (a redelivery or a
    poll that saw it already adds nothing). Returns how many were new."""
    number = incident_of_branch(push.branch)
    if number is None:
        return 0

    def work(tx: Transaction) -> int:
        action = tx.actions.get(number, ActionKind.INCIDENT_BRANCH, "", repo=repo)
        if action is None:
            return 0
        seen = {str(c.get("sha")) for c in action.detail.get("commits", [])}
        seen.add(str(action.detail.get("pushed_sha")))  # the commit Backout made when it cut the branch
        new = [c for c in push.commits if c.sha not in seen]
        for commit in new:
            tx.timeline.append(_commit_event(action, commit, pusher=push.pusher, at=now))
        if push.forced:
            tx.timeline.append(event(
                incident_id=number, at=now, kind=EventKind.NOTE, actor=Actor.BACKOUT,
                text=f"{push.pusher or 'Someone'} force-pushed {action.branch} on {repo}: commits on it may have "
                     "been rewritten (Backout never force-pushes it)", data={"repo": repo, "forced": True}))
        if new:
            kept = [*action.detail.get("commits", []), *(_kept(c) for c in new)][-MAX_KEPT:]
            tx.actions.save(action.model_copy(update={"updated_at": now, "detail": {**action.detail,
                                                                                    "commits": kept}}))
        return len(new)

    added = store.run(work)
    if added:
        notify.incident_update(store=store, notifier=notifier, incident_id=number, kind="branch.commit")
    return added


def _commit_event(action: Action, commit: PushedCommit, *, pusher: str, at: datetime) -> TimelineEvent:
    flags = revert_warnings(commit.files, "")
    files = ", ".join(commit.files[:10]) + (f" and {len(commit.files) - 10} more" if len(commit.files) > 10 else "")
    caution = f" ⚠️ {'; '.join(flags)}" if flags else ""
    return event(
        incident_id=action.incident_id, at=at, kind=EventKind.BRANCH_COMMIT, actor=Actor.USER,
        actor_id=commit.author or pusher,
        text=f"{commit.author or pusher} pushed {commit.sha[:7]} to {action.branch} ({action.repo}): "
             f"{commit.subject[:200]}" + (f" — {files}" if files else "") + caution,
        data={"repo": action.repo, "sha": commit.sha, "author": commit.author, "message": commit.message[:2000],
              "files": list(commit.files[:200]), "flags": list(flags), "pusher": pusher})


def _kept(commit: PushedCommit) -> dict[str, object]:
    return {"sha": commit.sha, "author": commit.author, "subject": commit.subject[:200],
            "files": list(commit.files[:50]), "flags": list(revert_warnings(commit.files, ""))}


def record_request(*, store: Store, notifier: Notifier, repo: str, changed: RequestChanged, now: datetime) -> bool:
    """A Backout pull request merged or closed, as the forge said: recorded once, as the poller
    would (the merge of an incident branch is its mitigation). False when it changes nothing."""
    if changed.action not in ("merged", "closed"):
        return False
    found = _action_for(store, repo, changed)
    if found is None or found.state not in (*OPEN, ActionState.CONFLICTED):
        return False
    if changed.action == "merged":
        merged = found.model_copy(update={"detail": {**found.detail, "merge_sha": changed.merge_sha}})
        record_merge(store, merged, called=found.request_name, by=changed.by or "someone", now=now)
    else:
        record_closed(store, found, called=found.request_name, now=now)
    notify.incident_update(store=store, notifier=notifier, incident_id=found.incident_id,
                           kind=f"pr.{changed.action}")
    return True


def _action_for(store: Store, repo: str, changed: RequestChanged) -> Action | None:
    """The Backout action whose pull request this is: its branch and number on this repository."""
    def work(tx: Transaction) -> Action | None:
        for state in OPEN:
            for action in tx.actions.with_state(state):
                if (action.repo, action.branch) == (repo, changed.head) and \
                        action.detail.get("pr_number") == changed.number:
                    return action
        return None

    return store.run(work)


def poll_branches(*, store: Store, git: GitRepos, notifier: Notifier, now: datetime,
                  polled: Callable[[str], bool] = lambda _: True) -> int:
    """For repositories whose forge sends no webhook (`polled`): read each open incident branch
    with git (one fetch of that branch: no forge API call, so no rate limit spent) and record its
    new commits. The scheduler runs it once a minute. Returns how many commits were new."""
    def work(tx: Transaction) -> list[Action]:
        return [a for state in OPEN for a in tx.actions.with_state(state)
                if a.kind is ActionKind.INCIDENT_BRANCH and polled(a.repo)]

    branches = store.run(work)
    added = 0
    for action in branches:
        try:
            changes = git.branch_log(action.repo, action.branch)
        except BackoutError:
            continue  # the host does not answer: the next round reads it
        if changes is None:
            continue  # deleted on the remote
        push = BranchPush(forge="git", project=action.repo, branch=action.branch, pusher="",
                          commits=tuple(_pushed(c) for c in reversed(changes)))
        added += record_push(store=store, notifier=notifier, repo=action.repo, push=push, now=now)
    return added


def _pushed(change: Change) -> PushedCommit:
    return PushedCommit(sha=change.sha, author=change.author, message=change.subject, files=tuple(change.paths),
                        at=change.committed_at)


def branch_commits(actions: Sequence[Action]) -> list[dict[str, object]]:
    """The commits pushed to the incident's branches, oldest first, with their repository (for the post-mortem)."""
    return [{**commit, "repo": a.repo, "branch": a.branch} for a in actions
            if a.kind is ActionKind.INCIDENT_BRANCH for commit in a.detail.get("commits", [])]
