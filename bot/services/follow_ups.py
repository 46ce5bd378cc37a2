"""Follow-up work that must not be lost: investigate what a delivery opened, announce what it resolved.

The delivery's transaction records the work (`follow_ups`); whoever runs it first claims it
for a while, does it, and marks it done. The webhook's own thread pool runs it at once; a
scheduled sweep (and a restart) runs what a crash left pending. The work is idempotent
(rankings are replaced, the chat outbox keeps one message per incident), so a claim that
expired while its holder was still busy costs time, not a double announcement.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import partial

import structlog

from bot.domain.playbooks import Playbook
from bot.domain.ports import AppliedTimes, FollowUp, Forge, GitRepos, MetricsQuery, Notifier, Store
from bot.services import notify
from bot.services.batch_onsets import Breaker, find_onsets
from bot.services.changelog import RefreshReport, refresh_changes
from bot.services.incidents import ANNOUNCE_RESOLVED, INVESTIGATE
from bot.services.investigate import investigate
from bot.services.investigate_batch import BATCH as BATCH_SIZE
from bot.services.investigate_batch import batchable, investigate_batch, playbooks_of

log = structlog.get_logger(__name__)

# A claim holds this long: work is taken over this soon after its runner died or lost the database.
LEASE = timedelta(minutes=2)
RETRY_AFTER = timedelta(seconds=30)
# Due work the sweep takes at a time: one refresh of the repositories serves the whole batch.
BATCH = 500


class FollowUpKind(StrEnum):
    INVESTIGATE = INVESTIGATE
    ANNOUNCE_RESOLVED = ANNOUNCE_RESOLVED


@dataclass(frozen=True)
class FollowUpWork:
    """What running follow-up work needs."""

    store: Store
    git: GitRepos
    notifier: Notifier
    playbooks: Sequence[Playbook]
    import_window: timedelta
    forge: Forge | None = None
    applied: AppliedTimes | None = None
    applied_window: timedelta = timedelta(days=1)
    page_url: Callable[[int], str | None] = lambda _: None
    metrics: MetricsQuery | None = None
    lease: timedelta = LEASE  # how long a claim holds before another replica may take the work
    fetch_wait: float | None = None  # seconds an investigation waits for a fetch before ranking from the mirror
    clock: Callable[[], datetime] | None = None  # dates each ranking when it is made
    later: Callable[[Sequence[str]], object] = lambda _: None  # ranks again when these repositories' fetch lands
    workers: int = 1  # the sweep's batches (or lone investigations) at a time (on PostgreSQL they mostly wait on it)


def follow_up(work: FollowUpWork, *, opened: Sequence[int], resolved: Sequence[int], now: datetime) -> int:
    """After a delivery is stored: investigate what it opened, announce what it resolved."""
    done = 0
    for incident_id in opened:
        done += run_one(work, incident_id=incident_id, kind=FollowUpKind.INVESTIGATE, now=now)
    for incident_id in resolved:
        done += run_one(work, incident_id=incident_id, kind=FollowUpKind.ANNOUNCE_RESOLVED, now=now)
    return done


def sweep(work: FollowUpWork, *, clock: Callable[[], datetime], batch: int = BATCH,
          keep_going: Callable[[], bool] = lambda: True) -> int:
    """Run pending work nobody holds (left by a crash, or failed and due again), a batch at a time,
    until none is due or `keep_going` says stop (this replica no longer leads). A batch's
    repositories are refreshed once for all its investigations, and those with no outside effect
    are investigated `investigate_batch.BATCH` to a transaction: after a crash, thousands of
    incidents wait on the same few repositories."""
    done = 0
    # With Prometheus, the batches' onsets are asked `workers` at a time, before their transactions;
    # once it fails to answer it is not asked again in this sweep.
    metrics = Breaker(work.metrics).as_metrics() if work.metrics is not None else None
    with (ThreadPoolExecutor(max_workers=work.workers, thread_name_prefix="sweep") as pool,
          ThreadPoolExecutor(max_workers=work.workers, thread_name_prefix="sweep-onsets") as onsets):
        asking = Onsets(metrics, onsets)
        while keep_going():
            now = clock()
            due = _due(work.store, now=now, limit=batch)
            if not due:
                break
            ran = list(pool.map(lambda job: job(), _jobs(work, due, now=now, clock=clock, onsets=asking)))
            done += sum(ran)
            if not any(ran):
                break  # all of it held by others or failed: nothing more to do before it is due again
    if done:
        log.info("follow_ups.swept", done=done)
    return done


@dataclass(frozen=True)
class Onsets:
    """How a sweep's batches find their onsets: Prometheus (behind the sweep's breaker) and the pool."""

    metrics: MetricsQuery | None
    pool: Executor


def _jobs(work: FollowUpWork, due: Sequence[FollowUp], *, now: datetime,
          clock: Callable[[], datetime], onsets: Onsets) -> list[Callable[[], int]]:
    """The due work as jobs for the pool: investigations that may share a transaction in batches,
    the rest one by one."""
    playbooks = playbooks_of(work, [item.incident_id for item in due if item.kind == INVESTIGATE])
    refreshed = _refresh_for(work, playbooks.values(), now)
    batched = [n for n, playbook in playbooks.items() if refreshed is not None and batchable(work, playbook)]
    jobs: list[Callable[[], int]] = [
        partial(_run_batch, work, batched[start:start + BATCH_SIZE], clock=clock, refreshed=refreshed, onsets=onsets)
        for start in range(0, len(batched), BATCH_SIZE)]
    together = set(batched)
    alone = [item for item in due if item.kind != INVESTIGATE or item.incident_id not in together]
    jobs += [partial(_run_due, work, item, clock=clock, refreshed=refreshed) for item in alone]
    return jobs


def _run_batch(work: FollowUpWork, incident_ids: Sequence[int], *, clock: Callable[[], datetime],
               refreshed: RefreshReport | None, onsets: Onsets) -> int:
    assert refreshed is not None
    try:
        now = clock()
        found = None if onsets.metrics is None else find_onsets(
            store=work.store, metrics=onsets.metrics, playbooks=work.playbooks, incident_ids=incident_ids, now=now,
            pool=onsets.pool)
        return len(investigate_batch(work, incident_ids, now=now, refreshed=refreshed, onsets=found))
    except Exception as exc:  # rolled back whole: each on its own, so one failure holds back only itself
        log.exception("follow_ups.batch_failed", incidents=len(incident_ids), error=str(exc))
        return sum(run_one(work, incident_id=n, kind=FollowUpKind.INVESTIGATE, now=clock(), refreshed=refreshed)
                   for n in incident_ids)


def _run_due(work: FollowUpWork, item: FollowUp, *, clock: Callable[[], datetime],
             refreshed: RefreshReport | None) -> int:
    return int(run_one(work, incident_id=item.incident_id, kind=FollowUpKind(item.kind), now=clock(),
                       refreshed=refreshed))


def _due(store: Store, *, now: datetime, limit: int) -> list[FollowUp]:
    return store.run(lambda tx: tx.follow_ups.due(now=now, limit=limit))


def _refresh_for(work: FollowUpWork, playbooks: Iterable[Playbook | None], now: datetime) -> RefreshReport | None:
    """Fetch once the repositories these playbooks watch (waiting `fetch_wait` at most, as one
    investigation does), and hand what is still fetching or failed to `later` once for the
    batch; None when there are none or the refresh itself broke (each investigation then refreshes,
    and fails, on its own)."""
    repos = sorted({entry.repo for playbook in playbooks if playbook is not None for entry in playbook.repos})
    if not repos:
        return None
    try:
        report = refresh_changes(store=work.store, git=work.git, repos=repos, now=now,
                                 import_window=work.import_window, applied=work.applied,
                                 applied_window=work.applied_window, wait=work.fetch_wait)
    except Exception as exc:
        log.exception("follow_ups.refresh_failed", repos=repos, error=str(exc))
        return None
    if report.pending or report.failed:
        work.later(sorted({*report.pending, *report.failed}))
    return report


def run_one(work: FollowUpWork, *, incident_id: int, kind: FollowUpKind, now: datetime,
            refreshed: RefreshReport | None = None) -> bool:
    """Claim the work, do it, mark it done; False when someone else holds it or it is done.
    `refreshed`: the repositories were just fetched for a batch (see `investigate`)."""
    claimed = work.store.run(lambda tx: tx.follow_ups.claim(incident_id, kind.value, now=now, until=now + work.lease))
    if not claimed:
        return False
    try:
        if kind is FollowUpKind.INVESTIGATE:
            investigate(store=work.store, git=work.git, notifier=work.notifier, playbooks=work.playbooks,
                        incident_id=incident_id, now=now, import_window=work.import_window, forge=work.forge,
                        applied=work.applied, applied_window=work.applied_window,
                        page_url=work.page_url(incident_id), metrics=work.metrics, fetch_wait=work.fetch_wait,
                        clock=work.clock, later=work.later, refreshed=refreshed)
        else:
            notify.incident_update(store=work.store, notifier=work.notifier, incident_id=incident_id,
                                   kind="incident.resolved")
    except Exception as exc:
        log.exception("follow_up.failed", incident=incident_id, kind=kind.value, error=str(exc))
        error = f"{type(exc).__name__}: {exc}"
        work.store.run(lambda tx: tx.follow_ups.retry_later(
            incident_id, kind.value, until=now + RETRY_AFTER, error=error))
        return False
    work.store.run(lambda tx: tx.follow_ups.finish(incident_id, kind.value, at=now))
    return True
