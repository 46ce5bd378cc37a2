"""The change log: import new commits of watched branches into storage, incrementally."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from bot.domain.errors import BackoutError
from bot.domain.ports import FetchedChanges, GitRepos, Store, Transaction


@dataclass
class RefreshReport:
    new: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

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
) -> RefreshReport:
    """Fetch each repository and store the commits added since its last known head.

    The cost follows what is new: git fetches only new objects and `git log` reads
    `last_head..new_head`; a new mirror or a rewritten history reads the import window only.
    One repository failing does not stop the others; its error is reported."""
    report = RefreshReport()
    for repo in repos:
        since = store.run(partial(_head, repo=repo))
        try:
            fetched = git.refresh(repo, since_sha=since, not_before=now - import_window)
        except BackoutError as exc:
            report.failed[repo] = str(exc)
            continue
        report.new[repo] = store.run(partial(_record, repo=repo, fetched=fetched, now=now))
    return report


def _head(tx: Transaction, *, repo: str) -> str | None:
    return tx.changes.head(repo)


def _record(tx: Transaction, *, repo: str, fetched: FetchedChanges, now: datetime) -> int:
    count = tx.changes.add_many(fetched.changes)
    tx.changes.set_head(repo, fetched.head, at=now)
    return count
