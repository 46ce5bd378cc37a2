"""The sweep after a crash: pending investigations in batches of one transaction each, ranked
exactly as one by one, written once however a batch is cut short, never taken by two replicas
(real Git, SQLite and PostgreSQL)."""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bot.adapters.git.mirror import GitMirrors
from bot.adapters.prometheus import PrometheusQuery
from bot.adapters.slack.notifier import SlackNotifier
from bot.adapters.storage import migrate
from bot.adapters.storage.engine import create_engine
from bot.adapters.storage.store import SqlStore
from bot.domain.incidents import IncidentPolicy
from bot.domain.models import AlertStatus, Delivery, ReceivedAlert
from bot.domain.playbooks import Playbook
from bot.services.follow_ups import FollowUpKind, FollowUpWork, run_one, sweep
from bot.services.incidents import get_ranking
from bot.services.ingest import ingest_delivery
from tests.fakes.prometheus import PrometheusServer
from tests.gitrepos import Remote, mirrors
from tests.stores import store_maker

pytestmark = pytest.mark.integration
STORAGES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
NOW = datetime.now(UTC).replace(microsecond=0)
PLAYBOOKS = [Playbook.model_validate({
    "name": "checkout", "service": "checkout", "match": {"service": "checkout"},
    "repos": [{"repo": "gitops", "paths": ["apps/checkout/**"]}], "actions": {"on_open": "propose"}})]


@pytest.fixture(params=STORAGES)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        from tests.integration.test_replicas import fresh_database

        fresh_database(request.getfixturevalue("postgres")).dispose()
        return str(request.getfixturevalue("postgres").url)
    url = f"sqlite:///{tmp_path / 'backout.db'}"
    engine = create_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture
def stores(url: str) -> Iterator[Callable[[], SqlStore]]:
    """Stores on the database, each with its own engine (as replicas have), disposed after."""
    with store_maker(url) as make:
        yield make


@pytest.fixture
def git(tmp_path: Path) -> GitMirrors:
    """Checkout's GitOps repository: three bumps of its deployment in the two hours before NOW."""
    remote = Remote(tmp_path / "gitops", start=NOW - timedelta(hours=2))
    remote.commit("init", {"apps/checkout/deploy.yaml": "image: checkout:1\n", "apps/cart/deploy.yaml": "x: 1\n"})
    remote.commit("checkout: bump to 2", {"apps/checkout/deploy.yaml": "image: checkout:2\n"}, minutes=30)
    remote.commit("cart: tweak", {"apps/cart/deploy.yaml": "x: 2\n"}, minutes=20)
    remote.commit("checkout: bump to 3, more replicas",
                  {"apps/checkout/deploy.yaml": "image: checkout:3\nreplicas: 4\n"}, minutes=25)
    return mirrors(tmp_path, {"gitops": remote})


def pending(store: SqlStore, count: int, *, first: int = 0) -> list[int]:
    """`count` incidents with their investigation pending, started a minute apart (windows differ)."""
    opened = []
    for n in range(first, first + count):
        started = NOW - timedelta(minutes=(n - first) % 40)
        alert = ReceivedAlert(fingerprint=f"{n:016x}", starts_at=started, ends_at=None, status=AlertStatus.FIRING,
                              labels={"alertname": f"Errors{n}", "service": "checkout"}, annotations={})
        outcome = ingest_delivery(store=store, playbooks=PLAYBOOKS, policy=IncidentPolicy(), now=NOW,
                                  delivery=Delivery(group_key=f"g{n}", status=AlertStatus.FIRING, alerts=(alert,)))
        opened += [incident.id for incident in outcome.opened if incident.id is not None]
    return opened


def work_for(store: SqlStore, git: Any) -> FollowUpWork:
    notifier = SlackNotifier(store=store, kick=lambda: None, clock=lambda: NOW)
    return FollowUpWork(store=store, git=git, notifier=notifier, playbooks=PLAYBOOKS, import_window=timedelta(days=7),
                        clock=lambda: NOW)


@dataclasses.dataclass
class Counts:
    transactions: int = 0
    statements: int = 0


@pytest.fixture
def counted(stores: Callable[[], SqlStore]) -> tuple[SqlStore, Counts]:
    """A store whose transactions and SQL statements are counted (load-independent)."""
    store = stores()
    engine = store.engine
    counts = Counts()

    def began(_conn: Any) -> None:
        counts.transactions += 1

    def executed(*_args: Any) -> None:
        counts.statements += 1

    sa.event.listen(engine, "begin", began)
    sa.event.listen(engine, "before_cursor_execute", executed)
    return store, counts


def written(store: SqlStore, table: str, where: str = "") -> Counter[int]:
    """How many rows of `table` each incident has."""
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT incident_id FROM {table} {where}")).scalars()  # noqa: S608
        return Counter(rows)


def test_a_sweep_of_120_incidents_takes_a_few_transactions_not_a_dozen_each(
        counted: tuple[SqlStore, Counts], git: GitMirrors) -> None:
    """120 pending investigations (a crash's backlog): ranked, proposed, queued in the chat outbox
    and finished in a handful of transactions and about 2 statements an incident (it was 11
    transactions and 36 statements an incident, one investigation at a time)."""
    store, counts = counted
    incidents = pending(store, 120)
    work = work_for(store, git)
    before = dataclasses.replace(counts)
    assert sweep(work, clock=lambda: NOW) == 120
    transactions, statements = counts.transactions - before.transactions, counts.statements - before.statements
    assert transactions <= 15, f"{transactions} transactions for 120 investigations"
    assert statements <= 4 * 120, f"{statements} statements for 120 investigations"
    assert written(store, "rankings") == Counter(incidents)
    assert written(store, "chat_outbox") == Counter(incidents)
    assert store.run(lambda tx: tx.follow_ups.backlog()) == 0


@pytest.mark.parametrize("with_prometheus", [False, True], ids=["without_prometheus", "with_prometheus"])
def test_a_batch_ranks_exactly_as_investigations_one_by_one(
        stores: Callable[[], SqlStore], git: GitMirrors, with_prometheus: bool, request: pytest.FixtureRequest) -> None:
    """The same 60 incidents twice: swept in batches, and investigated one at a time; the same
    suspects, scores, reasons and warnings, the same timeline entries, the same proposal (with
    Prometheus: the same onsets, found before the batches' transactions)."""
    store = stores()
    batched = pending(store, 60)
    alone = pending(store, 60, first=60)
    work = work_for(store, git)
    if with_prometheus:
        work = with_metrics(work, request.getfixturevalue("prometheus"))
    for incident_id in alone:
        assert run_one(work, incident_id=incident_id, kind=FollowUpKind.INVESTIGATE, now=NOW)
    assert sweep(work, clock=lambda: NOW) == 60
    for one, other in zip(batched, alone, strict=True):
        assert get_ranking(store=store, incident_id=one) == get_ranking(store=store, incident_id=other)
        assert said(store, one) == said(store, other)
    assert len({get_ranking(store=store, incident_id=n).suspects for n in batched}) > 1, "windows differ"
    if with_prometheus:
        assert all(near_shift(get_ranking(store=store, incident_id=n).onset_at) for n in batched + alone)
    assert written(store, "chat_outbox") == Counter(batched + alone)


# The key metric's level shift: 50 minutes before NOW, before every incident started (up to 40 minutes ago).
SHIFT = NOW - timedelta(minutes=50)
STEP = timedelta(seconds=15)
KEY = 'sum(rate(http_requests_total{service="checkout",code=~"5.."}[1m]))'


@pytest.fixture
def prometheus() -> Iterator[PrometheusServer]:
    """A fake Prometheus over HTTP whose key metric for checkout shifts up at SHIFT (with some noise)."""
    server = PrometheusServer()
    points = int(timedelta(hours=3) / STEP)
    server.data.history[KEY] = [(SHIFT + STEP * (k - points // 2),
                                 (1.0 if k < points // 2 else 9.0) + 0.05 * ((k * 7) % 5)) for k in range(points)]
    with server.serving():
        yield server


def near_shift(onset: datetime | None) -> bool:
    """An onset found at the key metric's shift (each incident's window samples it a little differently)."""
    return onset is not None and abs(onset - SHIFT) <= timedelta(minutes=2)


def with_metrics(work: FollowUpWork, server: PrometheusServer) -> FollowUpWork:
    """The work with the fake Prometheus configured and checkout's playbook naming its key metric."""
    keyed = [Playbook.model_validate({**PLAYBOOKS[0].model_dump(mode="json", by_alias=True, exclude_unset=True),
                                      "key_query": KEY})]
    metrics = PrometheusQuery(server.base_url, timeout=5, backoff=0.01)
    return dataclasses.replace(work, playbooks=keyed, metrics=metrics)


def test_with_prometheus_a_sweep_still_takes_a_few_transactions(
        counted: tuple[SqlStore, Counts], git: GitMirrors, prometheus: PrometheusServer) -> None:
    """With Prometheus configured, 120 pending investigations still go in batches: their onsets
    found before (a few transactions a batch), not one by one at 11 transactions each."""
    store, counts = counted
    incidents = pending(store, 120)
    work = with_metrics(work_for(store, git), prometheus)
    before = dataclasses.replace(counts)
    assert sweep(work, clock=lambda: NOW) == 120
    transactions, statements = counts.transactions - before.transactions, counts.statements - before.statements
    assert transactions <= 20, f"{transactions} transactions for 120 investigations"  # 14 when written
    assert statements <= 5 * 120, f"{statements} statements for 120 investigations"  # 561 when written
    # One key-metric query a batch of 50, its points each incident's window (on the step's grid)
    assert prometheus.calls.count("/api/v1/query_range") == 3, "one key-metric query a batch"
    assert all(near_shift(get_ranking(store=store, incident_id=n).onset_at) for n in incidents)
    assert written(store, "timeline_events", "WHERE kind = 'suspects.onset'") == Counter(incidents)
    assert written(store, "chat_outbox") == Counter(incidents)


def test_no_prometheus_call_waits_in_a_batch_transaction(
        counted: tuple[SqlStore, Counts], git: GitMirrors, prometheus: PrometheusServer) -> None:
    """Every Prometheus call of a sweep is made while the store holds no transaction open (a call
    in a batch's would hold SQLite's write lock, or a PostgreSQL connection, for its duration)."""
    store, _ = counted
    incidents = pending(store, 60)
    open_now = [0]
    for name, change in (("begin", 1), ("commit", -1), ("rollback", -1)):
        sa.event.listen(store.engine, name, lambda _conn, change=change: open_now.__setitem__(0, open_now[0] + change))
    seen: list[int] = []
    prometheus.on_call = lambda _path: seen.append(open_now[0])
    assert sweep(with_metrics(work_for(store, git), prometheus), clock=lambda: NOW) == 60
    assert len(seen) >= 2  # a key-metric query a batch of 50, at least
    assert set(seen) == {0}, f"{sum(1 for n in seen if n)} of {len(seen)} calls inside a transaction"
    assert written(store, "rankings") == Counter(incidents)


def test_a_prometheus_that_does_not_answer_is_not_asked_for_every_incident(
        counted: tuple[SqlStore, Counts], git: GitMirrors, prometheus: PrometheusServer) -> None:
    """Prometheus down (503): the first onset query fails (after its bounded retries), the rest of
    the sweep asks no more and ranks without an onset, in batches, as one investigation does."""
    store, counts = counted
    incidents = pending(store, 120)
    prometheus.down = True
    before = dataclasses.replace(counts)
    assert sweep(with_metrics(work_for(store, git), prometheus), clock=lambda: NOW) == 120
    assert len(prometheus.calls) <= 3, prometheus.calls
    assert counts.transactions - before.transactions <= 25
    assert {get_ranking(store=store, incident_id=n).onset_at for n in incidents} == {None}
    assert written(store, "chat_outbox") == Counter(incidents)


def said(store: SqlStore, incident_id: int) -> list[tuple[str, str, object]]:
    """What the investigation wrote on the incident's timeline (kinds, texts, data), its number left out."""
    events = store.run(lambda tx: tx.timeline.for_incident(incident_id))
    return [(str(e.kind), e.text.replace(f"INC-{incident_id}", "INC-n"), e.data) for e in events
            if not e.kind.startswith(("alert.", "incident."))]


class Killed(BaseException):
    """The process dies here: nothing after it runs, as under kill -9."""


class DiesMidBatch:
    """Git that kills the process at its `patch` call number `at` (in a batch's transaction)."""

    def __init__(self, inner: GitMirrors, at: int) -> None:
        self._inner, self._at, self.calls = inner, at, 0

    def patch(self, repo: str, sha: str) -> str:
        self.calls += 1
        if self.calls == self._at:
            raise Killed
        return self._inner.patch(repo, sha)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_a_batch_cut_short_by_a_crash_is_done_again_and_nothing_is_written_twice(
        stores: Callable[[], SqlStore], git: GitMirrors) -> None:
    """Killed in the middle of the second batch: the first is done, the second left whole (not half
    written); the restart's sweep does the rest, and each incident has one ranking entry, one
    proposal and one message."""
    store = stores()
    incidents = pending(store, 120)
    dying = DiesMidBatch(git, at=75)
    with pytest.raises(Killed):
        sweep(work_for(store, dying), clock=lambda: NOW)
    ranked = written(store, "rankings")
    assert len(ranked) == 50, f"{len(ranked)} ranked: the first batch done, the second not half written"
    assert sweep(work_for(store, git), clock=lambda: NOW) == 120 - len(ranked)
    assert written(store, "timeline_events", "WHERE kind = 'suspects.ranked'") == Counter(incidents)
    assert written(store, "actions") == Counter(incidents)
    assert written(store, "chat_outbox") == Counter(incidents)


def test_two_replicas_sweeping_one_backlog_take_each_incident_once(stores: Callable[[], SqlStore],
                                                                   git: GitMirrors) -> None:
    """Two replicas sweep the same 200 pending investigations at once (as a leader change
    mid-sweep may make them): each incident is investigated, proposed and queued once."""
    first = stores()
    incidents = pending(first, 200)
    second = stores()
    first.start_replica("a", at=NOW)
    second.start_replica("b", at=NOW)
    done: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run(store: SqlStore) -> None:
        try:
            barrier.wait()
            done.append(sweep(dataclasses.replace(work_for(store, git), workers=2), clock=lambda: NOW))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(store,)) for store in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert sum(done) == 200
    assert written(first, "timeline_events", "WHERE kind = 'suspects.ranked'") == Counter(incidents)
    assert written(first, "actions") == Counter(incidents)
    assert written(first, "chat_outbox") == Counter(incidents)
