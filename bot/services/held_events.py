"""Controller events held for a fetch, kept in storage until they are recorded.

A Flux or Argo CD event whose revision the mirror does not have yet is answered 202 while the fetch
goes on. Flux sends an event once, so it is stored (`hold`) before that answer: a process that dies,
or stops, before the fetch lands loses nothing. Whoever settles held events (the webhook's git-wait
thread when its fetch lands; the leader's sweep at start and on an interval) fetches first, holding
no claim, then claims each event, records it as the webhook would have, and forgets it. Recording
is idempotent on the event's key (`controller_events`): a lapsed claim, a crash between recording
and forgetting, or two replicas still record it once.

An event whose revision is still out of reach (the Git host not answering, a fetch failing) stays
held. Past `hold_for` it is recorded anyway, its revision unknown to the mirror, rather than dropped:
the event still counts for failures and recoveries (a failed reconciliation opens its incident, a
success resolves one), which a responder needs more than the revision's applied time; the log says
it was held too long and why."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from bot.domain.errors import BackoutError
from bot.domain.gitops import ControllerEvent
from bot.domain.ports import GitRepos, HeldEvent, Store, Transaction
from bot.services.changelog import RefreshReport
from bot.services.gitops import ControllerReport

log = structlog.get_logger(__name__)

HOLD_FOR = timedelta(hours=1)
# A claim covers recording one event (which may wait for one fetch, within the git deadlines).
LEASE = timedelta(minutes=5)
BATCH = 500  # held events one sweep settles after its one fetch


@dataclass(frozen=True)
class HeldWork:
    """What settling held events needs."""

    store: Store
    git: GitRepos
    repos: Sequence[str]
    # Fetch these repositories (joining a fetch in flight; bounded by the git deadlines), store new commits.
    refresh: Callable[[Sequence[str]], RefreshReport]
    # Record the event as the webhook would, waiting for a fetch if need be (never "fetching" again).
    record: Callable[[ControllerEvent], ControllerReport]
    # What follows a recording: incidents to open or resolve, re-ranking.
    recorded: Callable[[ControllerEvent, ControllerReport], None] = lambda _event, _report: None
    hold_for: timedelta = HOLD_FOR
    lease: timedelta = LEASE


@dataclass
class Settled:
    """What one settling did."""

    recorded: int = 0  # the fetch brought their revision (or the mirror is current without it)
    expired: int = 0  # held past `hold_for`: recorded with their revision unknown to the mirror
    held: int = 0  # still out of reach: held for the next sweep
    failed: int = 0  # recording raised: held for the next sweep


def hold(store: Store, event: ControllerEvent, *, now: datetime, note: str) -> None:
    """Keep the event until it is recorded (before the webhook answers: then it cannot be lost)."""
    store.run(lambda tx: tx.held_events.hold(event, at=now, note=note))


def held_count(store: Store) -> int:
    """How many controller events wait for their revision."""
    return store.read(lambda tx: tx.held_events.count())


def settle(work: HeldWork, *, clock: Callable[[], datetime], events: Sequence[ControllerEvent] | None = None,
           batch: int = BATCH, keep_going: Callable[[], bool] = lambda: True) -> Settled:
    """Fetch, then record the held events (these `events`, or the oldest `batch`) whose revision
    the mirror now has; keep those still out of reach; record those held past `hold_for` anyway.
    Events whose revisions a fetch already brought need none: a storm of events waiting for one
    fetch is recorded after it, not after a fetch each."""
    settled = Settled()
    if not keep_going():
        return settled
    unreachable: dict[str, str] = {}
    if events is None or not all(_in_mirror(work.git, work.repos, event.sha) for event in events):
        report = work.refresh(work.repos)
        unreachable = {**report.pending, **report.failed}
    keys = None if events is None else [event.key for event in events]
    now = clock()
    claimed = work.store.run(lambda tx: tx.held_events.claim(now=now, until=now + work.lease, keys=keys,
                                                             limit=batch))
    for index, held in enumerate(claimed):
        if not keep_going():  # no longer the leader: give the rest back for the next one
            _release(work.store, claimed[index:], note="given back by a replica that stopped leading")
            break
        _settle_one(work, held, unreachable, now=clock(), settled=settled)
    if settled.recorded or settled.expired or settled.failed:
        log.info("held_events.settled", recorded=settled.recorded, expired=settled.expired, held=settled.held,
                 failed=settled.failed)
    return settled


def _settle_one(work: HeldWork, held: HeldEvent, unreachable: dict[str, str], *, now: datetime,
                settled: Settled) -> None:
    event = held.event
    in_mirror = _in_mirror(work.git, work.repos, event.sha)
    expired = now - held.held_at >= work.hold_for
    if unreachable and not in_mirror and not expired:
        _release(work.store, [held], note=_listed(unreachable))
        settled.held += 1
        return
    try:
        report = work.record(event)
    except Exception as exc:  # the database or git failed: it stays held, the next sweep tries again
        log.exception("held_event.record_failed", object=event.object_id, error=str(exc))
        _release(work.store, [held], note=f"recording failed: {type(exc).__name__}: {exc}")
        settled.failed += 1
        return
    if report.fetching is not None:  # the record step waits for its fetch: this is a broken callable
        _release(work.store, [held], note=report.fetching)
        settled.held += 1
        return
    try:  # what follows (its alert filed) before the event stops being held: a failure is swept again
        work.recorded(event, report)
    except Exception as exc:  # recorded, but its alert not filed: the next sweep files it (a duplicate does)
        log.exception("held_event.follow_failed", object=event.object_id, error=str(exc))
        _release(work.store, [held], note=f"recorded; what follows failed: {type(exc).__name__}: {exc}")
        settled.failed += 1
        return
    work.store.run(lambda tx: tx.held_events.drop(event.key))
    if expired and not in_mirror:
        settled.expired += 1
        log.warning("controller_event.held_too_long", object=event.object_id, revision=event.revision[:60],
                    held_since=held.held_at.isoformat(), hold_for=str(work.hold_for),
                    detail=f"recorded with its revision unknown to the mirror: {held.note or report.note}")
    else:
        settled.recorded += 1


def _in_mirror(git: GitRepos, repos: Sequence[str], sha: str | None) -> bool:
    """The revision is in a watched repository's mirror (an event naming no commit waits for nothing)."""
    if sha is None:
        return True
    for repo in repos:
        try:
            if git.resolve(repo, sha):
                return True
        except BackoutError:  # a mirror not cloned yet: not there
            continue
    return False


def _release(store: Store, held: Sequence[HeldEvent], *, note: str) -> None:
    def work(tx: Transaction) -> None:
        for item in held:
            tx.held_events.release(item.event.key, note=note)

    store.run(work)


def _listed(by_repo: dict[str, str]) -> str:
    return "; ".join(f"{repo}: {why}" for repo, why in by_repo.items())
