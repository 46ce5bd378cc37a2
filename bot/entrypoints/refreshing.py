"""Refreshing the change log and ranking again what new commits concern: on the scheduler's
interval, and in the background after an investigation or a webhook stopped waiting for a fetch."""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from bot.entrypoints.context import AppContext
from bot.services.changelog import RefreshReport, refresh_changes
from bot.services.investigate import rerank_open_incidents

log = structlog.get_logger(__name__)


def refresh_and_rerank(ctx: AppContext, repos: Sequence[str], *, wait: float | None = None) -> RefreshReport:
    """Fetch these repositories (joining a fetch in flight), store their new commits and rank again
    the active incidents they concern."""
    now = ctx.clock()
    report = refresh_changes(store=ctx.store, git=ctx.git, repos=repos, now=now,
                             import_window=ctx.settings.git.import_window, applied=ctx.applied,
                             applied_window=ctx.settings.github.applied_window, wait=wait)
    for repo, reason in [*report.failed.items(), *report.pending.items()]:
        log.warning("changes.refresh_failed", repo=repo, error=reason)
    for repo in repos:
        if repo not in report.failed and repo not in report.pending:
            ctx.metrics.repo_refreshed.labels(repo).set(now.timestamp())
    changed = sorted({repo for repo, count in [*report.new.items(), *report.applied.items()] if count})
    if changed:
        count = rerank_open_incidents(store=ctx.store, notifier=ctx.notifier, playbooks=ctx.playbooks,
                                      repos=changed, now=ctx.clock(), git=ctx.git, metrics=ctx.metrics_query,
                                      forge=ctx.forge, page_url=ctx.page_url)
        log.info("changes.refreshed", new=report.new, reranked=count)
    return report


def refresh_later(ctx: AppContext, repos: Sequence[str]) -> None:
    """Wait for these repositories' fetch off the request and work threads, then rank what it brought."""
    chosen = list(repos)

    def run() -> None:
        try:
            refresh_and_rerank(ctx, chosen)
        except Exception as exc:  # logged; the scheduled refresh tries again
            log.exception("changes.refresh_later_failed", repos=chosen, error=str(exc))

    ctx.git_waits.submit(run)
