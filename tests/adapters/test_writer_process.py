"""Controller events recorded by a writer process of their own (`server.controller_writer:
process`, what `serve` runs): answered once stored, refused (503) and never lost when the writer
dies, drained at shutdown. On SQLite, with a real Git repository; PostgreSQL in
tests/integration/test_writer_process_pg.py."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bot import bootstrap
from bot.entrypoints.writer_process import ProcessRecorder
from tests.adapters.test_controllers import World, built_world, flux_body, post_flux


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with built_world(tmp_path) as built:
        bootstrap.record_in_process(built.app)
        yield built


def stored(tmp_path: Path) -> int:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'backout.db'}")
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM controller_events")).scalar() or 0)
    finally:
        engine.dispose()


def body(world: World, n: int) -> bytes:
    return flux_body("kustomization-succeeded", sha=world.init, at=world.remote.clock + timedelta(seconds=n))


def wait_until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"waited 30 s for {what}"
        time.sleep(0.01)


class WriteLock:
    """The database's write lock held by the test: the writer blocks on it (SQLite's busy timeout)."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        self._conn.execute("ROLLBACK")
        self._conn.close()


def running_writer(world: World) -> tuple[ProcessRecorder[Any, Any], int]:
    """The app's writer and its process id (it is running)."""
    writer = world.app.writer
    assert writer is not None
    assert writer.pid is not None
    return writer, writer.pid


def posting(world: World, bodies: list[bytes]) -> tuple[list[threading.Thread], dict[int, int]]:
    statuses: dict[int, int] = {}

    def post(n: int) -> None:
        statuses[n] = post_flux(world, bodies[n]).status_code

    threads = [threading.Thread(target=post, args=(n,)) for n in range(len(bodies))]
    for thread in threads:
        thread.start()
    return threads, statuses


def test_events_are_recorded_by_another_process_and_answered_once_stored(world: World, tmp_path: Path) -> None:
    """A Flux event is recorded by the writer process (not this one) and answered 202 once stored."""
    writer = world.app.writer
    assert writer is not None
    assert writer.pid not in (None, os.getpid())
    answer = post_flux(world, body(world, 1))
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "accepted"
    assert stored(tmp_path) == 1
    assert post_flux(world, body(world, 1)).json()["status"] == "duplicate"


def test_a_writer_killed_mid_batch_refuses_its_events_and_the_next_writer_records_them(
        world: World, tmp_path: Path) -> None:
    """The writer killed while it waits for the database: its event is answered 503 (Flux
    retries), not acknowledged; the redelivery is recorded by a new writer."""
    writer, first = running_writer(world)
    lock = WriteLock(tmp_path / "backout.db")
    try:
        threads, statuses = posting(world, [body(world, 0)])
        wait_until(lambda: writer.sent == 1, "the event to reach the writer")
        os.kill(first, signal.SIGKILL)
        for thread in threads:
            thread.join(60)
    finally:
        lock.release()
    assert statuses == {0: 503}
    assert stored(tmp_path) == 0
    again = post_flux(world, body(world, 0))
    assert again.status_code == 202, again.text
    assert writer.pid not in (None, first)
    assert stored(tmp_path) == 1


def test_shutdown_records_every_event_waiting_before_the_writer_stops(world: World, tmp_path: Path) -> None:
    """Closing the app while 20 events wait for the database: each is recorded and answered 202,
    then the writer process ends."""
    writer, child = running_writer(world)
    lock = WriteLock(tmp_path / "backout.db")
    try:
        threads, statuses = posting(world, [body(world, n) for n in range(20)])
        wait_until(lambda: world.app.ctx.controller_queue.waiting == 20, "the events to queue")
        closing = threading.Thread(target=world.app.close)
        closing.start()
    finally:
        lock.release()
    for thread in [*threads, closing]:
        thread.join(60)
    assert sorted(statuses.values()) == [202] * 20
    assert stored(tmp_path) == 20
    assert writer.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)


def _echo(pipe: Any) -> None:
    """A writer whose batch's results are its items (spawned: a module-level function)."""
    from bot.entrypoints.writer_process import serve_batches

    serve_batches(pipe, list)


def test_a_closed_writer_refuses_a_late_batch_and_starts_no_process() -> None:
    """A batch that reaches the writer after shutdown closed it (the queue's thread outlived its
    30 s join behind a slow batch) is refused as unavailable (503: the sender retries) instead of
    starting a child that nothing stops: the child ignores SIGTERM, so the parent would hang at exit
    waiting for it."""
    from bot.domain.errors import StorageUnavailable

    writer: ProcessRecorder[int, int] = ProcessRecorder(_echo, (), timeout=30)
    assert writer([1, 2]) == [1, 2]
    first = writer.pid
    writer.close()
    with pytest.raises(StorageUnavailable, match="stopped"):
        writer([3])
    assert writer.pid is None
    assert first is not None
    with pytest.raises(ProcessLookupError):
        os.kill(first, 0)


def test_no_writer_process_without_a_controller_webhook_configured(tmp_path: Path) -> None:
    """With neither Flux's key or token nor Argo CD's token, every controller event is refused
    (401): `serve` starts no writer process (about 150 MB resident and a database connection for nothing)."""
    import yaml

    from bot.config import load_settings

    (tmp_path / "playbooks").mkdir()
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "storage": {"url": f"sqlite:///{tmp_path / 'backout.db'}"}, "alertmanager": {"auth": "none"},
        "api": {"auth": "none"}, "playbooks_dir": str(tmp_path / "playbooks"),
        "git": {"mirror_dir": str(tmp_path / "mirrors")}}))
    app = bootstrap.build(load_settings(config))
    try:
        bootstrap.record_in_process(app)
        assert app.writer is None
    finally:
        app.close()
