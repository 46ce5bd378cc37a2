"""Onsets for a batch of investigations, found before its transaction: a Prometheus call must not
wait in an open transaction (on SQLite it would hold the write lock; on PostgreSQL a connection).

What one investigation does on its own (`investigate._onset`) done for the batch: the incidents,
their kept rankings and earliest alerts read in one transaction; the onsets not kept yet asked of
Prometheus a few at a time (`pool`); the lines saying where they came from written in one
transaction. The batch then ranks with them (`KnownOnset`) and asks nothing. Prometheus that
does not answer (down, or slower than its timeout) is asked no more in this sweep (`Breaker`):
the rest rank without an onset, as one investigation does when Prometheus fails it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, cast

from bot.domain.errors import BackoutError, TransientError
from bot.domain.models import Alert, Incident, TimelineEvent
from bot.domain.playbooks import Playbook, playbook_named
from bot.domain.ports import MetricsQuery, Store, Transaction
from bot.services.onset import MOST_ALERTS, KnownOnset, Onset, incident_onset, key_window, onset_said

MOST_POINTS_A_QUERY = 10_000  # Prometheus refuses a range query of more than 11,000 points a series


class Breaker:
    """Prometheus as a sweep's batches ask it: once a call failed to reach it (TransientError, after
    the adapter's own bounded retries), later calls fail at once instead of each waiting its timeout.
    Whether it implements AlertStates is the wrapped one's (attributes are forwarded)."""

    def __init__(self, metrics: MetricsQuery) -> None:
        self._metrics = metrics
        self._failed = threading.Event()

    @property
    def broken(self) -> bool:
        return self._failed.is_set()

    def as_metrics(self) -> MetricsQuery:
        return cast(MetricsQuery, self)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._metrics, name)
        if name == "asks":  # no call: whether the alert's Prometheus is one Backout asks
            return method

        def guarded(*args: Any, **kwargs: Any) -> Any:
            if self._failed.is_set():
                raise TransientError("prometheus: did not answer earlier in this sweep; not asked again")
            try:
                return method(*args, **kwargs)
            except TransientError:
                self._failed.set()
                raise

        return guarded


def find_onsets(*, store: Store, metrics: MetricsQuery, playbooks: Sequence[Playbook], incident_ids: Sequence[int],
                now: datetime, pool: Executor) -> dict[int, KnownOnset]:
    """Each incident's onset (None where none was found), found and recorded outside any
    transaction held open; an onset a ranking kept is not asked again."""
    incidents, kept, alerts = store.run(lambda tx: _read(tx, incident_ids))
    asked = [n for n in incidents if kept.get(n) is None]
    shared = Prefetched(metrics, list(pool.map(lambda job: job.fetch(metrics),
                                                key_queries(playbooks, [incidents[n] for n in asked]))))
    ask: Callable[[int], Onset] = lambda n: incident_onset(  # noqa: E731 (a one-line job for the pool)
        metrics=shared.as_metrics(), playbook=playbook_named(playbooks, incidents[n].playbook),
        incident=incidents[n], alerts=alerts[n])
    found = dict(zip(asked, pool.map(ask, asked), strict=True))
    if any(onset.note for onset in found.values()):
        store.run(lambda tx: _record(tx, found, now))
    onsets = {n: KnownOnset(kept.get(n)) for n in incident_ids}
    onsets.update({n: KnownOnset(onset.at) for n, onset in found.items()})
    return onsets


def _read(tx: Transaction, incident_ids: Sequence[int]) -> tuple[dict[int, Incident], dict[int, datetime | None],
                                                                  dict[int, list[Alert]]]:
    incidents = tx.incidents.get_many(incident_ids)
    kept = {n: ranking.onset_at for n, ranking in tx.rankings.get_many(list(incidents)).items()}
    alerts = {n: tx.alerts.earliest(n, fingerprints=MOST_ALERTS) for n in incidents if kept.get(n) is None}
    return incidents, kept, alerts


def _record(tx: Transaction, found: dict[int, Onset], now: datetime) -> None:
    said: list[TimelineEvent] = []
    for incident_id, onset in found.items():
        line = onset_said(tx, incident_id=incident_id, onset=onset, now=now)
        if line is not None:
            said.append(line)
    if said:
        tx.timeline.append_many(said)


@dataclass
class KeyQuery:
    """One range query of a playbook's key metric over the windows of several incidents."""

    query: str
    start: datetime
    end: datetime
    step: timedelta
    points: list[tuple[datetime, float]] | None = None  # None: not fetched (asked one by one)

    def fetch(self, metrics: MetricsQuery) -> KeyQuery:
        try:
            return replace(self, points=metrics.series(self.query, start=self.start, end=self.end, step=self.step))
        except BackoutError:  # each incident asks on its own, and meets the same answer (or the breaker)
            return self


def key_queries(playbooks: Sequence[Playbook], incidents: Sequence[Incident]) -> list[KeyQuery]:
    """The batch's key-metric windows, one query per key query and step (each incident's window
    starts on the step's grid, so the one query's points are each window's), where their union
    stays within Prometheus's points a query."""
    spans: dict[tuple[str, timedelta], tuple[datetime, datetime]] = {}
    for incident in incidents:
        playbook = playbook_named(playbooks, incident.playbook)
        if playbook is None or playbook.key_query is None:
            continue
        start, end, step = key_window(incident.started_at, playbook.suspects.lookback)
        known = spans.get((playbook.key_query, step))
        spans[(playbook.key_query, step)] = (min(start, known[0]), max(end, known[1])) if known else (start, end)
    return [KeyQuery(query, start, end, step) for (query, step), (start, end) in spans.items()
            if (end - start) / step <= MOST_POINTS_A_QUERY]


class Prefetched:
    """The key metric's series answered from the batch's queries where one covers the window asked
    (the same points Prometheus would give that window alone); anything else asked of Prometheus."""

    def __init__(self, metrics: MetricsQuery, fetched: Sequence[KeyQuery]) -> None:
        self._metrics = metrics
        self._fetched = {(q.query, q.step): q for q in fetched if q.points is not None}

    def as_metrics(self) -> MetricsQuery:
        return cast(MetricsQuery, self)

    def series(self, query: str, *, start: datetime, end: datetime, step: timedelta) -> list[tuple[datetime, float]]:
        found = self._fetched.get((query, step))
        if found is None or found.points is None or start < found.start or end > found.end:
            return self._metrics.series(query, start=start, end=end, step=step)
        return [(at, value) for at, value in found.points if start <= at <= end]

    def __getattr__(self, name: str) -> Any:  # the rest (alert states) as the wrapped one has it
        return getattr(self._metrics, name)
