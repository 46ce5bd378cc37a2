"""Changes: commits on a watched branch, with what they touched and when they were applied."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from enum import StrEnum
from functools import lru_cache

from pydantic import BaseModel, ConfigDict


class AppliedSource(StrEnum):
    """Where a change's applied time comes from, best first."""

    DEPLOYMENT = "deployment"
    COMMIT_STATUS = "commit_status"
    PROMETHEUS = "prometheus"
    COMMIT_TIME = "commit_time"  # commit time on the branch plus the playbook's sync delay


class FileChange(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    status: str  # git's letter: A, M, D, R, C, T
    old_path: str | None = None


class Change(BaseModel):
    """A commit on a watched branch (first-parent history: merges stand for their PR)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    repo: str
    sha: str
    parents: tuple[str, ...]
    author: str
    committed_at: datetime
    subject: str
    files: tuple[FileChange, ...]
    additions: int = 0
    deletions: int = 0
    pr_number: int | None = None
    image_bump: bool = False
    applied_at: datetime | None = None
    applied_source: AppliedSource = AppliedSource.COMMIT_TIME

    @property
    def short(self) -> str:
        return self.sha[:7]

    @property
    def is_merge(self) -> bool:
        return len(self.parents) > 1

    @property
    def is_revert(self) -> bool:
        return self.subject.startswith('Revert "')

    @property
    def paths(self) -> tuple[str, ...]:
        """Every path touched, old names of renames included."""
        found: list[str] = []
        for file in self.files:
            found.append(file.path)
            if file.old_path:
                found.append(file.old_path)
        return tuple(found)

    def applied(self, *, sync_delay: timedelta) -> datetime:
        """When the change took effect: a recorded time, else commit time plus the sync delay."""
        if self.applied_at is not None and self.applied_source is not AppliedSource.COMMIT_TIME:
            return self.applied_at
        return self.committed_at + sync_delay


_PR_PATTERNS = (
    re.compile(r"^Merge pull request #(\d+)\b"),
    re.compile(r"^Merged in .* \(pull request #(\d+)\)"),
    re.compile(r"\(#(\d+)\)\s*$"),
    re.compile(r"^Merge branch .* into .*\(!(\d+)\)"),
)


def pr_number_from(subject: str) -> int | None:
    """The pull request number a merge or squash subject names, if any."""
    for pattern in _PR_PATTERNS:
        match = pattern.search(subject)
        if match:
            return int(match.group(1))
    return None


@lru_cache(maxsize=1024)
def glob_regex(pattern: str) -> re.Pattern[str]:
    """A path glob as a regex: `**` spans folders, `*` and `?` stay within one."""
    out, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        out.append({"*": "[^/]*", "?": "[^/]"}.get(char, re.escape(char)))
        i += 1
    return re.compile("".join(out))


def matches_any(path: str, globs: tuple[str, ...]) -> str | None:
    """The first glob that matches the path, or None."""
    for pattern in globs:
        if glob_regex(pattern).fullmatch(path):
            return pattern
    return None
