"""Scheduled jobs (APScheduler 3, in-memory job store): for now, the change-log refresh."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import structlog
from apscheduler.schedulers.background import BackgroundScheduler

from bot.entrypoints.context import AppContext
from bot.services.changelog import refresh_changes
from bot.services.investigate import rerank_open_incidents
from bot.services.pull_requests import follow_pull_requests

log = structlog.get_logger(__name__)


def refresh_job(ctx: AppContext) -> None:
    """Fetch every watched repository; rank again the open incidents that new changes concern."""
    repos = [repo.name for repo in ctx.settings.repos]
    now = ctx.clock()
    report = refresh_changes(store=ctx.store, git=ctx.git, repos=repos, now=now,
                             import_window=ctx.settings.git.import_window, applied=ctx.applied,
                             applied_window=ctx.settings.github.applied_window)
    for repo, reason in report.failed.items():
        log.warning("changes.refresh_failed", repo=repo, error=reason)
    changed = sorted({repo for repo, count in [*report.new.items(), *report.applied.items()] if count})
    if changed:
        count = rerank_open_incidents(store=ctx.store, notifier=ctx.notifier, playbooks=ctx.playbooks,
                                      repos=changed, now=now, git=ctx.git)
        log.info("changes.refreshed", new=report.new, reranked=count)


def follow_job(ctx: AppContext) -> None:
    """Follow Backout's open pull requests: merged, closed, checks."""
    changed = follow_pull_requests(store=ctx.store, forge=ctx.forge, notifier=ctx.notifier, now=ctx.clock())
    if changed:
        log.info("pull_requests.followed", changed=changed)


def slack_job(ctx: AppContext) -> None:
    """Deliver the chat outbox (also kicked at once after each new summary)."""
    if ctx.slack is not None:
        ctx.slack.delivery.drain()


def start_scheduler(ctx: AppContext) -> BackgroundScheduler:
    """Start the jobs; the caller shuts the scheduler down on exit."""
    scheduler = BackgroundScheduler(timezone="UTC")
    every: timedelta = ctx.settings.git.refresh_every
    if ctx.settings.repos:
        scheduler.add_job(
            _guarded, "interval", args=[refresh_job, ctx], seconds=max(every.total_seconds(), 5),
            id="refresh_changes", coalesce=True, max_instances=1,
            misfire_grace_time=int(every.total_seconds()),  # the default 1 s drops late runs
        )
    if any(repo.forge == "github" for repo in ctx.settings.repos):
        scheduler.add_job(
            _guarded, "interval", args=[follow_job, ctx], seconds=60, id="follow_pull_requests",
            coalesce=True, max_instances=1, misfire_grace_time=60,
        )
    if ctx.slack is not None:
        scheduler.add_job(
            _guarded, "interval", args=[slack_job, ctx], seconds=2, id="slack_delivery",
            coalesce=True, max_instances=1, misfire_grace_time=10,
        )
    scheduler.start()
    return scheduler


def _guarded(job: Callable[[AppContext], None], ctx: AppContext) -> None:
    """One failing run is logged; it never stops the scheduler or the other jobs."""
    try:
        job(ctx)
    except Exception as exc:
        log.exception("job.failed", job=getattr(job, "__name__", "job"), error=str(exc))
