"""The store on a real PostgreSQL: the same schema, and two replicas writing at once make one incident."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

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
from bot.services.ingest import ingest_delivery
from tests.conftest import PLAYBOOKS, delivery
from tests.integration.processes import Postgres

pytestmark = [pytest.mark.integration, pytest.mark.postgres]
NOW = datetime(2026, 11, 21, 22, 30, tzinfo=UTC)


@pytest.fixture
def engines(postgres: Postgres) -> Iterator[list[sa.Engine]]:
    """Two engines, as two replicas would have, on a freshly migrated database."""
    admin = create_engine(postgres.url)
    with admin.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    migrate.upgrade(admin)
    pair = [admin, create_engine(postgres.url)]
    yield pair
    for engine in pair:
        engine.dispose()


def test_migrations_build_exactly_the_declared_tables(engines: list[sa.Engine]) -> None:
    """On PostgreSQL too, autogenerate finds no difference (JSONB, partial index and all)."""
    with engines[0].connect() as conn:
        assert list(compare_metadata(MigrationContext.configure(conn), metadata)) == []
    assert migrate.is_current(engines[0])


def test_two_replicas_delivering_at_once_make_one_incident(engines: list[sa.Engine]) -> None:
    """Eight writers over two engines race on the same deliveries: one incident, no doubles."""
    playbooks = load_playbooks(PLAYBOOKS)
    stores = [SqlStore(engine) for engine in engines]
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def deliver(store: SqlStore) -> None:
        try:
            barrier.wait()
            for prefix in ("01", "02", "03"):
                ingest_delivery(store=store, delivery=delivery(prefix), playbooks=playbooks,
                                policy=IncidentPolicy(), now=NOW)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=deliver, args=(stores[i % 2],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with engines[0].connect() as conn:
        rows = conn.execute(sa.text("SELECT service, status FROM incidents ORDER BY service")).all()
        assert [tuple(row) for row in rows] == [("checkout", "open"), ("payments", "open")]
        assert conn.execute(sa.text("SELECT count(*) FROM alerts")).scalar() == 3
        opened = conn.execute(
            sa.text("SELECT count(*) FROM timeline_events WHERE kind = 'incident.opened'")
        ).scalar()
        assert opened == 2
