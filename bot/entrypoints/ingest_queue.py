"""Group commit for webhook deliveries: one writer thread takes every delivery that is waiting
and records them in one transaction. Under load this saves a transaction per delivery; alone,
a delivery is written at once, as before."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog

from bot.domain.models import Delivery
from bot.services.ingest import IngestOutcome

log = structlog.get_logger(__name__)
Record = Callable[[Sequence[Delivery]], list[IngestOutcome]]


@dataclass
class _Item:
    delivery: Delivery
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[IngestOutcome]


class IngestQueue:
    def __init__(self, record: Record, *, max_batch: int = 32) -> None:
        self._record = record
        self._max = max_batch
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="ingest-writer", daemon=True)
        self._thread.start()

    async def submit(self, delivery: Delivery) -> IngestOutcome:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[IngestOutcome] = loop.create_future()
        self._queue.put(_Item(delivery, loop, future))
        return await future

    def close(self) -> None:
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
                    self._write(batch)
                    return
                batch.append(item)
            self._write(batch)

    def _write(self, batch: list[_Item]) -> None:
        try:
            outcomes = self._record([item.delivery for item in batch])
        except Exception as exc:
            if len(batch) == 1:
                _settle([(batch[0], exc)])
                return
            for item in batch:  # find the one that fails; the others are recorded on their own
                self._write([item])
            return
        _settle(list(zip(batch, outcomes, strict=True)))


def _settle(results: list[tuple[_Item, IngestOutcome | BaseException]]) -> None:
    """Hand the results to the event loops that wait for them: one wake-up per loop and batch,
    not per delivery."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Item, IngestOutcome | BaseException]]] = {}
    for item, result in results:
        by_loop.setdefault(item.loop, []).append((item, result))
    for loop, settled in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve, settled)
        except RuntimeError:
            log.warning("ingest.loop_closed")  # the server stopped while these deliveries were written


def _resolve(settled: list[tuple[_Item, IngestOutcome | BaseException]]) -> None:
    for item, result in settled:
        if item.future.done():  # the request was cancelled (the client went away)
            continue
        if isinstance(result, BaseException):
            item.future.set_exception(result)
        else:
            item.future.set_result(result)
