"""One fetch per repository at a time: callers join the fetch in flight and wait for it with a
deadline; it goes on in its own thread when they stop waiting. Fetches never stack up behind a
host that does not answer."""

from __future__ import annotations

import fcntl
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as WaitedEnough
from contextlib import contextmanager
from pathlib import Path

from bot.domain.errors import TransientError

_POLL = 0.05  # seconds between tries for another process's fetch lock


class FetchGate:
    """Single flight per repository within the process; a lock file per repository keeps two
    processes (`serve` and a CLI rollback) from fetching into one mirror together."""

    def __init__(self, lock_dir: Path, *, lock_wait: float) -> None:
        self._dir = lock_dir
        self._lock_wait = lock_wait
        self._guard = threading.Lock()
        self._flying: dict[str, Future[str]] = {}
        self.started = 0  # fetches started, for tests and benchmarks

    def in_flight(self, repo: str) -> bool:
        with self._guard:
            return repo in self._flying

    def fetch(self, repo: str, work: Callable[[], str], *, wait: float) -> str | None:
        """What `work` returned (the new tip) when the fetch ended within `wait` seconds; None when
        it goes on in the background. Its error reaches every caller that waited for it."""
        try:
            return self._flight(repo, work).result(timeout=wait)
        except WaitedEnough:
            return None

    def join(self, repo: str, work: Callable[[], str]) -> str:
        """Wait for the fetch in flight (or a new one) to end; bounded by the git deadlines."""
        return self._flight(repo, work).result()

    def _flight(self, repo: str, work: Callable[[], str]) -> Future[str]:
        with self._guard:
            flight = self._flying.get(repo)
            if flight is None:
                flight = self._flying[repo] = Future()
                self.started += 1
                threading.Thread(target=self._run, args=(repo, work, flight), name=f"fetch-{repo}",
                                 daemon=True).start()
            return flight

    def _run(self, repo: str, work: Callable[[], str], flight: Future[str]) -> None:
        try:
            with self._process_lock(repo):
                result = work()
        except BaseException as exc:  # handed to the callers, raised there
            self._land(repo)
            flight.set_exception(exc)
            return
        self._land(repo)
        flight.set_result(result)

    def _land(self, repo: str) -> None:
        """Done before the callers hear of it: a caller that comes after starts a fetch of its own."""
        with self._guard:
            self._flying.pop(repo, None)

    @contextmanager
    def _process_lock(self, repo: str) -> Iterator[None]:
        self._dir.mkdir(parents=True, exist_ok=True)
        with (self._dir / f"{repo}.fetch.lock").open("w") as handle:
            deadline = time.monotonic() + self._lock_wait
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise TransientError(f"another Backout process has been fetching {repo} for over "
                                             f"{self._lock_wait:.0f}s; try again later") from None
                    time.sleep(_POLL)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
