"""PostgresLeader: one replica runs the scheduled jobs, chosen by a PostgreSQL advisory lock.

The lock lives on a dedicated connection. A heartbeat (every third of the interval) checks that
connection; a replica whose heartbeat has not succeeded within the interval stops leading at
once, before PostgreSQL drops its session and another replica can take the lock. The session's
TCP keepalives are short, so PostgreSQL notices a replica cut off from it within about the
interval and frees the lock; a replica killed outright frees it at once.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from datetime import timedelta

import structlog
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

log = structlog.get_logger(__name__)

LOCK_KEY = 0x6261636B6F7574  # "backout": one lock per database


class PostgresLeader:
    """Implements the LeaderGate port for replicas sharing a PostgreSQL database."""

    def __init__(self, engine: Engine, *, interval: timedelta = timedelta(seconds=15),
                 replica: str | None = None) -> None:
        self.replica = replica or uuid.uuid4().hex[:12]
        # A connection of its own, outside the pool: closing it must end the session (and the lock).
        # Its connection attempts are bounded too: the first heartbeat runs in `start`.
        self._engine = create_engine(engine.url, poolclass=NullPool,
                                     connect_args={"connect_timeout": max(int(interval.total_seconds()), 1)})
        self._interval = interval.total_seconds()
        self._conn: Connection | None = None
        self._held = False
        self._beat = 0.0  # monotonic time of the last successful heartbeat while holding
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="leader-heartbeat", daemon=True)

    def start(self) -> PostgresLeader:
        """The first heartbeat at once: a replica that can lead knows it before its scheduler's first
        jobs (the sweep after a restart) ask."""
        self.heartbeat()
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self._interval)
        with self._lock:
            self._drop()
        self._engine.dispose()

    def is_leader(self) -> bool:
        """Leading only while the lock's connection answered within the interval."""
        with self._lock:
            return self._held and time.monotonic() - self._beat < self._interval

    def _run(self) -> None:
        while not self._stop.is_set():
            self.heartbeat()
            self._stop.wait(self._interval / 3)

    def heartbeat(self) -> None:
        """Keep the lock (or try to take it); on any database error, stop leading."""
        with self._lock:
            try:
                if self._conn is None:
                    self._conn = self._engine.connect()
                    # The server side notices a vanished client within about the interval.
                    idle = max(int(self._interval / 3), 1)
                    self._conn.execute(text(f"SET tcp_keepalives_idle = {idle}; "
                                            f"SET tcp_keepalives_interval = {idle}; "
                                            "SET tcp_keepalives_count = 2"))
                if self._held:
                    self._conn.execute(text("SELECT 1"))
                else:
                    self._held = bool(self._conn.execute(
                        text("SELECT pg_try_advisory_lock(:key)"), {"key": LOCK_KEY}).scalar())
                    if self._held:
                        log.info("leader.elected", replica=self.replica)
                self._conn.commit()
                if self._held:
                    self._beat = time.monotonic()
            except SQLAlchemyError as exc:
                if self._held:
                    log.warning("leader.lost", replica=self.replica, error=type(exc).__name__)
                self._drop()

    def _drop(self) -> None:
        self._held = False
        if self._conn is not None:
            with contextlib.suppress(SQLAlchemyError):
                self._conn.close()
            self._conn = None
