"""The SQL store on SQLite: migrations equal the tables, uniqueness holds, writes are atomic."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from bot.adapters.storage import migrate
from bot.adapters.storage.engine import create_engine
from bot.adapters.storage.store import SqlStore
from bot.adapters.storage.tables import metadata
from bot.config import load_playbooks
from bot.domain.incidents import IncidentPolicy
from bot.domain.models import Incident, IncidentStatus, Severity
from bot.services.ingest import ingest_delivery
from tests.conftest import PLAYBOOKS, delivery

NOW = datetime(2026, 11, 21, 22, 30, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> SqlStore:
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    migrate.upgrade(engine)
    return SqlStore(engine)


def schema_differences(store: SqlStore) -> list[object]:
    with store.engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), metadata))


def test_migrations_build_exactly_the_declared_tables(store: SqlStore) -> None:
    """Alembic's autogenerate finds nothing between the migrated schema and tables.py."""
    assert schema_differences(store) == []
    assert migrate.is_current(store.engine)


def test_sqlite_runs_in_wal_mode(store: SqlStore) -> None:
    """WAL lets readers run while a webhook writes."""
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_upgrade_twice_is_harmless(store: SqlStore) -> None:
    """`backout db upgrade` on a current database does nothing."""
    migrate.upgrade(store.engine)
    assert migrate.current_revision(store.engine) == migrate.head_revision()


def _incident(key: str) -> Incident:
    return Incident(group_key=key, title="t", service="s", severity=Severity.NONE,
                    status=IncidentStatus.OPEN, playbook=None, started_at=NOW, opened_at=NOW)


def test_one_active_incident_per_key_is_enforced_by_the_database(tmp_path: Path) -> None:
    """The partial unique index refuses a second active incident for the same key."""
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    migrate.upgrade(engine)
    store = SqlStore(engine, conflict_attempts=1)
    store.run(lambda tx: tx.incidents.add(_incident("k")))
    from bot.domain.errors import WriteConflict

    with pytest.raises(WriteConflict):
        store.run(lambda tx: tx.incidents.add(_incident("k")))
    resolved = _incident("k").model_copy(update={"status": IncidentStatus.RESOLVED})
    store.run(lambda tx: tx.incidents.add(resolved))  # a resolved one may sit beside it


def test_a_failed_unit_of_work_leaves_nothing(store: SqlStore) -> None:
    """An error halfway rolls the whole unit back: no incident without its timeline."""
    def work(tx):  # type: ignore[no-untyped-def]
        tx.incidents.add(_incident("k"))
        raise RuntimeError("crash between the two writes")

    with pytest.raises(RuntimeError):
        store.run(work)
    assert store.run(lambda tx: tx.incidents.list()) == []


def test_concurrent_deliveries_make_one_incident(store: SqlStore) -> None:
    """Eight threads delivering the same payloads at once: one incident, two alerts."""
    playbooks = load_playbooks(PLAYBOOKS)
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def deliver() -> None:
        try:
            barrier.wait()
            for prefix in ("01", "02"):
                ingest_delivery(store=store, delivery=delivery(prefix), playbooks=playbooks,
                                policy=IncidentPolicy(), now=NOW)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM incidents")).scalar() == 1
        assert conn.execute(sa.text("SELECT count(*) FROM alerts")).scalar() == 2
        kinds = [row[0] for row in conn.execute(sa.text("SELECT kind FROM timeline_events ORDER BY id"))]
    assert kinds == ["incident.opened", "alert.firing", "alert.firing", "alert.resolved"]


def test_datetimes_come_back_aware_utc(store: SqlStore) -> None:
    """SQLite keeps no zone; the store hands back aware UTC datetimes."""
    added = store.run(lambda tx: tx.incidents.add(_incident("k")))
    assert added.id is not None
    loaded = store.run(lambda tx: tx.incidents.get(added.id))  # type: ignore[arg-type]
    assert loaded is not None
    assert loaded.started_at == NOW
    assert loaded.started_at.tzinfo is not None


def test_naive_datetimes_are_refused(store: SqlStore) -> None:
    """Writing a naive datetime is a bug: it is refused, not guessed."""
    naive = _incident("k").model_copy(update={"opened_at": datetime(2026, 1, 1)})
    with pytest.raises(sa.exc.StatementError, match="naive datetime"):
        store.run(lambda tx: tx.incidents.add(naive))



def test_a_postgres_host_that_never_accepts_fails_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """libpq has no connect deadline of its own: without one a silent host holds the caller forever."""
    from bot.adapters.storage import engine as engines
    from tests.fakes.git_host import DeafListener

    monkeypatch.setattr(engines, "CONNECT_TIMEOUT", 1)
    deaf = DeafListener()
    try:
        silent = engines.create_engine(f"postgresql://backout@127.0.0.1:{deaf.port}/backout")
        result: list[BaseException] = []

        def connect() -> None:
            try:
                silent.connect().close()
            except BaseException as exc:  # the outcome is what the test reads
                result.append(exc)

        caller = threading.Thread(target=connect, daemon=True)
        caller.start()
        caller.join(30)  # a generous bound: without a deadline libpq waits minutes
        assert not caller.is_alive(), "the connection to a silent host was still waiting"
        assert isinstance(result[0], sa.exc.OperationalError)
    finally:
        deaf.close()


def test_a_read_runs_beside_a_write_in_progress(store: SqlStore) -> None:
    """While a writer holds its transaction open, a read answers from the last committed state
    instead of queueing behind it; the write is seen once committed."""
    writing, done = threading.Event(), threading.Event()

    def write(tx: Any) -> None:
        tx.incidents.add(_incident("g1"))
        writing.set()
        assert done.wait(30)

    writer = threading.Thread(target=store.run, args=(write,))
    writer.start()
    try:
        assert writing.wait(30)
        assert store.read(lambda tx: tx.incidents.list()) == []
    finally:
        done.set()
        writer.join()
    assert [i.group_key for i in store.read(lambda tx: tx.incidents.list())] == ["g1"]
