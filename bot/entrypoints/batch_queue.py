"""Group commit for webhooks: one writer thread takes every item that is waiting (Alertmanager
deliveries, controller events) and records them in one transaction. Under load this saves a
transaction per item; alone, an item is written at once. Each request is answered after its
item is committed, so an accepted item is stored."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import structlog

from bot.domain.errors import StorageUnavailable, TransientError
from bot.domain.gitops import ControllerEvent
from bot.domain.models import Delivery
from bot.services.gitops import ControllerReport
from bot.services.ingest import IngestOutcome

log = structlog.get_logger(__name__)
# Answers woken in one turn of the event loop: a batch of 200 would otherwise hold the loop for
# all 200 answers at once, and a /healthz probe arriving meanwhile would wait behind them all.
ANSWER_SLICE = 16
T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Item(Generic[T, R]):
    value: T
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[R]


class BatchQueue(Generic[T, R]):
    """`record` takes a batch in arrival order and returns one result per item, in order. An item
    `alone` says is big (a part of a huge delivery) is written in a transaction of its own: the
    small items that came before it are committed first, not held until it is written."""

    def __init__(self, record: Callable[[Sequence[T]], list[R]], *, max_batch: int = 32,
                 name: str = "ingest-writer", alone: Callable[[T], bool] = lambda _: False) -> None:
        self._record = record
        self._alone = alone
        self._max = max_batch
        self._queue: queue.SimpleQueue[_Item[T, R] | None] = queue.SimpleQueue()
        self._waiting = 0  # submitted and not yet committed (or failed)
        self._closed = False
        self._count = threading.Lock()  # also orders submissions before the close's sentinel
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    async def submit(self, value: T) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        with self._count:
            if self._closed:  # no writer will take it: refused (503), not left waiting forever
                raise StorageUnavailable(f"the {self._thread.name} has stopped: Backout is shutting down, retry later")
            self._waiting += 1
            self._queue.put(_Item(value, loop, future))
        return await future

    @property
    def waiting(self) -> int:
        """Items submitted and not yet committed: the backlog /metrics shows."""
        return self._waiting

    def close(self) -> None:
        """Write what was submitted before, then stop; a later `submit` is refused."""
        with self._count:
            self._closed = True
            self._queue.put(None)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self._max:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._write_all(batch)
                    return
                batch.append(item)
            self._write_all(batch)

    def _write_all(self, items: list[_Item[T, R]]) -> None:
        """In order: runs of small items together, each big one on its own."""
        run: list[_Item[T, R]] = []
        for item in items:
            if self._alone(item.value):
                if run:
                    self._write(run)
                run = []
                self._write([item])
            else:
                run.append(item)
        if run:
            self._write(run)

    def _write(self, batch: list[_Item[T, R]]) -> None:
        try:
            outcomes = self._record([item.value for item in batch])
        except TransientError as exc:  # the database or the writer, not an item: each is refused (503)
            self._settle([(item, exc) for item in batch])
            return
        except Exception as exc:
            if len(batch) == 1:
                failed: list[tuple[_Item[T, R], R | BaseException]] = [(batch[0], exc)]
                self._settle(failed)
                return
            for item in batch:  # find the one that fails; the others are recorded on their own
                self._write([item])
            return
        self._settle(list(zip(batch, outcomes, strict=True)))

    def _settle(self, results: list[tuple[_Item[T, R], R | BaseException]]) -> None:
        with self._count:
            self._waiting -= len(results)
        _settle(results)


IngestQueue = BatchQueue[Delivery, IngestOutcome]
ControllerQueue = BatchQueue[ControllerEvent, ControllerReport]


def _settle(results: list[tuple[_Item[T, R], R | BaseException]]) -> None:
    """Hand the results to the event loops that wait for them: one wake-up per loop and batch,
    not per delivery."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Item[T, R], R | BaseException]]] = {}
    for item, result in results:
        by_loop.setdefault(item.loop, []).append((item, result))
    for loop, settled in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve, settled)
        except RuntimeError:
            log.warning("batch.loop_closed")  # the server stopped while these items were written


def _resolve(settled: list[tuple[_Item[T, R], R | BaseException]]) -> None:
    """Wake a slice of the waiting requests; the rest on the loop's next turn, after it has
    looked at the sockets again."""
    for item, result in settled[:ANSWER_SLICE]:
        if item.future.done():  # the request was cancelled (the client went away)
            continue
        if isinstance(result, BaseException):
            item.future.set_exception(result)
        else:
            item.future.set_result(result)
    if len(settled) > ANSWER_SLICE:
        asyncio.get_running_loop().call_soon(_resolve, settled[ANSWER_SLICE:])
