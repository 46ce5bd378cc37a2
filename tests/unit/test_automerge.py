"""The automatic-merge rule, pure: off by default, the playbook's keys checked, and each condition
that keeps Backout from merging by itself named."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import yaml
from pydantic import ValidationError

from bot.domain.actions import Action, ActionKind, ActionState
from bot.domain.automerge import MergeMode, ineligible
from bot.domain.changes import AppliedSource
from bot.domain.playbooks import ActionPolicy
from bot.domain.suspects import Ranking, RankingStatus, Suspect

NOW = datetime(2026, 11, 21, 22, 30, tzinfo=UTC)
SHA = "a" * 40


def action(kind: ActionKind = ActionKind.REVERT, **detail: object) -> Action:
    return Action(incident_id=1, kind=kind, repo="gitops", commit_sha=SHA, state=ActionState.PR_OPEN,
                  branch="backout/INC-1/revert-aaaaaaa", created_at=NOW, updated_at=NOW, detail=dict(detail))


def ranking(*, confident: bool = True, sha: str = SHA) -> Ranking:
    return Ranking(status=RankingStatus.RANKED, confident=confident, reason="aaaaaaa it is.", floor=0.2,
                   suspects=(Suspect(repo="gitops", sha=sha, subject="bump", author="Dev", score=0.9,
                                     applied_at=NOW, applied_source=AppliedSource.COMMIT_TIME,
                                     reasons=("applied 5m before the incident started",)),))


def test_off_unless_a_playbook_opts_in() -> None:
    """The default is off; YAML's bare `off` is the mode; the window is at least a minute."""
    assert ActionPolicy().merge is MergeMode.OFF
    assert ActionPolicy.model_validate(yaml.safe_load("merge: off")).merge is MergeMode.OFF
    assert ActionPolicy.model_validate({"merge": "confident"}).merge_after.total_seconds() == 300
    with pytest.raises(ValidationError, match="at least 1m"):
        ActionPolicy.model_validate({"merge": "confident", "merge_after": "30s"})
    with pytest.raises(ValidationError):
        ActionPolicy.model_validate({"merge": "always"})


def test_each_condition_is_named_when_it_does_not_hold() -> None:
    """A confident suspect reverted with no flag qualifies; every other case says why not."""
    assert ineligible(action(), ranking(), merged_before=False) is None
    assert ineligible(action(ActionKind.INCIDENT_BRANCH), ranking(), merged_before=False) == \
        "Backout merges only its reverts and restores, not its incident branch"
    assert ineligible(action(), ranking(confident=False), merged_before=False) == \
        "the suspect is not confident (aaaaaaa it is.)"
    assert ineligible(action(), None, merged_before=False) == "the suspect is not confident (not ranked yet)"
    assert ineligible(action(), ranking(sha="b" * 40), merged_before=False) == "aaaaaaa is not the confident suspect"
    assert ineligible(action(warnings=["crd: CRDs may have converted stored objects"]), ranking(),
                      merged_before=False) == "revert-safety flags: crd"
    assert ineligible(action(unpinned=["ImagePolicy checkout"]), ranking(), merged_before=False) == \
        "image automation could not be pinned in Git: ImagePolicy checkout"
    assert ineligible(action(), ranking(), merged_before=True).startswith("Backout already merged one")
