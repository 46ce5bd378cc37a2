"""A batch writer in a process of its own: its SQL, Git look-ups and planning hold that process's
interpreter lock, not the one the event loop needs to answer /healthz and the next request.

The batch queue's thread hands each batch over a pipe and waits for the results, which the
child sends after its commit: an item answered 2xx is stored. A child that dies, or answers
nothing within `timeout`, fails its batch as storage unavailable (the webhook answers 503 and the
sender retries: nothing acknowledged is lost), and a new child takes the next batch."""

from __future__ import annotations

import contextlib
import multiprocessing
import pickle
import signal
import threading
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, Generic, TypeVar

import structlog

from bot.domain.errors import StorageUnavailable, TransientError

log = structlog.get_logger(__name__)
T = TypeVar("T")
R = TypeVar("R")
STOP_WAIT = 30.0  # seconds for the child to finish its batch and close its database at shutdown


class ProcessRecorder(Generic[T, R]):
    """`record(batch)` run by `target(connection, *args)` in a spawned child (see `serve_batches`)."""

    def __init__(self, target: Callable[..., None], args: tuple[Any, ...], *, timeout: float,
                 name: str = "controller-writer") -> None:
        self._target, self._args, self._timeout, self._name = target, args, timeout, name
        self._lock = threading.Lock()
        self._child: BaseProcess | None = None
        self._pipe: Connection | None = None
        self._closed = False
        self.sent = 0  # batches handed to a child, for tests and benchmarks

    @property
    def pid(self) -> int | None:
        """The child's process id, while one runs."""
        return self._child.pid if self._child is not None and self._child.is_alive() else None

    def start(self) -> None:
        """Start the child now (`serve` does): the first batch does not wait for its imports."""
        with self._lock:
            self._started()

    def __call__(self, batch: Sequence[T]) -> list[R]:
        with self._lock:
            pipe = self._started()
            try:
                pipe.send(list(batch))
                self.sent += 1
                if not pipe.poll(self._timeout):
                    self._stop(kill=True)
                    raise StorageUnavailable(f"the {self._name} process gave no answer within "
                                             f"{self._timeout:.0f}s; it is restarted, retry later")
                ok, found = pipe.recv()
            except (EOFError, OSError) as exc:
                self._stop(kill=True)
                raise StorageUnavailable(f"the {self._name} process stopped ({type(exc).__name__}); "
                                         "it is restarted, retry later") from None
        if not ok:
            raise found
        results: list[R] = found
        return results

    def close(self) -> None:
        """Let the child finish and close its database (the queue has drained into it by now)."""
        with self._lock:
            self._closed = True
            self._stop(kill=False)

    def _started(self) -> Connection:
        if self._closed:  # a batch after shutdown (the queue outlived its join): nothing would stop a new child
            raise StorageUnavailable(f"the {self._name} process stopped: Backout is shutting down, retry later")
        if self._child is not None and self._child.is_alive() and self._pipe is not None:
            return self._pipe
        if self._child is not None:
            log.warning("writer_process.restarting", name=self._name, exitcode=self._child.exitcode)
            self._stop(kill=True)
        # spawn: a fork would copy this process's threads' locks in whatever state they are
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        child = context.Process(target=self._target, args=(theirs, *self._args), name=self._name, daemon=True)
        child.start()
        theirs.close()
        self._child, self._pipe = child, ours
        return ours

    def _stop(self, *, kill: bool) -> None:
        child, pipe = self._child, self._pipe
        self._child = self._pipe = None
        if child is None or pipe is None:
            return
        if not kill:
            with contextlib.suppress(OSError):  # it is gone already
                pipe.send(None)
            child.join(STOP_WAIT)
        if child.is_alive():
            child.kill()
            child.join(STOP_WAIT)
        pipe.close()


def serve_batches(pipe: Connection, record: Callable[[Sequence[T]], list[R]]) -> None:
    """The child's loop: a batch in, its results (or its error) out, until told to stop or the
    parent is gone. Signals are the parent's to act on: Ctrl-C reaches the whole process group,
    and the child must outlive the parent's drain."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        try:
            batch = pipe.recv()
        except EOFError:
            return
        if batch is None:
            return
        try:
            answer: tuple[bool, Any] = (True, record(batch))
        except Exception as exc:
            answer = (False, _portable(exc))
        pipe.send(answer)


def _portable(exc: Exception) -> Exception:
    """The error as the parent can unpickle it: itself when it can, else its kind and message."""
    try:
        copy: Exception = pickle.loads(pickle.dumps(exc))  # noqa: S301 - our own bytes, just made
        return copy
    except Exception:
        text = f"{type(exc).__name__}: {exc}"
        return StorageUnavailable(text) if isinstance(exc, TransientError) else RuntimeError(text)
