"""The storage ports of review risk: the queue of request heads to assess (durable, so a crash
loses none) and the past causes the assessment compares them with."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from bot.domain.review_checks import PostedReview, ReviewItem
from bot.domain.review_risk import PastCause


class ReviewQueue(Protocol):
    def add(self, item: ReviewItem, *, at: datetime) -> bool:
        """Queue a head; False when it was queued before (a redelivery, a second replica). A head
        assessed before and since replaced by another (a force-push back to it) is queued again."""
        ...

    def drop(self, repo: str, number: int, *, at: datetime) -> int:
        """The request was closed or merged: its heads not assessed yet are done, unposted; how many."""
        ...

    def due(self, *, now: datetime, limit: int = 50) -> list[ReviewItem]:
        """Heads not done and not held by anyone, oldest first."""
        ...

    def claim(self, item: ReviewItem, *, now: datetime, until: datetime) -> bool: ...

    def finish(self, item: ReviewItem, *, at: datetime, flagged: bool, state: str, comment_id: int | None) -> None:
        ...

    def retry_later(self, item: ReviewItem, *, until: datetime, error: str) -> None: ...

    def backlog(self) -> int:
        """Heads queued and not done (held, waiting, or failing): what /metrics shows."""
        ...

    def posted(self, repo: str, number: int) -> PostedReview:
        """The request's comment, and whether the last head assessed before was flagged."""
        ...


class PastCauses(Protocol):
    def causes(self, repo: str, *, since: datetime) -> Sequence[PastCause]:
        """Changes of `repo` that caused incidents started since then: responders' culprits and
        confident suspects whose revert was merged, with their files."""
        ...
