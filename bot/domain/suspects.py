"""Ranking suspects: which applied changes most likely caused an incident, and why. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from bot.domain.changes import AppliedSource, Change, matches_any
from bot.domain.durations import format_duration
from bot.domain.playbooks import Playbook, PlaybookRepo, RepoRole

# The weights: transparent and additive, so every point of a score has a reason.
TIMING_WEIGHT = 0.45
TIMING_HALF_LIFE = timedelta(minutes=45)
SERVICE_PATH_WEIGHT = 0.35
APP_REPO_WEIGHT = 0.25
SHARED_PATH_WEIGHT = 0.15
IMAGE_WEIGHT = 0.15
LARGE_WEIGHT = 0.05
LARGE_LINES = 200
REVERT_PENALTY = 0.10


class RankingStatus(StrEnum):
    PENDING = "pending"
    RANKED = "ranked"


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
    warnings: tuple[str, ...] = ()  # revert safety, for the top suspects

    @property
    def short(self) -> str:
        return self.sha[:7]


class Ranking(BaseModel):
    """The answer to "what changed?": suspects best first, and whether any is convincing."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    status: RankingStatus
    confident: bool = False
    reason: str
    suspects: tuple[Suspect, ...] = ()
    ranked_at: datetime | None = None

    @property
    def top(self) -> Suspect | None:
        return self.suspects[0] if self.suspects else None


def pending(reason: str = "Ranking is under way.") -> Ranking:
    return Ranking(status=RankingStatus.PENDING, reason=reason)


def rank_changes(
    *,
    changes: Iterable[Change],
    playbook: Playbook | None,
    service: str,
    started_at: datetime,
    now: datetime,
    limit: int = 10,
) -> Ranking:
    """Rank the changes applied in the playbook's lookback window before the incident started."""
    if playbook is None or not playbook.repos:
        return Ranking(status=RankingStatus.RANKED, ranked_at=now, reason=(
            f"No playbook names the repositories that deploy {service}, so no change can be "
            "tied to it: no confident suspect."))
    policy = playbook.suspects
    window_start = started_at - policy.lookback
    repos = {entry.repo: entry for entry in playbook.repos}
    suspects: list[Suspect] = []
    elsewhere = 0
    for change in changes:
        entry = repos.get(change.repo)
        if entry is None:
            continue
        applied = change.applied(sync_delay=policy.sync_delay)
        if not window_start <= applied <= started_at:
            continue  # outside the window; a change applied after the start cannot be the cause
        suspect = _score(change, entry, applied=applied, started_at=started_at)
        if suspect is None:
            elsewhere += 1
        else:
            suspects.append(suspect)
    suspects.sort(key=lambda s: (-s.score, started_at - s.applied_at))
    window = format_duration(policy.lookback)
    if not suspects:
        other = f" ({elsewhere} touched only other services)" if elsewhere else ""
        return Ranking(status=RankingStatus.RANKED, ranked_at=now, reason=(
            f"No change to {service} was applied in the {window} before the incident "
            f"started{other}: no confident suspect."))
    top = suspects[0]
    threshold = policy.min_confidence
    if top.score >= threshold:
        reason = (f"{top.short} ({_clip(top.subject)}) scores {top.score:.2f}, at or above "
                  f"the {threshold:.2f} confidence threshold.")
        if len(suspects) > 1 and suspects[1].score >= top.score - 0.05:
            reason += f" {suspects[1].short} is nearly tied ({suspects[1].score:.2f}): check both."
    else:
        reason = (f"The best suspect, {top.short} ({_clip(top.subject)}), scores {top.score:.2f}, "
                  f"below the {threshold:.2f} confidence threshold: no confident suspect.")
    return Ranking(status=RankingStatus.RANKED, ranked_at=now, confident=top.score >= threshold,
                   reason=reason, suspects=tuple(suspects[:limit]))


def _score(change: Change, entry: PlaybookRepo, *, applied: datetime, started_at: datetime) -> Suspect | None:
    reasons: list[str] = []
    before = started_at - applied
    timing = TIMING_WEIGHT * 0.5 ** (before / TIMING_HALF_LIFE)
    source = "" if change.applied_source is not AppliedSource.COMMIT_TIME else " (commit time + sync delay)"
    reasons.append(f"applied {_ago(before)} before the incident started{source}")
    score = timing

    if entry.role is RepoRole.APP:
        score += APP_REPO_WEIGHT
        reasons.append(f"a change to the service's application repository {change.repo}")
    else:
        own = _touched(change.paths, entry.paths)
        shared = _touched(change.paths, entry.shared_paths)
        if own:
            score += SERVICE_PATH_WEIGHT
            reasons.append(f"touched the service's paths: {_list(own)}")
        elif shared:
            score += SHARED_PATH_WEIGHT
            reasons.append(f"touched shared paths: {_list(shared)}")
        else:
            return None
    if change.image_bump:
        score += IMAGE_WEIGHT
        reasons.append("changed an image tag or version")
    lines = change.additions + change.deletions
    if lines >= LARGE_LINES:
        score += LARGE_WEIGHT
        reasons.append(f"large: {lines} lines in {len(change.files)} files")
    else:
        reasons.append(f"size: {lines} lines in {len(change.files)} files")
    if change.is_revert:
        score -= REVERT_PENALTY
        reasons.append("is itself a revert")
    return Suspect(
        repo=change.repo, sha=change.sha, subject=change.subject, author=change.author,
        applied_at=applied, applied_source=change.applied_source,
        score=round(min(1.0, max(0.0, score)), 3), reasons=tuple(reasons), pr_number=change.pr_number,
    )


def _touched(paths: Sequence[str], globs: tuple[str, ...]) -> list[str]:
    return [path for path in paths if matches_any(path, globs)]


def _list(paths: list[str], most: int = 3) -> str:
    shown = ", ".join(paths[:most])
    return shown + (f" and {len(paths) - most} more" if len(paths) > most else "")


def _ago(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 1:
        return f"{int(delta.total_seconds())}s"
    return format_duration(timedelta(minutes=minutes))


def _clip(text: str, most: int = 60) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"
