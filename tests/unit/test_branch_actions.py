"""The incident branch in the domain: which branch names are incident branches, and which actions
start verification (a restore's too, which the incident branch's first version forgot)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.domain.actions import Action, ActionKind, ActionState, incident_of_branch, undoing

NOW = datetime(2026, 1, 1, tzinfo=UTC)  # a value, never compared with the clock


def action(kind: ActionKind, state: ActionState, sha: str = "a" * 40) -> Action:
    return Action(incident_id=7, kind=kind, repo="gitops", commit_sha=sha, state=state, branch="b",
                  created_at=NOW, updated_at=NOW)


def test_only_backouts_incident_branches_name_an_incident() -> None:
    assert incident_of_branch("backout/INC-7/incident") == 7
    assert incident_of_branch("refs/heads/backout/INC-12/incident") == 12
    assert incident_of_branch("backout/INC-7/revert-abc1234") is None
    assert incident_of_branch("feature/INC-7/incident") is None


@pytest.mark.parametrize(("kind", "state", "sha", "expected"), [
    (ActionKind.REVERT, ActionState.PUSHED, "a" * 40, True),
    (ActionKind.REVERT, ActionState.PR_OPEN, "a" * 40, False),
    (ActionKind.RESTORE, ActionState.MERGED, "a" * 40, True),
    (ActionKind.INCIDENT_BRANCH, ActionState.PR_OPEN, "", False),
    (ActionKind.INCIDENT_BRANCH, ActionState.MERGED, "", True),
    (ActionKind.POSTMORTEM, ActionState.MERGED, "", False),
])
def test_what_starts_verification(kind: ActionKind, state: ActionState, sha: str, expected: bool) -> None:
    """A revert or restore pushed or merged, an incident branch merged; nothing else."""
    assert undoing(action(kind, state, sha)) is expected
