"""One transaction for a batch of investigations (the sweep after a crash).

Each investigation runs the same code as one on its own (so a batch ranks exactly as they would
one by one), over a transaction that reads what they all need once: the incidents, their rankings
and verdicts up front, a few queries for all of them; the change log, reverts, controller state
and drift once per distinct question (the batch writes none of them, so an answer stays true for
the batch). Rankings and timeline events are written at the end, a few statements for the batch.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from bot.domain.changes import Change
from bot.domain.drift import Drift
from bot.domain.gitops import Failure
from bot.domain.models import Incident, TimelineEvent
from bot.domain.ports import ChangeRepository, DriftRepository, GitOpsRepository, Transaction
from bot.domain.suspects import Ranking
from bot.domain.verdicts import Verdict

T = TypeVar("T")
FAILURES_READ = 100  # the most failures `GitOpsRepository.failures` returns at once
DRIFTS_READ = 200  # `DriftRepository.between`'s default limit

# The reads answered once per distinct arguments: of tables only the refresh and the controllers'
# webhooks write, never an investigation.
_REMEMBERED = {
    "changes": frozenset({"applied_between", "find", "get_many", "reverts", "head"}),
    "gitops": frozenset({"objects", "applied", "failures", "build"}),
    "drifts": frozenset({"between", "get"}),
}


class BatchTransaction:
    """A `Transaction` for investigating `incident_ids` together; `flush` writes what it holds back.
    Repositories it does not wrap are the transaction's own."""

    def __init__(self, tx: Transaction, incident_ids: Sequence[int],
                 window: Callable[[Incident], datetime | None] = lambda _: None) -> None:
        """`window`: the earliest time an incident's investigation asks about (its window's start):
        the change log, failures and drift from the batch's earliest on are read once, and each
        investigation's window answered from them."""
        self._tx = tx
        incidents = tx.incidents.get_many(incident_ids)
        self.incidents = _Incidents(tx, incidents)
        self.rankings = _Rankings(tx, incident_ids)
        self.verdicts = _Verdicts(tx, tx.verdicts.for_incidents(incident_ids))
        self.timeline = _Timeline(tx)
        memo: dict[Hashable, Any] = {}
        span = _Span(min(filter(None, map(window, incidents.values())), default=None), memo)
        # cast: the wrappers answer every method of the port by forwarding (__getattr__), which a
        # Protocol check does not see.
        self.changes = cast(ChangeRepository, _Changes(tx.changes, span))
        self.gitops = cast(GitOpsRepository, _GitOps(tx.gitops, span))
        self.drifts = cast(DriftRepository, _Drifts(tx.drifts, span))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tx, name)

    def as_transaction(self) -> Transaction:
        return cast(Transaction, self)

    def flush(self) -> None:
        """Write the rankings and timeline events held back, a few statements for all."""
        self.rankings.flush()
        self.timeline.flush()


class SharedStore:
    """A `Store` whose units of work all run in one transaction, the batch's (they commit, or roll
    back, together)."""

    def __init__(self, tx: Transaction) -> None:
        self._tx = tx

    def run(self, work: Callable[[Transaction], T]) -> T:
        return work(self._tx)

    def read(self, work: Callable[[Transaction], T]) -> T:
        return work(self._tx)


class _Forwarding:
    def __init__(self, inner: object) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _Incidents(_Forwarding):
    def __init__(self, tx: Transaction, known: dict[int, Incident]) -> None:
        super().__init__(tx.incidents)
        self._tx, self._known = tx, known

    def get(self, incident_id: int) -> Incident | None:
        if incident_id not in self._known:
            found = self._tx.incidents.get(incident_id)
            if found is None:
                return None
            self._known[incident_id] = found
        return self._known[incident_id]

    def save(self, incident: Incident) -> None:
        self._tx.incidents.save(incident)
        if incident.id is not None:
            self._known[incident.id] = incident


class _Rankings:
    def __init__(self, tx: Transaction, incident_ids: Sequence[int], *, since: datetime | None = None) -> None:
        """`since`: the earliest time any investigation of the batch asks about (its window's start):
        the change log, failures and drift from it on are read once and each window answered from them."""
        self._tx = tx
        self._known: dict[int, Ranking | None] = dict.fromkeys(incident_ids)
        self._known.update(tx.rankings.get_many(incident_ids))
        self._saved: dict[int, Ranking] = {}

    def get(self, incident_id: int) -> Ranking | None:
        if incident_id in self._saved:
            return self._saved[incident_id]
        if incident_id not in self._known:
            self._known[incident_id] = self._tx.rankings.get(incident_id)
        return self._known[incident_id]

    def get_many(self, incident_ids: Sequence[int]) -> dict[int, Ranking]:
        return {n: found for n in incident_ids if (found := self.get(n)) is not None}

    def save(self, incident_id: int, ranking: Ranking) -> None:
        self._saved[incident_id] = ranking

    def save_many(self, rankings: Mapping[int, Ranking]) -> None:
        self._saved.update(rankings)

    def flush(self) -> None:
        if self._saved:
            self._tx.rankings.save_many(self._saved)
            self._known.update(self._saved)
            self._saved = {}


class _Verdicts(_Forwarding):
    def __init__(self, tx: Transaction, known: dict[int, list[Verdict]]) -> None:
        super().__init__(tx.verdicts)
        self._tx, self._known = tx, known

    def for_incident(self, incident_id: int) -> list[Verdict]:
        if incident_id not in self._known:
            self._known[incident_id] = self._tx.verdicts.for_incident(incident_id)
        return list(self._known[incident_id])

    def add(self, verdict: Verdict) -> None:
        self._tx.verdicts.add(verdict)
        self._known.pop(verdict.incident_id, None)


class _Timeline(_Forwarding):
    """Appends are held back and written together; any reading writes them first."""

    def __init__(self, tx: Transaction) -> None:
        super().__init__(tx.timeline)
        self._tx = tx
        self._held: list[TimelineEvent] = []

    def append(self, event: TimelineEvent) -> TimelineEvent:
        self._held.append(event)
        return event  # without its id: no investigation reads it back

    def append_many(self, events: Sequence[TimelineEvent]) -> None:
        self._held.extend(events)

    def flush(self) -> None:
        if self._held:
            self._tx.timeline.append_many(self._held)
            self._held = []

    def __getattr__(self, name: str) -> Any:
        self.flush()  # for_incident, after, hide: they see what was appended
        return getattr(self._tx.timeline, name)


class _Remembering(_Forwarding):
    """Forwards to a repository; the `reads` named are asked once per distinct arguments."""

    def __init__(self, inner: object, reads: frozenset[str], memo: dict[Hashable, Any]) -> None:
        super().__init__(inner)
        self._reads, self._memo = reads, memo

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._inner, name)
        if name not in self._reads:
            return method

        def remembered(*args: Any, **kwargs: Any) -> Any:
            key = (id(self._inner), name, _frozen(args), _frozen(kwargs))
            if key not in self._memo:
                self._memo[key] = method(*args, **kwargs)
            found = self._memo[key]
            return list(found) if isinstance(found, list) else found  # callers may extend a list

        return remembered


class _Span:
    """The rows of a question over the batch's whole window, read once; each investigation's
    narrower window is answered from them, exactly as the database would (same order), unless the
    read was cut by its limit (then it asks the database)."""

    def __init__(self, since: datetime | None, memo: dict[Hashable, Any]) -> None:
        self.since, self.memo = since, memo
        self.until = datetime.max.replace(tzinfo=UTC)  # "now" moves while a batch runs: no upper bound

    def answer(self, key: Hashable, *, fetch: Callable[[datetime, datetime], list[T]], at: Callable[[T], datetime],
               since: datetime, until: datetime, limit: int | None = None) -> list[T]:
        if self.since is None or since < self.since:
            return fetch(since, until)
        if key not in self.memo:
            self.memo[key] = fetch(self.since, self.until)
        rows: list[T] = self.memo[key]
        if limit is not None and len(rows) >= limit:
            return fetch(since, until)  # the whole window did not fit in one read
        return [row for row in rows if since <= at(row) <= until][:limit]


class _Changes(_Remembering):
    def __init__(self, inner: ChangeRepository, span: _Span) -> None:
        super().__init__(inner, _REMEMBERED["changes"], span.memo)
        self._changes, self._span = inner, span

    def applied_between(self, repos: Sequence[str], since: datetime, until: datetime) -> list[Change]:
        return self._span.answer(("applied_between", tuple(repos)), since=since, until=until,
                                 fetch=lambda s, u: self._changes.applied_between(repos, s, u),
                                 at=lambda change: change.applied_at or change.committed_at)


class _GitOps(_Remembering):
    def __init__(self, inner: GitOpsRepository, span: _Span) -> None:
        super().__init__(inner, _REMEMBERED["gitops"], span.memo)
        self._gitops, self._span = inner, span

    def failures(self, repos: Sequence[str], *, since: datetime, until: datetime) -> list[Failure]:
        return self._span.answer(("failures", tuple(repos)), since=since, until=until, limit=FAILURES_READ,
                                 fetch=lambda s, u: self._gitops.failures(repos, since=s, until=u),
                                 at=lambda failure: failure.at)


class _Drifts(_Remembering):
    def __init__(self, inner: DriftRepository, span: _Span) -> None:
        super().__init__(inner, _REMEMBERED["drifts"], span.memo)
        self._drifts, self._span = inner, span

    def between(self, *, since: datetime, until: datetime, limit: int = DRIFTS_READ) -> list[Drift]:
        if limit != DRIFTS_READ:
            return self._drifts.between(since=since, until=until, limit=limit)
        return self._span.answer(("drifts",), since=since, until=until, limit=limit,
                                 fetch=lambda s, u: self._drifts.between(since=s, until=u),
                                 at=lambda drift: drift.detected_at)


def _frozen(value: Any) -> Hashable:
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(item) for item in value)
    if isinstance(value, (set, frozenset)):
        return frozenset(_frozen(item) for item in value)
    if isinstance(value, dict):
        return tuple(sorted((key, _frozen(item)) for key, item in value.items()))
    if isinstance(value, (str, int, float, bool, datetime)) or value is None:
        return value
    return repr(value)
