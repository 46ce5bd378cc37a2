"""Review risk: does an open pull request touch what caused incidents before? Pure.

A past cause is a change responders confirmed ("Caused it") or a confident suspect whose revert
was merged; only its files inside the paths of the service the incident hit count (its scope).
A pull request is flagged when one of its effective files (one that changes the deployed state)
is a file a past cause touched, or lies in the same directory as one, unless: the cause's
incident started longer ago than the lookback (90 days), the request reverts that cause, or both
only bump images, and different ones. Why these rules, and what they cost and catch on real histories:
docs/review-risk.md (bench/review_risk.py). What the warning says is built for a repository many
people can read: incident ids, what those changes did, the revert-safety flags of this change,
the time since the service's last incident; never alert text.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cached_property

from bot.domain.changes import Effect, FileChange, matches_any


class CauseSource(StrEnum):
    VERDICT = "verdict"  # a responder said this change caused the incident
    REVERTED = "reverted"  # the confident suspect, and its revert was merged


class MatchRule(StrEnum):
    FILE = "file"  # the same file only
    DIRECTORY = "directory"  # the same file, or another file in the same directory
    SERVICE = "service"  # any path of the service the incident hit (the cause's scope)


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
    # The service's paths in this repository (its playbook's paths and shared_paths, as globs):
    # only the cause's files inside them count, so a commit over twenty applications is held
    # against the one the incident hit. Empty: every file counts.
    scope: tuple[str, ...] = ()

    @cached_property  # works on a frozen dataclass: it writes the instance's __dict__ directly
    def relevant(self) -> tuple[FileChange, ...]:
        """Its files inside the service's paths (all of them without a scope)."""
        if not self.scope:
            return self.files
        return tuple(f for f in self.files if matches_any(f.path, self.scope)
                     or (f.old_path is not None and matches_any(f.old_path, self.scope)))

    @cached_property
    def effective_paths(self) -> frozenset[str]:
        return frozenset(_paths(self.relevant))

    @property
    def images(self) -> frozenset[str] | None:
        return _bumped_images(self.relevant)

    @property
    def did(self) -> tuple[Effect, ...]:
        """What the change did, most telling first (image, version, crd, ...), without repeats."""
        seen: dict[Effect, None] = {}
        for f in self.relevant:
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
    reverts: tuple[str, ...] = ()  # shas its commits revert ("This reverts commit X."): never held against it


@dataclass(frozen=True)
class Match:
    cause: PastCause
    paths: tuple[str, ...]  # this change's paths that met the cause's
    same_file: bool  # False: the same directory (or the service's paths), not the same file
    by: MatchRule = MatchRule.FILE  # the rule that met it when not the same file


@dataclass(frozen=True)
class Risk:
    change: ReviewedChange
    matches: tuple[Match, ...]
    block: tuple[str, ...]  # the playbook's block_on rules this change meets ("crd", "migration")
    last_incident: datetime | None  # the latest start among the matched causes' incidents

    @property
    def flagged(self) -> bool:
        return bool(self.matches)


LOOKBACK = timedelta(days=90)  # a playbook's review.lookback by default


@dataclass(frozen=True)
class Rules:
    """How changes meet past causes. The defaults are the choice bench/review_risk.py measured;
    the others stay for the benchmark to compare."""

    match: MatchRule = MatchRule.DIRECTORY
    lookback: timedelta = LOOKBACK  # with `now`: causes whose incident started longer ago are left out
    other_images: bool = False  # True: an image bump meets a cause that bumped another image


# block_on names -> the revert-safety flag prefixes they stand for
BLOCK_RULES: dict[str, tuple[str, ...]] = {
    "crd": ("crd", "api-version"),
    "migration": ("database-migration", "helm-hook"),
    "secret": ("secret",),
    "volume": ("persistent-volume",),
}


def assess(change: ReviewedChange, causes: Iterable[PastCause], *, block_on: Sequence[str] = (),
           now: datetime | None = None, rules: Rules = Rules()) -> Risk:
    """The past causes this change meets, file by file or directory by directory (see the module)."""
    mine = _paths(change.files)
    matches = [m for cause in causes if _counts(cause, change, now=now, rules=rules)
               and (m := _match(cause, mine, rules.match)) is not None]
    matches.sort(key=lambda m: (not m.same_file, -m.cause.started_at.timestamp(), m.cause.incident_id))
    prefixes = {flag.split(":", 1)[0] for flag in change.flags}
    block = tuple(rule for rule in block_on if prefixes & set(BLOCK_RULES.get(rule, (rule,)))) if matches else ()
    last = max((m.cause.started_at for m in matches), default=None)
    return Risk(change=change, matches=tuple(matches), block=block, last_incident=last)


def _counts(cause: PastCause, change: ReviewedChange, *, now: datetime | None, rules: Rules) -> bool:
    """Whether this cause may be held against this change at all, before any path is compared."""
    if cause.repo != change.repo or _same_commit(cause.sha, change.head_sha):
        return False  # the head is the cause itself (a request reopened, or still open after its merge)
    if any(_same_commit(cause.sha, sha) for sha in change.reverts):
        return False  # undoing the cause restores a state that ran before it
    if now is not None and now - cause.started_at > rules.lookback:
        return False
    if not rules.other_images:
        theirs, mine = cause.images, _bumped_images(change.files)
        if theirs is not None and mine is not None and not theirs & mine:
            return False  # both only bump images, and not the same one
    return True


def _match(cause: PastCause, mine: Sequence[str], rule: MatchRule) -> Match | None:
    theirs = cause.effective_paths
    same = tuple(p for p in mine if p in theirs)
    if same:
        return Match(cause=cause, paths=same, same_file=True)
    if rule is MatchRule.DIRECTORY:
        dirs = {posixpath.dirname(p) for p in theirs}
        near = tuple(p for p in mine if posixpath.dirname(p) in dirs)
    elif rule is MatchRule.SERVICE:
        near = tuple(p for p in mine if matches_any(p, cause.scope))
    else:
        near = ()
    return Match(cause=cause, paths=near, same_file=False, by=rule) if near else None


def _paths(files: Iterable[FileChange]) -> tuple[str, ...]:
    """The paths of the files that change the deployed state, a rename's old name included."""
    found: dict[str, None] = {}
    for f in files:
        if f.effective:
            found.setdefault(f.path, None)
            if f.old_path:
                found.setdefault(f.old_path, None)
    return tuple(found)


def _bumped_images(files: Iterable[FileChange]) -> frozenset[str] | None:
    """The images a change bumps when bumping known images is all it does to the deployed state, else None."""
    effective = [f for f in files if f.effective]
    if not effective or any(f.effects != (Effect.IMAGE,) or not f.bumps for f in effective):
        return None
    return frozenset(b.image for f in effective for b in f.bumps)


def _same_commit(a: str, b: str) -> bool:
    """Full or abbreviated (at least 7 hex digits) shas of one commit."""
    short = min(len(a), len(b))
    return short >= 7 and a[:short].lower() == b[:short].lower()


def summary(risk: Risk, *, now: datetime, link: dict[int, str] | None = None, limit: int = 10) -> str:
    """The Markdown the check and the comment carry: no alert text, only what Git and Backout know.
    Paths and flags come from the request's author: each is a code span, so none renders as a link,
    an image or a mention."""
    if not risk.flagged:
        return "No change in this request touched files whose changes caused incidents."
    links = link or {}
    lines = ["This change touches files whose changes caused incidents before:", ""]
    for match in risk.matches[:limit]:
        cause = match.cause
        name = f"INC-{cause.incident_id}"
        shown = f"[{name}]({links[cause.incident_id]})" if cause.incident_id in links else name
        did = ", ".join(e.value for e in cause.did) or "unknown effect"
        where = "the same file" if match.same_file else _NEAR[match.by]
        how = "confirmed by a responder" if cause.source is CauseSource.VERDICT else "reverted"
        more = f" and {len(match.paths) - PATHS} more" if len(match.paths) > PATHS else ""
        lines.append(f"- {shown} ({cause.service}): {cause.sha[:7]} ({did}; {how}) touched {where}: "
                     + ", ".join(_code(p) for p in match.paths[:PATHS]) + more)
    if len(risk.matches) > limit:
        lines.append(f"- and {len(risk.matches) - limit} more")
    if risk.last_incident is not None:
        lines += ["", f"Last incident of these services started {since(now - risk.last_incident)} ago."]
    if risk.change.flags:
        lines += ["", "Revert-safety flags of this change:"] + [f"- {_code(flag)}" for flag in risk.change.flags]
    if risk.block:
        lines += ["", "Blocked by the playbook's rule: " + ", ".join(risk.block) + "."]
    return "\n".join(lines)


PATHS = 5  # paths shown per matched incident
_NEAR = {MatchRule.DIRECTORY: "the same directory", MatchRule.SERVICE: "the service's paths",
         MatchRule.FILE: "the same file"}


def since(elapsed: timedelta) -> str:
    """How long ago, in its largest whole unit: the comment stays the same for a day, not a second."""
    for unit, seconds in (("day", 86400), ("hour", 3600), ("minute", 60)):
        count = int(elapsed.total_seconds() // seconds)
        if count >= 1:
            return f"{count} {unit}{'s' if count > 1 else ''}"
    return "less than a minute"


def _code(text: str) -> str:
    """One line of untrusted text as an inline code span (backticks inside become quotes)."""
    return "`" + " ".join(text.replace("`", "'").split())[:200] + "`"
