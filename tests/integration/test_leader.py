"""Replicas on PostgreSQL elect one leader with an advisory lock; when it dies, another takes over."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from bot.adapters.storage import migrate
from bot.adapters.storage.engine import create_engine
from bot.adapters.storage.leader import PostgresLeader
from tests.conftest import PLAYBOOKS, TOKEN
from tests.integration.processes import BackoutServer, Postgres, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


@pytest.fixture
def engine(postgres: Postgres) -> Iterator[sa.Engine]:
    engine = create_engine(postgres.url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


def test_one_leads_and_another_takes_over_when_it_goes(engine: sa.Engine) -> None:
    """Two gates: exactly one leads; its session killed by the server, it stops leading and the other
    takes the lock at its next heartbeat."""
    first = PostgresLeader(engine, interval=timedelta(seconds=3), replica="a")
    second = PostgresLeader(engine, interval=timedelta(seconds=3), replica="b")
    try:
        first.heartbeat()
        second.heartbeat()
        assert (first.is_leader(), second.is_leader()) == (True, False)
        with engine.begin() as conn:  # the database drops the leader's session (a network cut, say)
            conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_locks "
                                 "WHERE locktype = 'advisory' AND granted"))
        first.heartbeat()
        assert not first.is_leader(), "a leader that cannot reach the database stops leading at once"
        second.heartbeat()
        assert second.is_leader()
        first.heartbeat()
        assert not first.is_leader()
    finally:
        first.close()
        second.close()


def test_a_leader_that_stops_hearing_back_stops_leading_within_the_interval(engine: sa.Engine) -> None:
    """No heartbeat for an interval: not the leader any more, even before the database notices."""
    gate = PostgresLeader(engine, interval=timedelta(seconds=1))
    try:
        gate.heartbeat()
        assert gate.is_leader()
        time.sleep(1.1)
        assert not gate.is_leader()
    finally:
        gate.close()


def test_killing_the_leading_replica_hands_the_jobs_to_the_other(tmp_path: Path, postgres: Postgres,
                                                                 engine: sa.Engine) -> None:
    """Two `backout serve` on one database: /readyz and /metrics name one leader; kill -9 it and the
    other leads within the interval."""
    config = {"storage": {"url": postgres.url}, "alertmanager": {"auth": "bearer", "bearer_token": TOKEN},
              "playbooks_dir": str(PLAYBOOKS), "scheduler": {"leader_interval": "3s"},
              "repos": [{"name": "gitops", "url": str(tmp_path / "gitops.git")}],
              "logging": {"format": "json"}}
    replicas = [BackoutServer(tmp_path / name, config).start() for name in ("one", "two")]
    try:
        def leaders() -> list[bool]:
            return [httpx.get(f"{r.url}/readyz", timeout=2).json()["leader"] for r in replicas
                    if r.proc is not None and r.proc.poll() is None]

        wait_until(lambda: sorted(leaders()) == [False, True], timeout=20, what="one leader")
        leading = replicas[leaders().index(True)]
        other = replicas[1 - replicas.index(leading)]
        metrics = httpx.get(f"{leading.url}/metrics", timeout=2).text
        assert any(line.startswith("backout_leader{") and line.endswith(" 1.0") for line in metrics.splitlines())
        leading.kill()
        started = time.monotonic()
        wait_until(lambda: httpx.get(f"{other.url}/readyz", timeout=2).json()["leader"], timeout=15,
                   what="the other replica to lead")
        assert time.monotonic() - started < 9, "within a few heartbeats of a 3s interval"
    finally:
        for replica in replicas:
            replica.stop()
