"""The change log: import new commits of watched branches into storage, incrementally."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from bot.domain.changes import AppliedSource
from bot.domain.errors import BackoutError
from bot.domain.ports import AppliedTimes, FetchedChanges, GitRepos, Store, Transaction


@dataclass
class RefreshReport:
    new: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    applied: dict[str, int] = field(default_factory=dict)  # applied times learned, by repo
    pending: dict[str, str] = field(default_factory=dict)  # repos read from the mirror only, and why

    @property
    def any_new(self) -> bool:
        return any(self.new.values())


def refresh_changes(
    *,
    store: Store,
    git: GitRepos,
    repos: Sequence[str],
    now: datetime,
    import_window: timedelta,
    applied: AppliedTimes | None = None,
    applied_window: timedelta = timedelta(days=1),
    wait: float | None = None,
) -> RefreshReport:
    """Fetch each repository and store the commits added since its last known head.

    The cost follows what is new: git fetches only new objects and `git log` reads
    `last_head..new_head`; a new mirror or a rewritten history reads the import window only.
    With `wait`, a fetch that takes longer goes on in the background and the mirror's commits
    are stored meanwhile (`pending` says which repositories, and why). One repository failing
    does not stop the others; its error is reported."""
    report = RefreshReport()
    for repo in repos:
        since = store.run(partial(_head, repo=repo))
        try:
            fetched = git.refresh(repo, since_sha=since, not_before=now - import_window, wait=wait)
        except BackoutError as exc:
            report.failed[repo] = str(exc)
            continue
        if fetched.pending is not None:
            report.pending[repo] = fetched.pending
        report.new[repo] = store.run(partial(_record, repo=repo, fetched=fetched, now=now))
        if applied is not None and applied.source(repo):
            try:
                report.applied[repo] = _learn_applied(store, applied, repo, since=now - applied_window)
            except BackoutError as exc:
                report.failed[repo] = f"applied times: {exc}"
    return report


def _learn_applied(store: Store, applied: AppliedTimes, repo: str, *, since: datetime) -> int:
    """Ask the repository's applied-time source about recent changes still on commit time."""
    name = applied.source(repo)
    if name is None:
        return 0
    source = AppliedSource(name)
    shas = store.run(lambda tx: tx.changes.needing_applied(repo, since))
    times = applied.applied_at(repo, shas, since=since) if shas else {}

    def record(tx: Transaction) -> int:
        for sha, at in times.items():
            tx.changes.set_applied(repo, sha, at=at, source=source)
        return len(times)

    return store.run(record) if times else 0


def _head(tx: Transaction, *, repo: str) -> str | None:
    return tx.changes.head(repo)


def _record(tx: Transaction, *, repo: str, fetched: FetchedChanges, now: datetime) -> int:
    count = tx.changes.add_many(fetched.changes)
    tx.changes.add_reverts(fetched.reverts)
    tx.changes.set_head(repo, fetched.head, at=now)
    return count
