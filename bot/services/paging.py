"""Paging out: page the on-call when an incident is not acknowledged in time, and tell the pager
what the timeline records (changes, acknowledgement, resolution), through a durable outbox.

The timeline is the source: each event of a kind the pager follows is taken into the outbox once
(by its id), in a transaction of its own, then sent; a failure waits and is tried again (a 429 for
as long as the pager asked), so a pager that is down never holds up an incident and nothing is lost
across a restart. See bot/domain/paging.py for what is sent for which event."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from bot.domain.errors import RateLimited, TransientError, UpstreamError
from bot.domain.models import Actor, IncidentStatus
from bot.domain.paging import WATCHED_KINDS, Page, PageKind, due_to_page, page_for
from bot.domain.playbooks import Playbook, playbook_named
from bot.domain.ports import Pager, PendingPage, Store, Transaction
from bot.domain.timeline import EventKind, event

log = structlog.get_logger(__name__)

HORIZON = timedelta(days=1)  # older events are not news to the pager (nor sent when paging is first set up)
LEASE = timedelta(minutes=1)  # a claimed page is another drainer's to send after this
MAX_BACKOFF = timedelta(minutes=10)
PAGER_SOURCE = "pagerduty"  # the source of the alerts PagerDuty's incidents become


@dataclass
class PagerReport:
    """What one run of the outbox did."""

    paged: int = 0
    taken: int = 0
    sent: int = 0
    waiting: int = 0
    refused: int = 0


def run_pager(*, store: Store, pager: Pager, playbooks: Sequence[Playbook], now: datetime,
              page_url: Callable[[int], str | None] = lambda _: None) -> PagerReport:
    """One run: page what is due, take new timeline events, send what is due."""
    report = PagerReport(paged=page_unacknowledged(store=store, playbooks=playbooks, now=now, page_url=page_url))
    report.taken = collect(store=store, now=now, page_url=page_url)
    deliver(store=store, pager=pager, now=now, report=report)
    return report


def page_unacknowledged(*, store: Store, playbooks: Sequence[Playbook], now: datetime,
                        page_url: Callable[[int], str | None] = lambda _: None) -> int:
    """Page the incidents whose playbook asks for it and that nobody acknowledged within its
    `pagerduty.page_after`: once per incident (a reopened one is not paged again), never one
    PagerDuty itself raised."""

    def work(tx: Transaction) -> int:
        count = 0
        for incident in tx.incidents.list(status=IncidentStatus.OPEN, limit=500):
            playbook = playbook_named(playbooks, incident.playbook)
            if incident.id is None or playbook is None or not due_to_page(incident, playbook.pagerduty, now=now):
                continue
            if tx.pager.triggered(incident.id) or PAGER_SOURCE in tx.alerts.sources(incident.id):
                continue
            waited = now - incident.opened_at
            paged = tx.timeline.append(event(
                incident_id=incident.id, at=now, kind=EventKind.INCIDENT_PAGED, actor=Actor.SCHEDULER,
                text=f"Paged the on-call through PagerDuty: not acknowledged {_minutes(waited)} after it opened",
                data={"after_seconds": int(waited.total_seconds())}))
            page = page_for(paged, incident, paged=False, link=page_url(incident.id))
            assert page is not None
            assert paged.id is not None
            tx.pager.add(incident_id=incident.id, event_id=paged.id, kind=page.kind.value, payload=page.to_json(),
                         at=now)
            count += 1
        return count

    return store.run(work)


def collect(*, store: Store, now: datetime, page_url: Callable[[int], str | None] = lambda _: None,
            limit: int = 200) -> int:
    """Take the timeline's new events of the kinds the pager follows into its outbox (those that
    say nothing to it are taken too, as nothing to send). Returns how many were taken."""

    def work(tx: Transaction) -> int:
        events = tx.pager.unsent_events(sorted(WATCHED_KINDS), since=now - HORIZON, limit=limit)
        for found in events:
            incident = tx.incidents.get(found.incident_id)
            assert found.id is not None
            page = page_for(found, incident, paged=tx.pager.triggered(found.incident_id),
                            link=page_url(found.incident_id)) if incident is not None else None
            tx.pager.add(incident_id=found.incident_id, event_id=found.id, kind=page.kind.value if page else "none",
                         payload=page.to_json() if page else None, at=now)
        return len(events)

    return store.run(work)


def deliver(*, store: Store, pager: Pager, now: datetime, report: PagerReport | None = None,
            limit: int = 20) -> PagerReport:
    """Send the due pages, in order; each failure waits (a 429 as long as asked) or, refused,
    is recorded on the incident's timeline."""
    report = report or PagerReport()
    claimed = store.run(lambda tx: tx.pager.claim(now, until=now + LEASE, limit=limit))
    for index, item in enumerate(claimed):
        page = Page.from_json(item.payload)
        try:
            pager.send(page)
        except RateLimited as exc:
            # The limit is the integration key's: the rest of this batch waits as long.
            wait = timedelta(seconds=exc.retry_after) if exc.retry_after is not None else _backoff(item)
            for later in claimed[index:]:
                _retry(store, later, until=now + wait, error=str(exc) if later is item else "")
            report.waiting += len(claimed) - index
            log.warning("pager.rate_limited", wait=wait.total_seconds(), waiting=len(claimed) - index)
            break
        except TransientError as exc:
            _retry(store, item, until=now + _backoff(item), error=str(exc))
            report.waiting += 1
            log.warning("pager.send_failed", incident=item.incident_id, kind=page.kind.value, error=str(exc),
                        attempts=item.attempts + 1)
        except UpstreamError as exc:
            _refused(store, item, page, str(exc), now=now)
            report.refused += 1
            log.error("pager.refused", incident=item.incident_id, kind=page.kind.value, error=str(exc))
        else:
            _finish(store, item, now=now)
            report.sent += 1
    return report


def _retry(store: Store, item: PendingPage, *, until: datetime, error: str) -> None:
    store.run(lambda tx: tx.pager.retry(item.id, until=until, error=error))


def _finish(store: Store, item: PendingPage, *, now: datetime) -> None:
    store.run(lambda tx: tx.pager.finish(item.id, at=now))


def _refused(store: Store, item: PendingPage, page: Page, error: str, *, now: datetime) -> None:
    what = "change event" if page.kind is PageKind.CHANGE else f"{page.kind.value} event"

    def work(tx: Transaction) -> None:
        tx.pager.refuse(item.id, error=error)
        tx.timeline.append(event(
            incident_id=item.incident_id, at=now, kind=EventKind.PAGER_FAILED, actor=Actor.BACKOUT,
            text=f"PagerDuty refused the {what} ({error}); it will not be sent again: check "
                 "pagerduty.routing_key_file",
            data={"kind": page.kind.value, "error": error}))

    store.run(work)


def _backoff(item: PendingPage) -> timedelta:
    """5 s, 10 s, 20 s ... up to MAX_BACKOFF: `attempts` counts the claims before this one."""
    return min(timedelta(seconds=5 * 2 ** min(item.attempts, 10)), MAX_BACKOFF)


def _minutes(span: timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    return f"{minutes} min" if minutes else f"{int(span.total_seconds())} s"
