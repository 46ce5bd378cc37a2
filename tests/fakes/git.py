"""Fakes for the GitRepos port and for running background work inline."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, Future
from datetime import datetime
from typing import Any, TypeVar

from bot.domain.changes import Change
from bot.domain.errors import UpstreamError
from bot.domain.ports import FetchedChanges, RevertResult

T = TypeVar("T")


class FakeGit:
    """Repositories in memory: `changes` per repo, newest first; pushes are recorded."""

    def __init__(self, changes: dict[str, list[Change]] | None = None) -> None:
        self.changes = changes or {}
        self.branches: dict[tuple[str, str], str] = {}
        self.conflicts: tuple[str, ...] = ()
        self.unreachable: set[str] = set()
        self.refreshes = 0
        self.patches: dict[str, str] = {}
        self.tags: dict[str, dict[str, str]] = {}  # repo -> tag -> sha
        self.pushed_files: dict[tuple[str, str], dict[str, bytes]] = {}
        self.manifest_files: dict[str, dict[str, str]] = {}  # repo -> the YAML files on its watched branch
        self.pending: dict[str, str] = {}  # repo -> why its fetch has not landed: answers from "the mirror"
        self.on_refresh: Callable[[], None] = lambda: None  # runs in each refresh (a slow fetch moves a clock)

    def refresh(self, repo: str, *, since_sha: str | None, not_before: datetime,
                wait: float | None = None) -> FetchedChanges:
        self.refreshes += 1
        self.on_refresh()
        if repo in self.unreachable:
            raise UpstreamError(f"git fetch failed: could not read from {repo}")
        if repo in self.pending:
            return FetchedChanges(head=since_sha or "0" * 40, changes=(), pending=self.pending[repo])
        changes = self.changes.get(repo, [])
        head = changes[0].sha if changes else "0" * 40
        new = []
        for change in changes:
            if change.sha == since_sha:
                break
            new.append(change)
        return FetchedChanges(head=head, changes=tuple(new))

    def outages(self) -> dict[str, str]:
        return dict(self.pending)

    def branch(self, repo: str) -> str:
        return "main"

    def remote_branch(self, repo: str, branch: str) -> str | None:
        return self.branches.get((repo, branch))

    def push_revert(self, repo: str, *, sha: str, branch: str, message: str) -> RevertResult:
        if repo in self.unreachable:
            raise UpstreamError(f"git push failed: could not read from {repo}")
        if (repo, branch) in self.branches:
            return RevertResult(branch=branch, pushed_sha=self.branches[(repo, branch)], adopted=True)
        if self.conflicts:
            return RevertResult(branch=branch, pushed_sha=None, conflicts=self.conflicts)
        self.branches[(repo, branch)] = "f" * 40
        return RevertResult(branch=branch, pushed_sha="f" * 40)

    def push_restore(self, repo: str, *, good_sha: str, paths: Sequence[str], exclude: Sequence[str],
                     branch: str, message: str) -> RevertResult:
        return self.push_revert(repo, sha=good_sha, branch=branch, message=message)

    def push_files(self, repo: str, *, branch: str, files: Mapping[str, bytes], message: str) -> str:
        if repo in self.unreachable:
            raise UpstreamError(f"git push failed: could not read from {repo}")
        if (repo, branch) not in self.branches:
            self.branches[(repo, branch)] = "e" * 40
            self.pushed_files[(repo, branch)] = dict(files)
        return self.branches[(repo, branch)]

    def manifests(self, repo: str) -> dict[str, str]:
        return dict(self.manifest_files.get(repo, {}))

    def patch(self, repo: str, sha: str) -> str:
        return self.patches.get(sha, "")

    def push_branch(self, repo: str, *, branch: str) -> str:
        return self.branches.setdefault((repo, branch), "e" * 40)

    def branch_log(self, repo: str, branch: str) -> list[Change] | None:
        return None if (repo, branch) not in self.branches else []

    def resolve(self, repo: str, rev: str) -> str | None:
        if rev in self.tags.get(repo, {}):
            return self.tags[repo][rev]
        return next((c.sha for c in self.changes.get(repo, []) if c.sha.startswith(rev)), None)

    def first_parent(self, repo: str, *, new: str, old: str | None = None, limit: int = 500) -> list[str]:
        shas = [c.sha for c in self.changes.get(repo, [])]
        if new not in shas:
            return [new]
        after = shas[shas.index(new):]
        if old is None:
            return after[:limit]
        if old not in after:
            return [new]
        return after[:after.index(old)][:limit]

    def log_between(self, repo: str, *, old: str, new: str, limit: int = 200) -> list[Change]:
        old_sha, new_sha = self.resolve(repo, old), self.resolve(repo, new)
        shas = self.first_parent(repo, new=new_sha or new, old=old_sha)
        by_sha = {c.sha: c for c in self.changes.get(repo, [])}
        return [by_sha[s] for s in shas if s in by_sha][:limit]


class InlineExecutor(Executor):
    """Runs submitted work at once, so tests see background results without waiting."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # the caller inspects the future
            future.set_exception(exc)
        return future
