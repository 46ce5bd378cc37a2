"""Suspects and rankings: the changes an incident is tied to, each scored with its reasons. Pure.

The scoring itself (timing, bake, scope, effect, breadth) is `bot.domain.ranking`."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from bot.domain.changes import (
    AppliedSource,
    pr_label,
)
from bot.domain.drift import DriftAction

ONSET_GRACE = timedelta(minutes=1)  # how far the found onset may be off (a scrape interval or so)


class RankingStatus(StrEnum):
    PENDING = "pending"
    RANKED = "ranked"


class CodeChange(BaseModel):
    """An application commit behind an image bump: what the team fixes, while the GitOps change
    is what gets reverted."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    repo: str
    sha: str
    subject: str
    author: str
    committed_at: datetime
    lines: int = 0
    files: int = 0
    pr_number: int | None = None
    pr_ref: str | None = None  # "#12", "!12"
    effective: bool = True  # False: docs or CI only

    @property
    def short(self) -> str:
        return self.sha[:7]

    @property
    def request(self) -> str | None:
        """The pull (merge) request it came from, as shown: "#12", "!12"."""
        return pr_label(self.pr_ref, self.pr_number)


class Suspect(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    repo: str
    sha: str
    subject: str
    author: str
    applied_at: datetime
    applied_source: AppliedSource
    score: float = Field(ge=0.0, le=1.0)
    reasons: tuple[str, ...]
    pr_number: int | None = None
    pr_ref: str | None = None  # as its forge writes it: "#12", "!12" (GitLab)
    warnings: tuple[str, ...] = ()  # revert safety, for the top suspects
    effective: bool = True  # False: nothing it changed reaches the deployed state of the service
    reverted_by: str | None = None  # the commit on the branch that already undid it
    is_revert: bool = False  # it reverts another change: restores a state that ran before
    applied_by: str | None = None  # the controller object that reported applying it
    failed: str | None = None  # the failed reconciliation of its revision, described
    code: tuple[CodeChange, ...] = ()  # application commits behind its image bump, best first
    code_note: str | None = None  # why `code` is empty, or where it came from
    hydrated: str | None = None  # repo@sha of the hydrated commit this dry source commit rendered to
    ruled_out: str | None = None  # a responder's "not this one", described: never a candidate again
    # An out-of-band change: `sha` is its handle (`drift-12`), `repo` the controller object that
    # reported it; never reverted in Git: its action is a sync from Git, or nothing once corrected.
    drift: DriftAction | None = None

    @property
    def short(self) -> str:
        return self.sha if self.drift is not None else self.sha[:7]

    @property
    def request(self) -> str | None:
        """The pull (merge) request it came from, as shown: "#12", "!12"."""
        return pr_label(self.pr_ref, self.pr_number)

    def candidate(self, onset: datetime | None) -> bool:
        """Could it have caused the incident: an effect, not undone, not ruled out by a responder,
        applied before the onset (or named by a failed reconciliation, evidence of its own)."""
        return self.excluded(onset) is None

    def excluded(self, onset: datetime | None) -> str | None:
        """Why it cannot be the answer, in words a responder reads before overriding; None when it can."""
        if self.ruled_out is not None:
            return self.ruled_out
        if self.reverted_by is not None:
            return f"already reverted by {self.reverted_by[:7]}"
        if not self.effective:
            return "no effect on the deployed state"
        if self.failed is None and onset is not None and self.applied_at > onset + ONSET_GRACE:
            return f"applied after the problem began at {onset:%H:%M} UTC"
        return None


class Ranking(BaseModel):
    """The answer to "what changed?": suspects best first, and whether any is convincing."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    status: RankingStatus
    confident: bool = False
    reason: str
    suspects: tuple[Suspect, ...] = ()
    ranked_at: datetime | None = None
    onset_at: datetime | None = None  # when the problem began (key metric, alert's activeAt, probe), if known
    floor: float = 0.0  # the playbook's evidence floor when it was ranked
    # The best suspect's share of the evidence: its score over every candidate's plus the floor,
    # which stands for "no change caused it" (a lone change at the floor is 0.5). 0 without one.
    confidence: float = Field(default=0.0, ge=0.0, le=1.0)

    @property
    def top(self) -> Suspect | None:
        """The first suspect listed (it may be excluded: see `best`)."""
        return self.suspects[0] if self.suspects else None

    @property
    def best(self) -> Suspect | None:
        """The best suspect: the first candidate at the evidence floor. A change that is reverted,
        ruled out or below the floor is never the best suspect nor the default rollback target."""
        return next((s for s in self.suspects if self.excluded(s) is None), None)

    def candidate_indexes(self, most: int) -> list[int]:
        """Where the first `most` candidates are listed (the changes people may roll back: a
        reverted or ruled-out change may be listed between them); the first listed if none is."""
        found = [i for i, s in enumerate(self.suspects) if s.candidate(self.onset_at)][:most]
        return found or list(range(min(most, len(self.suspects))))

    def excluded(self, suspect: Suspect) -> str | None:
        """Why `suspect` is no rollback target without an override ("ruled out by ...", "already
        reverted by 1a2b3c4", "scores 0.04, below the 0.20 evidence floor"); None when it is one."""
        reason = suspect.excluded(self.onset_at)
        if reason is None and suspect.score < self.floor:
            reason = f"scores {suspect.score:.2f}, below the {self.floor:.2f} evidence floor"
        return reason

    @property
    def candidates(self) -> tuple[Suspect, ...]:
        return tuple(s for s in self.suspects if s.candidate(self.onset_at))


def pending(reason: str = "Ranking is under way.") -> Ranking:
    return Ranking(status=RankingStatus.PENDING, reason=reason)
