"""Follow-up work that must not be lost: investigate what a delivery opened, announce what it resolved.

The delivery's transaction records the work (`follow_ups`); whoever runs it first claims it
for a while, does it, and marks it done. The webhook's own thread pool runs it at once; a
scheduled sweep (and a restart) runs what a crash left pending. The work is idempotent
(rankings are replaced, the chat outbox keeps one message per incident), so a claim that
expired while its holder was still busy costs time, not a double announcement.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import structlog

from bot.domain.playbooks import Playbook
from bot.domain.ports import AppliedTimes, Forge, GitRepos, MetricsQuery, Notifier, Store
from bot.services import notify
from bot.services.incidents import ANNOUNCE_RESOLVED, INVESTIGATE
from bot.services.investigate import investigate

log = structlog.get_logger(__name__)

# A claim holds this long: work is taken over this soon after its runner died or lost the database.
LEASE = timedelta(minutes=2)
RETRY_AFTER = timedelta(seconds=30)


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


def follow_up(work: FollowUpWork, *, opened: Sequence[int], resolved: Sequence[int], now: datetime) -> int:
    """After a delivery is stored: investigate what it opened, announce what it resolved."""
    done = 0
    for incident_id in opened:
        done += run_one(work, incident_id=incident_id, kind=FollowUpKind.INVESTIGATE, now=now)
    for incident_id in resolved:
        done += run_one(work, incident_id=incident_id, kind=FollowUpKind.ANNOUNCE_RESOLVED, now=now)
    return done


def sweep(work: FollowUpWork, *, now: datetime, limit: int = 50) -> int:
    """Run pending work nobody holds (left by a crash, or failed and due again)."""
    done = 0
    for item in work.store.run(lambda tx: tx.follow_ups.due(now=now, limit=limit)):
        done += run_one(work, incident_id=item.incident_id, kind=FollowUpKind(item.kind), now=now)
    if done:
        log.info("follow_ups.swept", done=done)
    return done


def run_one(work: FollowUpWork, *, incident_id: int, kind: FollowUpKind, now: datetime) -> bool:
    """Claim the work, do it, mark it done; False when someone else holds it or it is done."""
    claimed = work.store.run(lambda tx: tx.follow_ups.claim(incident_id, kind.value, now=now, until=now + work.lease))
    if not claimed:
        return False
    try:
        if kind is FollowUpKind.INVESTIGATE:
            investigate(store=work.store, git=work.git, notifier=work.notifier, playbooks=work.playbooks,
                        incident_id=incident_id, now=now, import_window=work.import_window, forge=work.forge,
                        applied=work.applied, applied_window=work.applied_window,
                        page_url=work.page_url(incident_id), metrics=work.metrics, fetch_wait=work.fetch_wait,
                        clock=work.clock, later=work.later)
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
