"""Review risk as work and as what the forge shows: a pull (merge) request head waiting to be
assessed, the check posted on it, and what Backout posted on the request before. Pure; the
assessment itself is bot/domain/review_risk.py."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

CHECK_NAME = "backout/risk"  # the check run's name (GitHub App), the status context or GitLab status name
MARKER = "<!-- backout:review-risk -->"  # finds Backout's one comment on a request again
DESCRIPTION_LIMIT = 140  # GitHub's commit status description


class CheckState(StrEnum):
    CLEAN = "clean"  # touches nothing that hurt before (or no longer does)
    WARN = "warn"  # touches it: said, never blocking
    BLOCKED = "blocked"  # touches it with a flag a playbook's review.block_on names


@dataclass(frozen=True)
class ReviewItem:
    """One head of one request, queued to be assessed: idempotent on (repo, number, head_sha)."""

    repo: str  # Backout's repository name
    number: int
    head_sha: str
    base: str  # the branch it merges into
    forge: str  # github, gitlab
    attempts: int = 0


@dataclass(frozen=True)
class ReviewCheck:
    """What the forge shows on the head commit."""

    state: CheckState
    title: str  # one line
    summary: str  # Markdown, no alert text
    target_url: str | None = None  # the latest incident's page (plain link, no token)

    @property
    def description(self) -> str:
        """The title cut to a commit status's 140 characters."""
        if len(self.title) <= DESCRIPTION_LIMIT:
            return self.title
        return self.title[: DESCRIPTION_LIMIT - 1].rstrip() + "…"


@dataclass(frozen=True)
class PostedReview:
    """What Backout posted on a request before: its comment, and whether the last head assessed was flagged."""

    comment_id: int | None = None
    flagged: bool = False


def request_ref(forge: str, number: int) -> str:
    """Where the forge keeps a request's head in the base repository (forks included)."""
    return f"refs/merge-requests/{number}/head" if forge == "gitlab" else f"refs/pull/{number}/head"
