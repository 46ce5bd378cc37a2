"""Investigating many incidents at once: the sweep's backlog after a crash (thousands may wait).

A batch is claimed, investigated, queued in the chat outbox and finished in one transaction
(`BatchTransaction`: what the investigations read is read once, set-based; what they write is
written in a few statements). A crash mid-batch leaves all of it pending, as before the batch; on
PostgreSQL the claim locks the batch's rows and skips rows another replica is claiming, so no
incident is taken twice. Only work with no outside effect but Git reads joins a batch: a playbook
that opens pull requests or comments to authors makes calls that must not wait in an open
transaction, and is investigated on its own (`run_one`). With Prometheus, the batch's onsets are
found before its transaction (`batch_onsets`) and handed to it: none is asked inside.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING

from bot.domain.models import Incident
from bot.domain.playbooks import ActionMode, Playbook, playbook_named
from bot.domain.ports import Notice, QueuingNotifier, Transaction
from bot.services import notify
from bot.services.batch_tx import BatchTransaction, SharedStore
from bot.services.changelog import RefreshReport
from bot.services.incidents import INVESTIGATE
from bot.services.investigate import OPENED, investigate
from bot.services.onset import KnownOnset

if TYPE_CHECKING:
    from bot.services.follow_ups import FollowUpWork

# Investigations in one transaction: on SQLite the store's write lock is held for a batch (about
# a millisecond an incident), so webhooks wait at most that long behind it.
BATCH = 50
NOT_FOUND = KnownOnset(None)


def batchable(work: FollowUpWork, playbook: Playbook | None) -> bool:
    """Whether an incident of this playbook may be investigated in a batch: nothing but Git reads
    (no push, no pull request, no comment to an author; onsets are found before the batch)."""
    if playbook is None:
        return True
    if playbook.actions.on_open not in (ActionMode.OFF, ActionMode.PROPOSE):
        return False
    return work.forge is None or not playbook.suspects.notify_authors


class _Held:
    """A notifier for inside the batch's transaction: notices wait until it commits."""

    def __init__(self) -> None:
        self.notices: list[Notice] = []

    def notify(self, notice: Notice) -> None:
        self.notices.append(notice)


def investigate_batch(work: FollowUpWork, incident_ids: Sequence[int], *, now: datetime,
                      refreshed: RefreshReport, onsets: Mapping[int, KnownOnset] | None = None) -> list[int]:
    """Claim, investigate, announce and finish these incidents in one transaction (their
    repositories were just refreshed for the batch); the incidents done (those another runner
    held are left to it). An error rolls back the whole batch: the caller runs it one by one.
    With Prometheus, `onsets` are the incidents' onsets found before (`batch_onsets.find_onsets`):
    one missing is taken as none found, never asked inside the transaction."""
    queuing = work.notifier if isinstance(work.notifier, QueuingNotifier) else None
    held = _Held()

    def batch(tx: Transaction) -> list[int]:
        held.notices.clear()  # a write conflict runs the batch again
        taken = tx.follow_ups.claim_many(incident_ids, INVESTIGATE, now=now, until=now + work.lease)
        if not taken:
            return []
        batched = BatchTransaction(tx, taken, window=partial(_window_start, work.playbooks))
        shared = SharedStore(batched.as_transaction())
        for incident_id in taken:
            investigate(store=shared, git=work.git, notifier=held, playbooks=work.playbooks,
                        incident_id=incident_id, now=now, import_window=work.import_window, forge=work.forge,
                        applied=work.applied, applied_window=work.applied_window,
                        page_url=work.page_url(incident_id), metrics=work.metrics, fetch_wait=work.fetch_wait,
                        clock=work.clock, later=work.later, refreshed=refreshed, announce=False,
                        known_onset=_onset_of(work, onsets, incident_id))
        batched.flush()
        if queuing is not None:
            queuing.queue_updates(tx, dict.fromkeys(taken, OPENED))
        tx.follow_ups.finish_many(taken, INVESTIGATE, at=now)
        return taken

    done = work.store.run(batch)
    for notice in held.notices:
        work.notifier.notify(notice)
    if queuing is not None:
        if done:
            queuing.deliver_soon()
    else:
        for incident_id in done:
            notify.incident_update(store=work.store, notifier=work.notifier, incident_id=incident_id, kind=OPENED)
    return done


def _onset_of(work: FollowUpWork, onsets: Mapping[int, KnownOnset] | None, incident_id: int) -> KnownOnset | None:
    if work.metrics is None:
        return None  # only a kept onset, read in the transaction
    return (onsets or {}).get(incident_id, NOT_FOUND)


def _window_start(playbooks: Sequence[Playbook], incident: Incident) -> datetime | None:
    """The earliest time the incident's investigation reads changes, failures or drift from."""
    playbook = playbook_named(playbooks, incident.playbook)
    if playbook is None:
        return None
    return incident.started_at - playbook.suspects.lookback - playbook.suspects.sync_delay


def playbooks_of(work: FollowUpWork, incident_ids: Sequence[int]) -> dict[int, Playbook | None]:
    """Each incident's playbook, read in one query."""
    if not incident_ids:
        return {}
    names = work.store.run(lambda tx: {n: i.playbook for n, i in tx.incidents.get_many(incident_ids).items()})
    return {n: playbook_named(work.playbooks, name) for n, name in names.items()}
