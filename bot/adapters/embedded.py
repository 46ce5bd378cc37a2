"""The embedded defaults for what is not configured: no forge, no applied-time source, one replica."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bot.domain.errors import UpstreamError
from bot.domain.ports import PullRequestRef, PullRequestStatus
from bot.domain.review_checks import ReviewCheck


class NoForge:
    """The Forge port for repositories with `forge: local`: plain branches, no pull requests."""

    def handles(self, repo: str) -> bool:
        return False

    def names_request(self, repo: str, ref: str) -> bool:
        return False

    def request_noun(self, repo: str) -> str:
        return "pull request"

    def open_pull_request(self, repo: str, **_: object) -> PullRequestRef:
        raise UpstreamError(f"{repo} has no forge: its branches are pushed without a pull request")

    def pull_request_status(self, repo: str, number: int) -> PullRequestStatus:
        raise UpstreamError(f"{repo} has no forge")

    def comment(self, repo: str, number: int, *, body: str, marker: str, comment_id: int | None) -> int:
        raise UpstreamError(f"{repo} has no forge")

    def revert_dry_run(self, repo: str, sha: str, *, branch: str) -> bool | None:
        return None

    def mark_ready(self, repo: str, number: int, *, reviewers: Sequence[str]) -> None:
        raise UpstreamError(f"{repo} has no forge")

    def review_check(self, repo: str, *, sha: str, check: ReviewCheck) -> None:
        raise UpstreamError(f"{repo} has no forge: review risk needs forge github or gitlab")


class NoAppliedTimes:
    """The AppliedTimes port when no repository names a source: commit time plus sync delay."""

    def source(self, repo: str) -> str | None:
        return None

    def applied_at(self, repo: str, shas: Sequence[str], *, since: datetime) -> dict[str, datetime]:
        return {}


class SingleReplica:
    """The leader gate for one process: it always leads. (PostgreSQL replicas use an advisory lock.)"""

    def __init__(self, replica: str = "single") -> None:
        self.replica = replica

    def is_leader(self) -> bool:
        return True
