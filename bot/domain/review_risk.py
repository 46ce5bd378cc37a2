"""Review risk: does an open pull request touch what caused incidents before? Pure.

A past cause is a change responders confirmed ("Caused it") or a confident suspect whose revert
was merged. A pull request is flagged when one of its effective files (one that changes the
deployed state) is a file a past cause touched, or lies in the same directory as one. What the
warning says is built for a repository many people can read: incident ids, what those changes
did, the revert-safety flags of this change, the time since the service's last incident; never
alert text.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from bot.domain.changes import Effect, FileChange
from bot.domain.durations import human_duration


class CauseSource(StrEnum):
    VERDICT = "verdict"  # a responder said this change caused the incident
    REVERTED = "reverted"  # the confident suspect, and its revert was merged


@dataclass(frozen=True)
class PastCause:
    """A change that caused an incident."""

    incident_id: int
    service: str
    repo: str
    sha: str
    started_at: datetime  # the incident's start
    files: tuple[FileChange, ...]
    source: CauseSource

    @property
    def effective_paths(self) -> frozenset[str]:
        return frozenset(f.path for f in self.files if f.effective)

    @property
    def did(self) -> tuple[Effect, ...]:
        """What the change did, most telling first (image, version, crd, ...), without repeats."""
        seen: dict[Effect, None] = {}
        for f in self.files:
            for effect in f.effects:
                seen.setdefault(effect, None)
        return tuple(seen)


@dataclass(frozen=True)
class ReviewedChange:
    """An open pull or merge request as its head commit stands."""

    repo: str
    number: int
    head_sha: str
    files: tuple[FileChange, ...]
    flags: tuple[str, ...] = ()  # revert-safety flags of this change ("crd: ...")


@dataclass(frozen=True)
class Match:
    cause: PastCause
    paths: tuple[str, ...]  # this change's paths that met the cause's
    same_file: bool  # False: the same directory, not the same file


@dataclass(frozen=True)
class Risk:
    change: ReviewedChange
    matches: tuple[Match, ...]
    block: tuple[str, ...]  # the playbook's block_on rules this change meets ("crd", "migration")
    last_incident: datetime | None  # the latest start among the matched causes' incidents

    @property
    def flagged(self) -> bool:
        return bool(self.matches)


# block_on names -> the revert-safety flag prefixes they stand for
BLOCK_RULES: dict[str, tuple[str, ...]] = {
    "crd": ("crd", "api-version"),
    "migration": ("database-migration", "helm-hook"),
    "secret": ("secret",),
    "volume": ("persistent-volume",),
}


def assess(change: ReviewedChange, causes: Iterable[PastCause], *, block_on: Sequence[str] = ()) -> Risk:
    """The past causes this change meets, file by file or directory by directory."""
    mine = [f.path for f in change.files if f.effective]
    matches: list[Match] = []
    for cause in causes:
        if cause.repo != change.repo or cause.sha == change.head_sha:
            continue
        theirs = cause.effective_paths
        same = tuple(p for p in mine if p in theirs)
        dirs = {posixpath.dirname(p) for p in theirs}
        near = tuple(p for p in mine if p not in theirs and posixpath.dirname(p) in dirs)
        if same or near:
            matches.append(Match(cause=cause, paths=same or near, same_file=bool(same)))
    matches.sort(key=lambda m: (not m.same_file, -m.cause.started_at.timestamp(), m.cause.incident_id))
    prefixes = {flag.split(":", 1)[0] for flag in change.flags}
    block = tuple(rule for rule in block_on if prefixes & set(BLOCK_RULES.get(rule, (rule,)))) if matches else ()
    last = max((m.cause.started_at for m in matches), default=None)
    return Risk(change=change, matches=tuple(matches), block=block, last_incident=last)


def summary(risk: Risk, *, now: datetime, link: dict[int, str] | None = None, limit: int = 10) -> str:
    """The Markdown the check and the comment carry: no alert text, only what Git and Backout know."""
    if not risk.flagged:
        return "No change in this request touched files whose changes caused incidents."
    links = link or {}
    lines = ["This change touches files whose changes caused incidents before:", ""]
    for match in risk.matches[:limit]:
        cause = match.cause
        name = f"INC-{cause.incident_id}"
        shown = f"[{name}]({links[cause.incident_id]})" if cause.incident_id in links else name
        did = ", ".join(e.value for e in cause.did) or "unknown effect"
        where = "the same file" if match.same_file else "the same directory"
        how = "confirmed by a responder" if cause.source is CauseSource.VERDICT else "reverted"
        lines.append(f"- {shown} ({cause.service}): {cause.sha[:7]} ({did}; {how}) touched {where}: "
                     + ", ".join(f"`{p}`" for p in match.paths[:5]))
    if len(risk.matches) > limit:
        lines.append(f"- and {len(risk.matches) - limit} more")
    if risk.last_incident is not None:
        ago = human_duration((now - risk.last_incident).total_seconds())
        lines += ["", f"Last incident of these services started {ago} ago."]
    if risk.change.flags:
        lines += ["", "Revert-safety flags of this change:"] + [f"- {flag}" for flag in risk.change.flags]
    if risk.block:
        lines += ["", "Blocked by the playbook's rule: " + ", ".join(risk.block) + "."]
    return "\n".join(lines)
