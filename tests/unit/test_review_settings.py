"""Review risk's settings: off unless a repository opts in, old configs unchanged; a playbook's
block_on names only known rules, and the error lists them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from bot.config.git import RepoSettings
from bot.domain.playbooks import Playbook

PLAYBOOK = {"name": "checkout", "service": "checkout", "match": {"service": "checkout"}}


def test_a_repository_is_not_reviewed_unless_it_opts_in() -> None:
    """An entry without `review` loads as before, with review risk off."""
    assert RepoSettings(name="gitops", url="https://github.com/acme/gitops.git").review.risk is False
    on = RepoSettings(name="gitops", url="https://x/g.git", forge="github", github_repo="acme/gitops",
                      review={"risk": True})  # type: ignore[arg-type]
    assert on.review.risk is True


def test_review_risk_needs_a_forge() -> None:
    with pytest.raises(ValidationError, match=r"review\.risk posts a check"):
        RepoSettings(name="gitops", url="/srv/gitops.git", review={"risk": True})  # type: ignore[arg-type]


def test_a_playbook_blocks_only_on_known_rules_and_says_which_exist() -> None:
    playbook = Playbook.model_validate({**PLAYBOOK, "review": {"block_on": ["crd", "migration"], "lookback": "30d"}})
    assert (playbook.review.block_on, playbook.review.lookback) == (("crd", "migration"), timedelta(days=30))
    assert Playbook.model_validate(PLAYBOOK).review.block_on == ()
    with pytest.raises(ValidationError, match=r"unknown block_on 'crds': choose from crd, migration, secret, volume"):
        Playbook.model_validate({**PLAYBOOK, "review": {"block_on": ["crds"]}})
    with pytest.raises(ValidationError, match="at least 1d"):
        Playbook.model_validate({**PLAYBOOK, "review": {"lookback": "2h"}})
