"""Fixtures that start real processes; each test gets fresh ones and stops them after."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import pytest

from bot.adapters.storage import migrate
from bot.adapters.storage.engine import create_engine
from bot.adapters.storage.store import SqlStore
from tests.conftest import PLAYBOOKS, TOKEN
from tests.integration.processes import BackoutServer, Postgres


def backout_config(tmp_path: Path) -> dict[str, object]:
    return {
        "storage": {"url": f"sqlite:///{tmp_path / 'backout.db'}"},
        # The captured payloads keep the day they were captured on: accepted whatever day this runs.
        "alertmanager": {"auth": "bearer", "bearer_token": TOKEN, "max_start_age": "36500d"},
        "playbooks_dir": str(PLAYBOOKS),
        "repos": [{"name": "gitops", "url": str(tmp_path / "gitops.git")}],
        "logging": {"format": "json"},
    }


@pytest.fixture
def backout(tmp_path: Path) -> Iterator[BackoutServer]:
    server = BackoutServer(tmp_path, backout_config(tmp_path)).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """One server for the session. SIGTERM (an interrupted `make test`, a cancelled CI job) ends the
    run as Ctrl-C does, so this teardown runs; an atexit hook stops the server if anything else
    skips it."""
    with sigterm_interrupts():
        server = Postgres().start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def sql_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    """A freshly migrated store on SQLite, then on PostgreSQL (the session's server, emptied)."""
    if request.param == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    else:
        postgres: Postgres = request.getfixturevalue("postgres")
        engine = create_engine(postgres.url)
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    migrate.upgrade(engine)
    yield SqlStore(engine)
    engine.dispose()


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Python's default SIGTERM ends the process at once: no fixture teardown, no atexit. Raise
    KeyboardInterrupt instead, while the block runs (signals can be set from the main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
