"""Guarded automatic recovery, the one exception to "Backout never merges": the rule a playbook opts
into (`actions.merge: confident`) and the veto window, as pure decisions (docs/automerge.md).

An action's window lives in its `detail["auto_merge"]` (stored with the action, so a restart finds
it): `state` is `waiting` (announced, due at `due_at`), `held` (someone who may roll back pressed
Hold), `merging` (the merge call may have been made: the next run reads the forge before calling
again), `merged`, `declined` (not eligible when the pull request opened) or `refused` (not merged
when due: why, in `reason`). Only `waiting` and `merging` are ever acted on.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from bot.domain.actions import CHANGING, Action, ActionKind
from bot.domain.durations import format_duration
from bot.domain.suspects import Ranking

# The pull requests Backout may merge itself: its own reverts and restores.
MERGEABLE_KINDS = frozenset(kind.value for kind in CHANGING)
ACTIVE = frozenset({"waiting", "merging"})
MAX_ATTEMPTS = 5  # runs in a row the forge may fail the merge call before Backout gives up


class MergeMode(StrEnum):
    OFF = "off"              # the default: Backout never merges
    CONFIDENT = "confident"  # its own revert or restore, when every condition holds


def window(action: Action) -> dict[str, Any]:
    """The action's automatic-merge record (empty when it has none)."""
    found = action.detail.get("auto_merge")
    return dict(found) if isinstance(found, Mapping) else {}


def window_state(action: Action) -> str:
    return str(window(action).get("state", ""))


def due_at(action: Action) -> datetime | None:
    text = window(action).get("due_at")
    return datetime.fromisoformat(text) if isinstance(text, str) else None


def holdable(action: Action) -> bool:
    """Whether Hold still stops this merge (announced and not yet called)."""
    return window_state(action) == "waiting"


def ineligible(action: Action, ranking: Ranking | None, *, merged_before: bool) -> str | None:
    """Why Backout may not merge this pull request by itself, or None when the rule's own
    conditions hold (the forge's verdict and the veto window are checked when it is due)."""
    if action.kind.value not in MERGEABLE_KINDS:
        return f"Backout merges only its reverts and restores, not its {action.kind.value.replace('_', ' ')}"
    if merged_before:
        return "Backout already merged one pull request of this incident by itself; the next step is for people"
    if ranking is None or not ranking.confident:
        why = ranking.reason if ranking is not None else "not ranked yet"
        return f"the suspect is not confident ({why})"
    best = ranking.best
    if action.kind is ActionKind.REVERT and (best is None or best.sha != action.commit_sha):
        return f"{action.commit_sha[:7]} is not the confident suspect"
    if action.kind is ActionKind.RESTORE and (best is None or best.sha not in (action.detail.get("undone") or [])):
        return "the confident suspect is not among the commits the restore undoes"
    flags = [str(w).split(":", 1)[0] for w in action.detail.get("warnings") or []]
    if flags:
        return f"revert-safety flags: {', '.join(flags)}"
    if action.detail.get("unpinned"):
        return "image automation could not be pinned in Git: " + "; ".join(map(str, action.detail["unpinned"]))
    return None


def describe(action: Action) -> str:
    """"the revert of 1a2b3c4", "the restore to last known good 5d6e7f8"."""
    if action.kind is ActionKind.RESTORE:
        return f"the restore to last known good {action.commit_sha[:7]}"
    return f"the {action.kind.value} of {action.commit_sha[:7]}"


def rule(playbook: str, wait: timedelta) -> str:
    """The rule that allows the merge, as the timeline and the pull request say it."""
    return (f"playbook {playbook}: actions.merge confident (a confident suspect, no revert-safety flag, the "
            f"forge says it can merge as is, nobody held it during the {format_duration(wait)} veto window)")


def announcement(*, request: str, what: str, due: datetime, incident_ref: str) -> str:
    """What people read when the veto window opens: when, and how to stop it."""
    return (f"Backout will merge {request} ({what}) by itself at {due:%H:%M} UTC: the suspect is confident and "
            f"it has no revert-safety flag. To stop it, anyone who may roll back presses Hold, or runs "
            f"`/incident hold {incident_ref}` or `backout hold {incident_ref}`.")


def started(*, now: datetime, wait: timedelta, playbook: str) -> dict[str, Any]:
    """A new window's fields (beside its `waiting` state)."""
    return {"announced_at": now.isoformat(), "due_at": (now + wait).isoformat(), "rule": rule(playbook, wait),
            "attempts": 0}


def moved(action: Action, state: str, **fields: Any) -> dict[str, Any]:
    """The action's detail with its window moved to `state` (and these fields)."""
    return {**action.detail, "auto_merge": {**window(action), "state": state, **fields}}
