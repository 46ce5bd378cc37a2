"""Scheduled jobs (APScheduler 3, in-memory job store; jobs are defined here in code from the
config and the playbooks). Each job is coalesced, runs one at a time, has a misfire grace that
suits it (the default one second silently drops late runs), is counted in /metrics, and runs
only where the leader gate says so. One failing run never stops the others."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial

import structlog
from apscheduler.schedulers.background import BackgroundScheduler

from bot.config import Settings
from bot.domain.automerge import MergeMode
from bot.domain.playbooks import Playbook, Probe
from bot.domain.ports import Merging, OpenRequests
from bot.domain.probes import probe_key
from bot.entrypoints.charts import review_files
from bot.entrypoints.context import AppContext
from bot.entrypoints.held_events import held_events_job
from bot.entrypoints.http_common import follow_up_work, schedule_follow_up
from bot.entrypoints.refreshing import refresh_and_rerank
from bot.services import lifecycle, reviews
from bot.services.act import push_waiting
from bot.services.automerge import follow_automatic_merges
from bot.services.branch_pushes import poll_branches
from bot.services.follow_ups import sweep
from bot.services.freeze_follow import follow_freezes
from bot.services.notify import incident_update
from bot.services.paging import run_pager
from bot.services.plan import advance_plans
from bot.services.postmortem import PostmortemPolicy, open_postmortems
from bot.services.pull_requests import follow_pull_requests
from bot.services.restore import push_waiting_restores
from bot.services.roles import remind_updates
from bot.services.watching import resolve_cleared, run_probe, send_reminders, verify_rollbacks

log = structlog.get_logger(__name__)
# Open requests listed this often where no webhook tells of them: one call per repository, and on
# GitHub a conditional one (304, free) while nothing changed; GitLab allows far more than this.
REVIEW_POLL_EVERY = timedelta(minutes=5)
Job = Callable[[AppContext], None]


def postmortem_job(ctx: AppContext) -> None:
    """Propose the post-mortem draft of each newly resolved incident (export.postmortem)."""
    settings = ctx.settings.export.postmortem
    if settings is None:
        return
    policy = PostmortemPolicy(repo=settings.repo, path=settings.path, branch_prefix=settings.branch_prefix)
    count = open_postmortems(store=ctx.store, git=ctx.git, forge=ctx.forge, notifier=ctx.notifier, policy=policy,
                             render=partial(review_files, ctx), now=ctx.clock())
    if count:
        log.info("postmortems.proposed", count=count)


def refresh_job(ctx: AppContext) -> None:
    """Fetch every watched repository; rank again the open incidents that new changes concern."""
    refresh_and_rerank(ctx, [repo.name for repo in ctx.settings.repos])


def sweep_job(ctx: AppContext) -> None:
    """Finish follow-up work a crash or a failure left pending (investigations, announcements)."""
    sweep(follow_up_work(ctx), clock=ctx.clock, keep_going=ctx.leader.is_leader)


def review_job(ctx: AppContext) -> None:
    """Assess the request heads a crash or a failure left queued (review risk)."""
    if ctx.reviews is not None:
        reviews.sweep(ctx.reviews, clock=ctx.clock, keep_going=ctx.leader.is_leader)


def review_poll_job(ctx: AppContext) -> None:
    """Review risk on repositories whose forge has no webhook secret: their open requests, listed."""
    if ctx.reviews is not None and isinstance(ctx.forge, OpenRequests):
        done = reviews.poll(ctx.reviews, ctx.forge, repos=polled_for_review(ctx.settings), now=ctx.clock())
        if done:
            log.info("review_risk.polled", assessed=done)


def polled_for_review(settings: Settings) -> dict[str, str]:
    """Repositories with review.risk whose forge's webhook cannot be trusted (no secret): name -> branch."""
    hooked = {"github": settings.github.webhook_secret is not None, "gitlab": settings.gitlab.webhook_token is not None}
    return {repo.name: repo.branch for repo in settings.repos if repo.review.risk and not hooked.get(repo.forge, True)}


def follow_job(ctx: AppContext) -> None:
    """Follow Backout's open pull requests: merged, closed, checks."""
    changed = follow_pull_requests(store=ctx.store, forge=ctx.forge, notifier=ctx.notifier, now=ctx.clock())
    if changed:
        log.info("pull_requests.followed", changed=changed)


def freeze_job(ctx: AppContext) -> None:
    """Open the unfreeze once the fix is verified, remind while it is open, report expired freezes."""
    changed = follow_freezes(store=ctx.store, git=ctx.git, notifier=ctx.notifier, forge=ctx.forge,
                             playbooks=ctx.playbooks, now=ctx.clock(), page_url=ctx.page_url)
    if changed:
        log.info("freezes.followed", changed=changed)


def automerge_job(ctx: AppContext) -> None:
    """Announce the veto window of pull requests Backout may merge itself, and merge those due
    (a playbook's `actions.merge: confident`; docs/automerge.md)."""
    merging = ctx.forge if isinstance(ctx.forge, Merging) else None
    moved = follow_automatic_merges(store=ctx.store, forge=ctx.forge, merging=merging, notifier=ctx.notifier,
                                    playbooks=ctx.playbooks, now=ctx.clock())
    if moved:
        log.info("automatic_merges.moved", moved=moved)


def branches_job(ctx: AppContext) -> None:
    """Read the open incident branches of repositories whose forge sends no webhook (no secret set)."""
    settings = ctx.settings
    hooked = {repo.name for repo in settings.repos
              if (repo.forge == "github" and settings.github.webhook_secret)
              or (repo.forge == "gitlab" and settings.gitlab.webhook_token)}
    added = poll_branches(store=ctx.store, git=ctx.git, notifier=ctx.notifier, now=ctx.clock(),
                          polled=lambda repo: repo not in hooked)
    if added:
        log.info("incident_branches.polled", commits=added)


def lifecycle_job(ctx: AppContext) -> None:
    """Move incidents whose revert is applied to mitigated, and those whose key metric recovered
    to verified."""
    moved = lifecycle.advance(store=ctx.store, notifier=ctx.notifier, playbooks=ctx.playbooks, now=ctx.clock())
    if moved:
        log.info("incidents.advanced", moved=moved)


def push_waiting_job(ctx: AppContext) -> None:
    """Push the reverts and restores prepared while a Git host was down, once it answers."""
    done = push_waiting(store=ctx.store, git=ctx.git, notifier=ctx.notifier, playbooks=ctx.playbooks,
                        now=ctx.clock(), forge=ctx.forge, page_url=ctx.page_url)
    restored = push_waiting_restores(store=ctx.store, git=ctx.git, notifier=ctx.notifier, playbooks=ctx.playbooks,
                                     now=ctx.clock(), forge=ctx.forge, page_url=ctx.page_url)
    if done or restored:
        log.info("reverts.pushed_after_outage", done=done, restores=restored)


def slack_job(ctx: AppContext) -> None:
    """Deliver the chat outbox (also kicked at once after each new summary)."""
    if ctx.slack is not None:
        ctx.slack.delivery.drain()


def pager_job(ctx: AppContext) -> None:
    """Page the incidents nobody acknowledged in time; send the pager's outbox (PagerDuty)."""
    if ctx.pager is None:
        return
    report = run_pager(store=ctx.store, pager=ctx.pager, playbooks=ctx.playbooks, now=ctx.clock(),
                       page_url=ctx.page_url)
    if report.paged or report.sent or report.refused:
        log.info("pager.delivered", paged=report.paged, sent=report.sent, waiting=report.waiting,
                 refused=report.refused)


def probe_job(ctx: AppContext, playbook: Playbook, probe: Probe) -> None:
    """Evaluate one probe; what it opens is investigated like an alert's incident."""
    assert ctx.metrics_query is not None
    run = run_probe(store=ctx.store, metrics=ctx.metrics_query, playbook=playbook, probe=probe,
                    playbooks=ctx.playbooks, policy=ctx.settings.incidents, now=ctx.clock())
    key = probe_key(playbook, probe)
    if run.state.value is not None:
        ctx.metrics.probe_value.labels(key).set(run.state.value)
    if run.error:
        ctx.metrics.probe_errors.labels(key).inc()
        log.warning("probe.unevaluable", probe=key, error=run.error)
    if run.outcome is not None:
        schedule_follow_up(ctx, run.outcome)


def verify_job(ctx: AppContext) -> None:
    assert ctx.metrics_query is not None
    verify_rollbacks(store=ctx.store, metrics=ctx.metrics_query, notifier=ctx.notifier, playbooks=ctx.playbooks,
                     now=ctx.clock())


def plan_job(ctx: AppContext) -> None:
    """Propose the rollback plan of incidents with no confident suspect, once; judge the step whose
    revert took effect, and propose the next when it did not recover (Prometheus optional)."""
    changed = advance_plans(store=ctx.store, notifier=ctx.notifier, playbooks=ctx.playbooks, now=ctx.clock(),
                            metrics=ctx.metrics_query)
    if changed:
        log.info("plans.advanced", changed=changed)


def reminders_job(ctx: AppContext) -> None:
    """Remind the channel of incidents nobody acknowledged, and of those with a status update overdue."""
    send_reminders(store=ctx.store, notifier=ctx.notifier, playbooks=ctx.playbooks, now=ctx.clock())
    for incident_id in remind_updates(store=ctx.store, policy=ctx.settings.reminders, now=ctx.clock()):
        incident_update(store=ctx.store, notifier=ctx.notifier, incident_id=incident_id,
                        kind="incident.update_reminder")


def resolve_job(ctx: AppContext) -> None:
    resolve_cleared(store=ctx.store, notifier=ctx.notifier, policy=ctx.settings.incidents, now=ctx.clock())


def start_scheduler(ctx: AppContext) -> BackgroundScheduler:
    """Define the jobs from the config and playbooks and start them; the caller shuts down."""
    settings = ctx.settings
    scheduler = BackgroundScheduler(timezone="UTC")

    def add(name: str, job: Job, every: timedelta, grace: timedelta | None = None, *, at_start: bool = False) -> None:
        seconds = max(every.total_seconds(), 1.0)
        first = {"next_run_time": datetime.now(UTC)} if at_start else {}
        scheduler.add_job(
            _guarded, "interval", args=[name, job, ctx], seconds=seconds, id=name, name=name,
            coalesce=True, max_instances=1, misfire_grace_time=int((grace or every).total_seconds()) or 1,
            **first,
        )

    if settings.repos:
        # At start too: mirrors are cloned and warm before the first incident, not during it.
        add("refresh_changes", refresh_job, settings.git.refresh_every, at_start=True)
        add("push_waiting", push_waiting_job, settings.scheduler.push_retry_every)
        add("follow_freezes", freeze_job, timedelta(seconds=60))
        # At start too: controller events a previous run answered 202 and held are recorded.
        add("held_controller_events", held_events_job, settings.scheduler.sweep_every, at_start=True)
    if settings.export.postmortem is not None:
        add("open_postmortems", postmortem_job, timedelta(seconds=60))
    if any(repo.forge in ("github", "gitlab") for repo in settings.repos):
        add("follow_pull_requests", follow_job, timedelta(seconds=60))
        if any(playbook.actions.merge is not MergeMode.OFF for playbook in ctx.playbooks):
            # The due times are stored: a late or missed run (a restart) merges at the next one.
            add("automatic_merges", automerge_job, timedelta(seconds=15), grace=timedelta(seconds=60))
    add("incident_branches", branches_job, timedelta(seconds=60))  # at most once a minute per branch
    if ctx.slack is not None:
        add("slack_delivery", slack_job, timedelta(seconds=2), grace=timedelta(seconds=10))
    if ctx.pager is not None and ctx.pager.sends:
        add("pagerduty", pager_job, settings.pagerduty.deliver_every, grace=timedelta(seconds=30))
    if ctx.metrics_query is not None:
        for playbook in ctx.playbooks:
            for probe in playbook.probes:
                add(f"probe:{probe_key(playbook, probe)}", partial(probe_job, playbook=playbook, probe=probe),
                    probe.every)
        add("verify_rollbacks", verify_job, settings.scheduler.verify_every)
    if settings.storage.url.startswith("sqlite"):
        # SQLite means one process: claims in the database are this process's own, from before a
        # crash. (Replicas on PostgreSQL wait for a dead replica's claims to run out.)
        released, held = ctx.store.run(lambda tx: (tx.follow_ups.release_all(), tx.held_events.release_all()))
        if released or held:
            log.info("follow_ups.released", count=released, held_controller_events=held)
    add("follow_ups", sweep_job, settings.scheduler.sweep_every, at_start=True)
    if ctx.reviews is not None:
        add("review_risk", review_job, settings.scheduler.sweep_every, at_start=True)
        if polled_for_review(settings):
            add("review_risk_poll", review_poll_job, REVIEW_POLL_EVERY)
    add("reminders", reminders_job, settings.scheduler.reminders_every)
    add("rollback_plans", plan_job, settings.scheduler.verify_every)
    # As often as the key metric is checked: a revert applied, then verified, is seen as soon.
    add("incident_lifecycle", lifecycle_job, settings.scheduler.verify_every)
    if settings.incidents.clear_for:
        add("resolve_cleared", resolve_job, settings.scheduler.resolve_every)
    scheduler.start()
    log.info("scheduler.started", jobs=len(scheduler.get_jobs()))
    return scheduler


def _guarded(name: str, job: Job, ctx: AppContext) -> None:
    """Run one job if this replica leads; count it; log a failure without stopping anything."""
    if not ctx.leader.is_leader():
        ctx.metrics.job_runs.labels(name, "not_leader").inc()
        return
    started = time.perf_counter()
    outcome = "ok"
    try:
        job(ctx)
    except Exception as exc:
        outcome = "error"
        log.exception("job.failed", job=name, error=str(exc))
    finally:
        ctx.metrics.job_runs.labels(name, outcome).inc()
        ctx.metrics.job_duration.labels(name).observe(time.perf_counter() - started)
