"""Actions: a revert, a restore, an incident branch, a freeze or unfreeze of automation, idempotent on
(incident, kind, commit): the reverted commit, the good revision restored, the repository frozen,
empty for the incident branch."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from bot.domain.models import acting, format_incident_ref


class ActionKind(StrEnum):
    REVERT = "revert"
    RESTORE = "restore"  # the service's paths put back to their last known good revision
    INCIDENT_BRANCH = "incident_branch"
    POSTMORTEM = "postmortem"  # the post-mortem draft proposed to a repository
    FREEZE = "freeze"  # automation paused in Git for the service (commit_sha: the repository)
    UNFREEZE = "unfreeze"  # exactly what a freeze added, taken out again (commit_sha: the repository)


# The actions whose pull request changes production: its opening mitigates, its merge is applied.
CHANGING = frozenset({ActionKind.REVERT, ActionKind.RESTORE})


class ActionState(StrEnum):
    PROPOSED = "proposed"      # shown to people, nothing made yet
    STARTED = "started"        # recorded before any outside call: a crash leaves this behind
    PUSHED = "pushed"          # the branch exists on the remote
    CONFLICTED = "conflicted"  # the revert did not apply; an incident branch was made instead
    WAITING = "waiting"        # the Git host does not answer: prepared locally, pushed when it does
    FAILED = "failed"          # the outside call failed; it can be tried again
    PR_OPEN = "pr_open"        # a pull request is open for the branch
    MERGED = "merged"          # the pull request was merged (by a person: Backout never merges)
    CLOSED = "closed"          # the pull request was closed without merging


# Kinds that pause or resume automation and change no deployed code: their pull requests never
# move the incident's life.
AUTOMATION = frozenset({ActionKind.FREEZE, ActionKind.UNFREEZE})
# Kinds whose pull request Backout follows until it merges or closes.
FOLLOWED = CHANGING | AUTOMATION | {ActionKind.INCIDENT_BRANCH}

# The branch exists: pushing again is never needed.
FINISHED = frozenset({ActionState.PUSHED, ActionState.CONFLICTED, ActionState.PR_OPEN,
                      ActionState.MERGED, ActionState.CLOSED})


class Action(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: int | None = None
    incident_id: int
    kind: ActionKind
    repo: str
    commit_sha: str = ""  # the reverted commit, the good revision restored; empty for an incident branch
    state: ActionState
    branch: str
    url: str | None = None
    auto: bool = False
    actor_id: str = ""
    detail: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime

    @property
    def request_name(self) -> str:
        """Its pull (merge) request as the forge's users say it: "pull request #12", "merge request !12"."""
        name = self.detail.get("pr_name")
        return name if isinstance(name, str) and name else f"pull request #{self.detail.get('pr_number')}"

    @property
    def who(self) -> str:
        """Who made it, and whom they said they acted for."""
        return acting(self.actor_id, str(self.detail.get("on_behalf_of") or ""))

    @property
    def label(self) -> str:
        """What it is, for people: "revert abc1234", "freeze of gitops"."""
        if self.kind is ActionKind.REVERT:
            return f"revert {self.commit_sha[:7]}"
        if self.kind is ActionKind.RESTORE:
            return f"restore to last known good {self.commit_sha[:7]}"
        if self.kind in AUTOMATION:
            return f"{self.kind.value} of {self.repo}"
        return "post-mortem draft" if self.kind is ActionKind.POSTMORTEM else "incident branch"

    @property
    def request_noun(self) -> str:
        return "merge request" if self.request_name.startswith("merge request") else "pull request"


def revert_branch(incident_id: int, sha: str) -> str:
    """`backout/INC-7/revert-abc1234`: deterministic, so a retry finds what a crash left."""
    return f"backout/{format_incident_ref(incident_id)}/revert-{sha[:7]}"


def restore_branch(incident_id: int, good_sha: str) -> str:
    """`backout/INC-7/restore-abc1234`: the good revision the service's paths go back to."""
    return f"backout/{format_incident_ref(incident_id)}/restore-{good_sha[:7]}"


def incident_branch(incident_id: int) -> str:
    """`backout/INC-7/incident` (git cannot hold both `backout/INC-7` and refs below it)."""
    return f"backout/{format_incident_ref(incident_id)}/incident"


def freeze_branch(incident_id: int, kind: ActionKind = ActionKind.FREEZE) -> str:
    """`backout/INC-7/freeze` (or `.../unfreeze`): one per incident, as the incident branch."""
    return f"backout/{format_incident_ref(incident_id)}/{kind.value}"


_INCIDENT_BRANCH = re.compile(r"^backout/INC-(\d{1,9})/incident$")


def incident_of_branch(branch: str) -> int | None:
    """The incident an incident branch belongs to (`backout/INC-7/incident` -> 7), else None."""
    found = _INCIDENT_BRANCH.match(branch.removeprefix("refs/heads/"))
    return int(found.group(1)) if found else None


def undoing(action: Action) -> bool:
    """Whether the action, as it stands, changes what is deployed once applied: a revert or a restore
    pushed or merged, or an incident branch merged (its fix). Verification watches from then on."""
    if action.kind in CHANGING:
        return bool(action.commit_sha) and action.state in (ActionState.PUSHED, ActionState.MERGED)
    return action.kind is ActionKind.INCIDENT_BRANCH and action.state is ActionState.MERGED


def revert_message(*, incident_ref: str, incident_title: str, sha: str, subject: str) -> str:
    """The revert commit's message: names the incident and the reverted commit, with trailers."""
    return (
        f'Revert "{subject}"\n\n'
        f"This reverts commit {sha} for {incident_ref}: {incident_title}\n\n"
        f"Backout-Incident: {incident_ref}\n"
        f"Backout-Reverts: {sha}\n"
    )


def restore_message(*, incident_ref: str, service: str, good_sha: str, paths: list[str],
                    undone: list[tuple[str, str, str]]) -> str:
    """The restore commit's message: the paths, the good revision, every commit it undoes
    (sha, author, subject), with trailers."""
    lines = [f"Restore {service} to {good_sha[:7]} ({incident_ref})", "",
             f"Puts {', '.join(paths)} back to their content at {good_sha}, the last known good",
             f"revision of {service}, for {incident_ref}.", ""]
    if undone:
        lines.append(f"Undoes {len(undone)} commit{'s' if len(undone) != 1 else ''} on these paths:")
        lines += [f"- {sha[:7]} {subject} ({author})" for sha, author, subject in undone]
        lines.append("")
    lines += [f"Backout-Incident: {incident_ref}", f"Backout-Restores: {good_sha}"]
    return "\n".join(lines) + "\n"
